//go:build !auditpipe_safejson

package jsontree

import (
	"bytes"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/auditpipe/auditpipe/internal/jsonsyntax"
	"github.com/auditpipe/auditpipe/transformers/internal/jsonscan"
	"github.com/valyala/fastjson"
)

// fastjson's parser copies the text it parses and grows one array of
// values by doubling, each copy kept alive by the pointers into it: a tree
// cost the text once more and its values up to twice. jsonBuilder builds
// the same tree (the mirror types of mirror.go) from text the scan has
// already passed: values come from the tree's slabs, and strings are views
// into the text, but those with escapes, which are unescaped into buf.
// As the text is known valid, it checks nothing on the way: a mismatch
// with the scan would index out of range, which Build recovers from
// (FuzzBuildTree holds it to fastjson).
type jsonBuilder struct {
	t *Tree
	// buf holds unescaped strings; the tree's strings point into it, so
	// it is never grown in place.
	buf []byte
	// plain: the text has no escapes (the scan says), so a string ends
	// at the next quote.
	plain bool
	// The members and elements of the open objects and arrays; a
	// container's are copied into a slab run of their own when it closes.
	kvs  []treeKV
	ptrs []*fastjson.Value
}

// build builds the tree of b, valid JSON (the scan passed it, well formed),
// into the builder's tree and returns its root.
func (j *jsonBuilder) build(b []byte) *Value {
	root := j.newValue()
	i := j.value(b, skipSpace(b, 0), root)
	if skipSpace(b, i) != len(b) {
		return nil
	}
	return mirror(root)
}

// skipSpace skips the white space at b[i:]. Inside a valid document a
// value or a bracket always follows, so only the top level checks the
// length.
func skipSpace(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' {
		i++
	}
	return i
}

func (j *jsonBuilder) newValue() *treeValue { return j.t.newValue() }

// value builds the value at b[i] into dst and returns the offset after it.
// The scan bounded the depth, so the recursion is bounded too.
func (j *jsonBuilder) value(b []byte, i int, dst *treeValue) int {
	switch b[i] {
	case '{':
		for i++; b[i] <= ' '; i++ {
		}
		if b[i] == '}' {
			*dst = treeValue{t: fastjson.TypeObject, o: treeObject{keysUnescaped: true}}
			return i + 1
		}
		base := len(j.kvs)
		for {
			var k string
			k, i = j.str(b, i)
			for b[i] != ':' {
				i++
			}
			for i++; b[i] <= ' '; i++ {
			}
			v := j.newValue()
			i = j.value(b, i, v)
			j.kvs = append(j.kvs, treeKV{k: k, v: (*fastjson.Value)(unsafe.Pointer(v))})
			for b[i] <= ' ' {
				i++
			}
			if b[i] != ',' {
				break // '}'
			}
			for i++; b[i] <= ' '; i++ {
			}
		}
		kvs := j.t.kvs.take(len(j.kvs) - base)
		copy(kvs, j.kvs[base:])
		clear(j.kvs[base:]) // the stack must not keep this tree alive
		j.kvs = j.kvs[:base]
		*dst = treeValue{t: fastjson.TypeObject, o: treeObject{kvs: kvs, keysUnescaped: true}}
		return i + 1
	case '[':
		for i++; b[i] <= ' '; i++ {
		}
		if b[i] == ']' {
			*dst = treeValue{t: fastjson.TypeArray}
			return i + 1
		}
		base := len(j.ptrs)
		for {
			v := j.newValue()
			i = j.value(b, i, v)
			j.ptrs = append(j.ptrs, (*fastjson.Value)(unsafe.Pointer(v)))
			for b[i] <= ' ' {
				i++
			}
			if b[i] != ',' {
				break // ']'
			}
			for i++; b[i] <= ' '; i++ {
			}
		}
		a := j.t.ptrs.take(len(j.ptrs) - base)
		copy(a, j.ptrs[base:])
		clear(j.ptrs[base:])
		j.ptrs = j.ptrs[:base]
		*dst = treeValue{t: fastjson.TypeArray, a: a}
		return i + 1
	case '"':
		var s string
		s, i = j.str(b, i)
		*dst = treeValue{t: fastjson.TypeString, s: s}
		return i
	case 't':
		*dst = treeValue{t: fastjson.TypeTrue}
		return i + 4
	case 'f':
		*dst = treeValue{t: fastjson.TypeFalse}
		return i + 5
	case 'n':
		*dst = treeValue{t: fastjson.TypeNull}
		return i + 4
	}
	end := i + 1
	for end < len(b) && jsonscan.IsToken(b[end]) {
		end++
	}
	*dst = treeValue{t: fastjson.TypeNumber, s: str(b[i:end])}
	return end
}

// str views b as a string: the tree's strings point into the text.
func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// str reads the string at b[i] (its opening quote), and returns it and
// the offset after it: a view into b, or its unescaped copy in buf.
func (j *jsonBuilder) str(b []byte, i int) (string, int) {
	start := i + 1
	if j.plain {
		end := start + bytes.IndexByte(b[start:], '"')
		return str(b[start:end]), end + 1
	}
	end, escapes := start, false
	for {
		end += jsonscan.IndexSpecial(b[end:])
		if b[end] == '"' {
			break
		}
		escapes = true
		end += jsonsyntax.EscapeLen(b[end:])
	}
	if !escapes {
		return str(b[start:end]), end + 1
	}
	raw := b[start:end]
	if cap(j.buf)-len(j.buf) < len(raw) {
		// Never grow in place: strings already made point into buf. An
		// unescaped string is no longer than its text.
		j.buf = make([]byte, 0, max(2*cap(j.buf), 1024, len(raw)))
	}
	from := len(j.buf)
	out := j.buf
	for p := 0; p < len(raw); {
		c := raw[p]
		if c != '\\' {
			out = append(out, c)
			p++
			continue
		}
		switch e := raw[p+1]; e {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, _ := jsonsyntax.Hex4(raw[p+2:])
			p += 6
			if r >= 0xD800 && r < 0xDC00 && p+6 <= len(raw) && raw[p] == '\\' && raw[p+1] == 'u' {
				if lo, ok := jsonsyntax.Hex4(raw[p+2:]); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					r = (r-0xD800)<<10 | (lo - 0xDC00) + 0x10000
					p += 6
				}
			}
			out = utf8.AppendRune(out, r)
			continue
		default: // '"', '\\', '/'
			out = append(out, e)
		}
		p += 2
	}
	j.buf = out
	return str(out[from:]), end + 1
}

// Build builds the tree of b, JSON text jsonscan.Scan found valid and well
// formed, into t: its strings point into b and *scratch, to which
// unescaped strings are appended, and which must live as long as the
// tree. plain tells that b holds no escape (Scan's Escaped is false). Nil
// if b is not the valid JSON the scan passed, which cannot happen.
func (t *Tree) Build(b []byte, scratch *[]byte, plain bool) (v *Value) {
	j := builderPool.Get().(*jsonBuilder)
	j.t, j.buf, j.plain = t, *scratch, plain
	defer func() {
		if recover() != nil {
			v = nil
			clear(j.kvs)
			clear(j.ptrs)
			j.kvs, j.ptrs = j.kvs[:0], j.ptrs[:0]
		}
		*scratch = j.buf
		j.t, j.buf = nil, nil
		if cap(j.kvs) > 1024 || cap(j.ptrs) > 1024 {
			j.kvs, j.ptrs = nil, nil // one wide object must not stay pooled
		}
		builderPool.Put(j)
	}()
	return j.build(b)
}

var builderPool = sync.Pool{New: func() any { return new(jsonBuilder) }}
