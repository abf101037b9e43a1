package jsonscan

import (
	"bytes"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/auditpipe/auditpipe/internal/jsonsyntax"
)

// IsToken reports a byte of a literal or a number.
func IsToken(c byte) bool { return scanClass[c] == clsToken }

// MembersExpected is what a failure of kind TooManyMembers expected.
func MembersExpected(limit int, object bool) string {
	if object {
		return fmt.Sprintf("at most %d members in one object", limit)
	}
	return fmt.Sprintf("at most %d elements in one array", limit)
}

// CheckRawString validates escapes and rejects raw control characters and
// unpaired surrogates, which fastjson accepts "best effort".
func CheckRawString(s []byte) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 {
			return "control character 0x" + strconv.FormatUint(uint64(c), 16) + " must be escaped"
		}
		if c != '\\' {
			continue
		}
		i++
		if i >= len(s) {
			return "unterminated escape"
		}
		switch s[i] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		case 'u':
			r, ok := jsonsyntax.Hex4(s[i+1:])
			if !ok {
				return `invalid \u escape`
			}
			i += 4
			switch {
			case r >= 0xD800 && r < 0xDC00:
				if i+6 >= len(s)+0 || s[i+1] != '\\' || s[i+2] != 'u' {
					return "unpaired surrogate"
				}
				if lo, ok := jsonsyntax.Hex4(s[i+3:]); !ok || lo < 0xDC00 || lo > 0xDFFF {
					return "unpaired surrogate"
				}
				i += 6
			case r >= 0xDC00 && r <= 0xDFFF:
				return "unpaired surrogate"
			}
		default:
			return "invalid escape \\" + string(rune(s[i]))
		}
	}
	return ""
}

// IsPlainInt reports an integer of at most 15 digits without leading zeros:
// exactly representable as a double and printed the same by ECMAScript.
func IsPlainInt(b []byte) bool {
	i := 0
	if len(b) > 0 && b[0] == '-' {
		i = 1
	}
	n := len(b) - i
	if n == 0 || n > 15 || (b[i] == '0' && n > 1) {
		return false
	}
	for ; i < len(b); i++ {
		if b[i] < '0' || b[i] > '9' {
			return false
		}
	}
	return true
}

// CompareUTF16 orders member names by their UTF-16 code units, as RFC 8785
// requires. UTF-8 byte order equals code point order, which differs from
// UTF-16 order only between supplementary characters (4-byte UTF-8) and
// U+E000..U+FFFF (3-byte UTF-8 starting at 0xEE), so the slow path runs only
// when such bytes are present.
func CompareUTF16(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	if i == len(a) || i == len(b) {
		return len(a) - len(b)
	}
	if a[i] < 0xEE || b[i] < 0xEE {
		return int(a[i]) - int(b[i])
	}
	// Back up to the start of the differing rune and compare as UTF-16.
	for i > 0 && !utf8.RuneStart(a[i]) {
		i--
	}
	ra, _ := utf8.DecodeRune(a[i:])
	rb, _ := utf8.DecodeRune(b[i:])
	ua, ub := utf16Unit(ra), utf16Unit(rb)
	if ua != ub {
		return int(ua) - int(ub)
	}
	return CompareUTF16(a[i+utf8.RuneLen(ra):], b[i+utf8.RuneLen(rb):])
}

func utf16Unit(r rune) uint16 {
	if r >= 0x10000 {
		hi, _ := utf16.EncodeRune(r)
		return uint16(hi)
	}
	return uint16(r)
}

// StandsAlone reports whether line holds one JSON value as far as its
// brackets, quotes and tokens tell: whether a payload that is not one
// document is NDJSON, whose first line stands on its own (a first line
// that is only "{" is a broken document). What the value holds is not
// checked: a first line with a bad number is a bad line of a stream.
func StandsAlone(line []byte) bool {
	depth, values := 0, 0
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case IsSpace(c):
			continue
		case c == '"':
			i++
			for i < len(line) && line[i] != '"' {
				if line[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(line) {
				return false
			}
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth--; depth < 0 {
				return false
			}
		case depth > 0:
		case scanClass[c] == clsToken:
			for i+1 < len(line) && scanClass[line[i+1]] == clsToken {
				i++
			}
		default:
			return false
		}
		if depth == 0 {
			values++
		}
	}
	return depth == 0 && values == 1
}

// EachElement calls f with the text of each element of the array that is
// b, valid JSON, until f returns false. The elements are found as they
// are needed, rather than noted by the scan: that would cost every
// payload for the sake of batches.
func EachElement(b []byte, f func(i int, elem []byte) bool) {
	i := bytes.IndexByte(b, '[') + 1
	for n := 0; ; n++ {
		for i < len(b) && IsSpace(b[i]) {
			i++
		}
		if i >= len(b) || b[i] == ']' {
			return
		}
		end := valueEnd(b, i)
		if !f(n, b[i:end]) {
			return
		}
		for i = end; i < len(b) && IsSpace(b[i]); i++ {
		}
		if i < len(b) && b[i] == ',' {
			i++
		}
	}
}

// valueEnd is the offset just past the value that starts at b[i], in
// valid JSON.
func valueEnd(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		switch c := b[i]; {
		case c == '"':
			i++
			for i < len(b) {
				k := IndexSpecial(b[i:])
				if k < 0 {
					return len(b)
				}
				if i += k; b[i] == '"' {
					break
				}
				i += jsonsyntax.EscapeLen(b[i:])
			}
			i++
		case c == '{' || c == '[':
			depth++
			i++
			continue
		case c == '}' || c == ']':
			depth--
			i++
		case scanClass[c] == clsToken:
			for i < len(b) && scanClass[b[i]] == clsToken {
				i++
			}
		default:
			i++
			continue
		}
		if depth <= 0 {
			return i
		}
	}
	return i
}

// Kind names the JSON kind of valid JSON text by its first byte, past
// white space.
func Kind(b []byte) string {
	switch b := bytes.TrimLeft(b, " \t\r\n"); {
	case len(b) == 0:
		return "nothing"
	case b[0] == '{':
		return "object"
	case b[0] == '[':
		return "array"
	case b[0] == '"':
		return "string"
	case b[0] == 't' || b[0] == 'f':
		return "boolean"
	case b[0] == 'n':
		return "null"
	}
	return "number"
}
