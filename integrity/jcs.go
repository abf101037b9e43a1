package integrity

import (
	"unicode/utf8"
)

// canonical reports whether b is one JSON value already in RFC 8785 form,
// so that it can be hashed as it is. It is a single pass with no
// allocation; it answers false for anything it is not sure of (escaped
// member names, numbers other than plain integers, deep nesting), and the
// caller then canonicalizes the general way. False negatives cost time,
// never correctness.
func canonical(b []byte) bool {
	c := checker{b: b}
	return c.value(0) && c.i == len(b)
}

type checker struct {
	b []byte
	i int
}

const maxCanonicalDepth = 200

func (c *checker) value(depth int) bool {
	if c.i >= len(c.b) || depth > maxCanonicalDepth {
		return false
	}
	switch ch := c.b[c.i]; {
	case ch == '{':
		return c.object(depth)
	case ch == '[':
		c.i++
		if c.i < len(c.b) && c.b[c.i] == ']' {
			c.i++
			return true
		}
		for {
			if !c.value(depth + 1) {
				return false
			}
			if c.i >= len(c.b) {
				return false
			}
			switch c.b[c.i] {
			case ',':
				c.i++
			case ']':
				c.i++
				return true
			default:
				return false
			}
		}
	case ch == '"':
		_, ok := c.str()
		return ok
	case ch == 't':
		return c.lit("true")
	case ch == 'f':
		return c.lit("false")
	case ch == 'n':
		return c.lit("null")
	case ch == '-' || ch >= '0' && ch <= '9':
		return c.integer()
	}
	return false
}

func (c *checker) object(depth int) bool {
	c.i++
	if c.i < len(c.b) && c.b[c.i] == '}' {
		c.i++
		return true
	}
	var prev []byte
	for n := 0; ; n++ {
		if c.i >= len(c.b) || c.b[c.i] != '"' {
			return false
		}
		key, ok := c.str()
		// An escaped name would need decoding to be ordered.
		if !ok || key == nil {
			return false
		}
		if n > 0 && compareUTF16(string(prev), string(key)) >= 0 {
			return false
		}
		prev = key
		if c.i >= len(c.b) || c.b[c.i] != ':' {
			return false
		}
		c.i++
		if !c.value(depth + 1) {
			return false
		}
		if c.i >= len(c.b) {
			return false
		}
		switch c.b[c.i] {
		case ',':
			c.i++
		case '}':
			c.i++
			return true
		default:
			return false
		}
	}
}

// str checks a string literal in canonical form and moves past it. raw is
// its content when it holds no escape (non-nil even when empty), nil when
// it does.
func (c *checker) str() (raw []byte, ok bool) {
	c.i++
	start := c.i
	escaped := false
	for c.i < len(c.b) {
		ch := c.b[c.i]
		switch {
		case ch == '"':
			s := c.b[start:c.i]
			c.i++
			if escaped {
				return nil, true
			}
			return s[:len(s):len(s)], true
		case ch < 0x20:
			return nil, false
		case ch == '\\':
			if c.i+1 >= len(c.b) {
				return nil, false
			}
			escaped = true
			switch c.b[c.i+1] {
			case '"', '\\', 'b', 'f', 'n', 'r', 't':
				c.i += 2
			case 'u':
				// Only control characters without a short form are
				// written as \u00xx, in lower case.
				if c.i+6 > len(c.b) || c.b[c.i+2] != '0' || c.b[c.i+3] != '0' {
					return nil, false
				}
				h, l := c.b[c.i+4], c.b[c.i+5]
				if h != '0' && h != '1' || !(l >= '0' && l <= '9' || l >= 'a' && l <= 'f') {
					return nil, false
				}
				switch v := (h-'0')<<4 | hexVal(l); v {
				case '\b', '\f', '\n', '\r', '\t':
					return nil, false
				}
				c.i += 6
			default:
				return nil, false
			}
		case ch < utf8.RuneSelf:
			c.i++
		default:
			r, size := utf8.DecodeRune(c.b[c.i:])
			if r == utf8.RuneError && size <= 1 {
				return nil, false
			}
			c.i += size
		}
	}
	return nil, false
}

func hexVal(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

func (c *checker) lit(s string) bool {
	if len(c.b)-c.i < len(s) || string(c.b[c.i:c.i+len(s)]) != s {
		return false
	}
	c.i += len(s)
	return true
}

// integer accepts the numbers whose canonical form is their own text:
// integers without leading zeros, not -0, of at most 15 digits (exact in
// a double, and printed by ECMAScript without an exponent). Anything else
// goes the general way.
func (c *checker) integer() bool {
	start := c.i
	if c.b[c.i] == '-' {
		c.i++
	}
	d := c.i
	for c.i < len(c.b) && c.b[c.i] >= '0' && c.b[c.i] <= '9' {
		c.i++
	}
	n := c.i - d
	switch {
	case n == 0 || n > 15:
		return false
	case c.b[d] == '0' && (n > 1 || d > start):
		return false
	}
	if c.i < len(c.b) {
		switch c.b[c.i] {
		case '.', 'e', 'E':
			return false
		}
	}
	return true
}
