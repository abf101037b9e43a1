// Package jsonw appends JSON values to byte slices without reflection, with
// exactly the bytes encoding/json (with SetEscapeHTML(false)) would write.
// The event encoders of the root package and of the outputs (ECS documents,
// CloudEvents) share it so that all of them escape strings the same way.
package jsonw

import (
	"math/bits"
	"time"
	"unicode/utf8"
)

// AppendTime writes t as a quoted RFC 3339 timestamp with nanoseconds as
// needed, the form encoding/json gives time.Time.
func AppendTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// AppendEscapedASCII appends the escape of an ASCII byte that JSON
// requires escaped ('"', '\\' or a control character): the short form
// where JSON has one, else \u00XX. encoding/json and RFC 8785 agree on it,
// so every string writer in the module shares it.
func AppendEscapedASCII(dst []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(dst, '\\', c)
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	return append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
}

// AppendString quotes s as encoding/json does without HTML escaping:
// control characters, '"' and '\\' escaped, invalid UTF-8 replaced by
// U+FFFD, and U+2028/U+2029 escaped (JavaScript line terminators).
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = AppendEscaped(dst, s)
	return append(dst, '"')
}

// AppendStrings writes ss as a JSON array of strings.
func AppendStrings(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, s)
	}
	return append(dst, ']')
}

// AppendEscaped appends s escaped as AppendString does, without the
// quotes, so a string value can be written from several pieces.
func AppendEscaped(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		// Most of an audit event is plain ASCII: skip it eight bytes at a
		// time, and look at bytes one by one only around the rest.
		for i+8 <= len(s) {
			if m := Special8(load64(s, i)); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i == len(s) {
			break
		}
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = AppendEscapedASCII(dst, c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}

// load64 reads s[i:i+8] as a little-endian word (the compiler makes it
// one load).
func load64(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

// Special8 marks, in the high bit of each of the eight bytes of v (a
// little-endian word of a JSON string), those that are a quote, a
// backslash, a control character or non-ASCII: the bytes an encoder must
// escape or check and a decoder must look at. These are the usual SWAR
// tests (b-n borrows into the high bit when b < n). A borrow can mark
// bytes after a marked one, never before, so the lowest mark is exact.
func Special8(v uint64) uint64 {
	const ones, high = 0x0101010101010101, 0x8080808080808080
	quote, backslash := v^(ones*'"'), v^(ones*'\\')
	control := (v - ones*0x20) &^ v
	isQuote := (quote - ones) &^ quote
	isBackslash := (backslash - ones) &^ backslash
	return (v | control | isQuote | isBackslash) & high
}

// AppendCanonicalString quotes s as RFC 8785 (JCS) does, ECMAScript's
// JSON.stringify: only '"', '\\' and control characters are escaped, the
// latter with the short forms where they exist; U+2028, U+2029 and every
// other character are written as they are. Invalid UTF-8 becomes U+FFFD,
// as encoding/json makes it, so canonical bytes are those of what any
// JSON encoder writes. The transformers' canonical encoder and the
// integrity hash share it.
func AppendCanonicalString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		for i+8 <= len(s) {
			if m := Special8(load64(s, i)); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, "\uFFFD"...)
				start = i + 1
			}
			i += size
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = AppendEscapedASCII(dst, c)
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
