package transformers

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"unicode/utf8"
)

// prescan enforces, in one pass over the raw bytes and before anything is
// parsed, what fastjson does not: the depth and string-length limits, and
// the parts of the JSON grammar fastjson is lenient about (escapes, raw
// control characters, unpaired surrogates, numbers such as NaN, +1, .5 or
// 1.2.3). It is on every payload's path, so string contents, the bulk of
// any audit event, are skipped eight bytes at a time.
//
// It returns the byte offset and a description of the first problem, or
// ok. Structure (braces, commas, colons) is left to the parser.
func prescan(b []byte, lim Limits) (off int, kind error, msg string, ok bool) {
	depth := 0
	for i := 0; i < len(b); {
		c := b[i]
		switch c {
		case ' ', '\t', '\r', '\n', ',', ':':
			i++
		case '"':
			j := i + 1
			escapes := false
			for {
				k := indexSpecial(b[j:])
				if k < 0 {
					return i, ErrSyntax, "unterminated string", false
				}
				j += k
				if b[j] == '"' {
					break
				}
				if b[j] < 0x20 {
					return j, ErrSyntax, fmt.Sprintf("control character 0x%02x in a string must be escaped", b[j]), false
				}
				n := escapeEnd(b[j:])
				if m := checkRawString(b[j : j+n]); m != "" {
					return j, ErrSyntax, m, false
				}
				escapes = true
				j += n
			}
			if raw := b[i+1 : j]; len(raw) > lim.MaxStringLength && (!escapes || unescapedLen(raw) > lim.MaxStringLength) {
				return i, ErrStringTooLong, fmt.Sprintf("a string longer than %d bytes", lim.MaxStringLength), false
			}
			i = j + 1
		case '{', '[':
			depth++
			if depth > lim.MaxDepth {
				return i, ErrTooDeep, fmt.Sprintf("more than %d levels of nesting", lim.MaxDepth), false
			}
			i++
		case '}', ']':
			depth--
			i++
		default:
			// A literal or a number: fastjson takes any run of number
			// characters, and NaN and Inf, as a number.
			j := i
			for j < len(b) && isTokenByte(b[j]) {
				j++
			}
			if j == i {
				return i, ErrSyntax, fmt.Sprintf("unexpected character %q", rune(c)), false
			}
			switch tok := b[i:j]; string(tok) {
			case "true", "false", "null":
			default:
				if !validNumber(tok) {
					return i, ErrSyntax, "malformed number or literal", false
				}
			}
			i = j
		}
	}
	return 0, nil, "", true
}

func isTokenByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '+' || c == '-'
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// indexSpecial returns the index of the first '"', '\\' or control
// character in s, or -1. Eight bytes per step: a byte matches when
// (x - n) borrows into its top bit, and borrows only ever propagate upwards,
// so the lowest flagged byte is always a true match.
func indexSpecial(s []byte) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(s[i:])
		q := x ^ (lsb * '"')
		bs := x ^ (lsb * '\\')
		t := ((q - lsb) &^ q) | ((bs - lsb) &^ bs) | ((x - lsb*0x20) &^ x)
		if t &= msb; t != 0 {
			return i + bits.TrailingZeros64(t)/8
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' || c < 0x20 {
			return i
		}
	}
	return -1
}

// unescapedLen is the length in bytes of a valid raw JSON string once
// unescaped.
func unescapedLen(raw []byte) int {
	n := 0
	for i := 0; i < len(raw); {
		if raw[i] != '\\' {
			n++
			i++
			continue
		}
		if raw[i+1] != 'u' {
			n++
			i += 2
			continue
		}
		r, _ := hex4(raw[i+2:])
		if r >= 0xD800 && r < 0xDC00 {
			n += 4
			i += 12
			continue
		}
		n += utf8.RuneLen(r)
		i += 6
	}
	return n
}
