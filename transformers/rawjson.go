package transformers

import (
	"bytes"

	"github.com/auditpipe/auditpipe/transformers/internal/jsonscan"
)

// Readers of canonical JSON values (Root.Member): compact, no escapes,
// integers only. They only recognise what canonical JSON can hold; a format
// that meets anything else falls back to the tree.

// RawString returns the contents of a canonical JSON string.
func RawString(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, false
	}
	return v[1 : len(v)-1], true
}

// RawNull reports a JSON null.
func RawNull(v []byte) bool { return string(v) == "null" }

// RawObject reports a JSON object.
func RawObject(v []byte) bool { return len(v) >= 2 && v[0] == '{' && v[len(v)-1] == '}' }

// RawInt returns a canonical integer (at most 15 digits, as canonical JSON
// writes integers exactly).
func RawInt(v []byte) (int64, bool) {
	if !jsonscan.IsPlainInt(v) {
		return 0, false
	}
	n, neg := int64(0), v[0] == '-'
	if neg {
		v = v[1:]
	}
	for _, c := range v {
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// RawMember returns the value of member name in a canonical JSON object.
func RawMember(obj []byte, name string) ([]byte, bool) {
	if !RawObject(obj) {
		return nil, false
	}
	i := 1
	for i < len(obj)-1 {
		// "key":value
		if obj[i] != '"' {
			return nil, false
		}
		k := bytes.IndexByte(obj[i+1:], '"')
		if k < 0 || i+k+2 >= len(obj) || obj[i+k+2] != ':' {
			return nil, false
		}
		key := obj[i+1 : i+1+k]
		start := i + k + 3
		end := rawValueEnd(obj, start)
		if end < 0 {
			return nil, false
		}
		if string(key) == name {
			return obj[start:end], true
		}
		i = end
		if i < len(obj)-1 {
			if obj[i] != ',' {
				return nil, false
			}
			i++
		}
	}
	return nil, false
}

// rawValueEnd is the offset just past the canonical value starting at i.
func rawValueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	depth := 0
	for j := i; j < len(b); j++ {
		switch b[j] {
		case '"':
			k := bytes.IndexByte(b[j+1:], '"')
			if k < 0 {
				return -1
			}
			j += k + 1
			if depth == 0 {
				return j + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return j // the end of an enclosing container
			}
			depth--
			if depth == 0 {
				return j + 1
			}
		case ',':
			if depth == 0 {
				return j
			}
		}
	}
	if depth == 0 {
		return len(b)
	}
	return -1
}
