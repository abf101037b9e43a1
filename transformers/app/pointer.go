package app

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/auditpipe/auditpipe/transformers"
)

// Pointer is a parsed RFC 6901 JSON pointer ("/actor/id", "/tags/0",
// "/a~1b" for the member "a/b", "/a~0b" for "a~b").
type Pointer struct {
	raw    string
	tokens []string
}

// ParsePointer parses s. The empty pointer is the whole document; any
// other must start with '/', and '~' may only appear as ~0 or ~1.
func ParsePointer(s string) (Pointer, error) {
	p := Pointer{raw: s}
	if s == "" {
		return p, nil
	}
	if s[0] != '/' {
		hint := ""
		if strings.HasPrefix(s, "#/") {
			hint = " (the URI fragment form is not accepted: drop the '#')"
		}
		return p, fmt.Errorf("invalid JSON pointer %q: must start with '/'%s", s, hint)
	}
	for _, tok := range strings.Split(s[1:], "/") {
		var b strings.Builder
		for i := 0; i < len(tok); i++ {
			c := tok[i]
			if c != '~' {
				b.WriteByte(c)
				continue
			}
			// One left-to-right pass decodes "~01" as "~1", as RFC 6901
			// section 4 requires (~1 first, then ~0).
			if i+1 == len(tok) || tok[i+1] != '0' && tok[i+1] != '1' {
				return p, fmt.Errorf("invalid JSON pointer %q: '~' must be followed by 0 or 1", s)
			}
			i++
			if tok[i] == '0' {
				b.WriteByte('~')
			} else {
				b.WriteByte('/')
			}
		}
		p.tokens = append(p.tokens, b.String())
	}
	return p, nil
}

// String is the pointer as written.
func (p Pointer) String() string { return p.raw }

// Resolve returns the node p points to under n: a missing node when any
// step is absent, so errors still name the JSONPath the pointer meant.
// Array steps must be RFC 6901 indexes (0, or digits without a leading
// zero); "-", the element after the last, never exists.
func (p Pointer) Resolve(n transformers.Node) transformers.Node {
	for _, tok := range p.tokens {
		if n.IsArray() {
			if i, ok := arrayIndex(tok); ok {
				n = n.Index(i)
				continue
			}
		}
		n = n.Get(tok) // missing for anything that is not an object
	}
	return n
}

func arrayIndex(tok string) (int, bool) {
	if tok == "" || len(tok) > 9 || tok[0] == '0' && len(tok) > 1 {
		return 0, false
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < '0' || tok[i] > '9' {
			return 0, false
		}
	}
	i, err := strconv.Atoi(tok)
	return i, err == nil
}
