package jsonsyntax

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// String scans a string literal whose content starts at b[0], just after
// the opening quote, and returns the content's length: the closing quote
// is b[n]. escaped reports an escape in the content, which then needs
// AppendUnescaped; without one the content is the value itself. UTF-8 is
// checked once, over the whole content, so BadUTF8 is reported at offset 0.
func String(b []byte) (n int, escaped bool, p Problem) {
	// Most strings are short, plain ASCII: this much is inlined.
	n, ascii := Plain(b)
	if ascii && n < len(b) && b[n] == '"' {
		return n, false, None
	}
	return stringRest(b, n, ascii)
}

// stringRest is String after its first plain run, b[:i].
func stringRest(b []byte, i int, ascii bool) (n int, escaped bool, p Problem) {
	for {
		if i == len(b) {
			return i, escaped, Unterminated
		}
		switch b[i] {
		case '"':
			if !ascii && !utf8.Valid(b[:i]) {
				return 0, escaped, BadUTF8
			}
			return i, escaped, None
		case '\\':
			_, m, p := Escape(b[i:])
			if p != None {
				return i + m, escaped, p
			}
			i += m
			escaped = true
		default:
			return i, escaped, ControlChar
		}
		k, a := Plain(b[i:])
		i += k
		ascii = ascii && a
	}
}

// Plain returns the length of the run at the start of b that a string
// scanner can pass over: everything before the first quote, backslash or
// control character (all of b if there is none). ascii reports that the
// run is ASCII, so that its UTF-8 needs no check.
func Plain(b []byte) (n int, ascii bool) {
	var seen uint64 // every byte passed, or'ed: a high bit is non-ASCII
	i := 0
	for ; i+8 <= len(b); i += 8 {
		v := binary.LittleEndian.Uint64(b[i:])
		if m := stop8(v); m != 0 {
			k := bits.TrailingZeros64(m) // the high bit of the first stop
			seen |= v & (1<<k - 1)
			return i + k>>3, seen&msb == 0
		}
		seen |= v
	}
	for ; i < len(b); i++ {
		c := b[i]
		if c == '"' || c == '\\' || c < 0x20 {
			break
		}
		seen |= uint64(c)
	}
	return i, seen&msb == 0
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// stop8 marks, in the high bit of each byte of v (eight bytes read little
// endian), the quotes, backslashes and control characters. These are the
// usual SWAR tests (x-n borrows into the high bit when x < n, and &^ v
// leaves out the non-ASCII bytes): a borrow can mark bytes after a marked
// one, never before, so the lowest mark is exact.
func stop8(v uint64) uint64 {
	quote, backslash := v^(lsb*'"'), v^(lsb*'\\')
	return ((quote-lsb)&^quote | (backslash-lsb)&^backslash | (v-lsb*0x20)&^v) & msb
}

// Escape decodes the escape sequence at the start of b (b[0] is a
// backslash) and returns the rune it stands for and its length. A
// surrogate pair, \ud83d\ude00, is one escape of 12 bytes; either half
// alone is LoneSurrogate, which encoding/json would quietly turn into
// U+FFFD.
func Escape(b []byte) (r rune, n int, p Problem) {
	if len(b) < 2 {
		return 0, 0, Unterminated
	}
	switch c := b[1]; c {
	case '"', '\\', '/':
		return rune(c), 2, None
	case 'b':
		return '\b', 2, None
	case 'f':
		return '\f', 2, None
	case 'n':
		return '\n', 2, None
	case 'r':
		return '\r', 2, None
	case 't':
		return '\t', 2, None
	case 'u':
	default:
		return 0, 0, BadEscape
	}
	r, ok := Hex4(b[2:])
	if !ok {
		return 0, 2, BadHex
	}
	if !utf16.IsSurrogate(r) {
		return r, 6, None
	}
	if len(b) < 8 || b[6] != '\\' || b[7] != 'u' {
		return 0, 6, LoneSurrogate
	}
	lo, ok := Hex4(b[8:])
	if !ok {
		return 0, 8, LoneSurrogate
	}
	if r = utf16.DecodeRune(r, lo); r == utf8.RuneError {
		return 0, 12, LoneSurrogate
	}
	return r, 12, None
}

// EscapeLen is the length of the escape sequence at the start of b, in
// content String accepted: Escape's n without the checks.
func EscapeLen(b []byte) int {
	if len(b) < 2 || b[1] != 'u' {
		return min(2, len(b))
	}
	if len(b) >= 12 && b[6] == '\\' && b[7] == 'u' {
		if r, ok := Hex4(b[2:]); ok && r >= 0xD800 && r < 0xDC00 {
			return 12
		}
	}
	return min(6, len(b))
}

// Hex4 decodes the four hex digits at the start of b.
func Hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// AppendUnescaped appends the value of raw, the content of a string
// literal that String accepted, to dst. Checking and unescaping are apart
// because the transformers check a whole payload before they unescape
// any of it; content that String refuses does not panic, but its
// backslashes are kept as they are.
func AppendUnescaped(dst, raw []byte) []byte {
	for {
		i := bytes.IndexByte(raw, '\\')
		if i < 0 {
			return append(dst, raw...)
		}
		dst = append(dst, raw[:i]...)
		r, n, p := Escape(raw[i:])
		if p != None {
			dst = append(dst, '\\')
			raw = raw[i+1:]
			continue
		}
		dst = utf8.AppendRune(dst, r)
		raw = raw[i+n:]
	}
}

// UnescapedLen is the length of AppendUnescaped's value of raw, without
// making it: for a limit on string lengths that holds whatever the
// escaping.
func UnescapedLen(raw []byte) int {
	n := 0
	for {
		i := bytes.IndexByte(raw, '\\')
		if i < 0 {
			return n + len(raw)
		}
		n += i
		r, m, p := Escape(raw[i:])
		if p != None {
			n++
			raw = raw[i+1:]
			continue
		}
		n += utf8.RuneLen(r)
		raw = raw[i+m:]
	}
}
