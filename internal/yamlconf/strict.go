package yamlconf

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/auditpipe/auditpipe/keypath"
)

// CheckKnownKeys reports every mapping key under n that the type t has no
// field for, with its line and key path: yaml.v3's KnownFields(true),
// which only a Decoder reading text offers, not Node.Decode, and the
// expanded configuration is a node tree. It follows the same field naming
// as yaml.v3 (the yaml tag, else the lowercased field name; ",inline"
// structs and maps) and, unlike KnownFields, also looks inside values
// decoded by an UnmarshalYAML method when the type is a struct, or a slice
// given one mapping (outputs.Match takes a rule or a list of rules).
func CheckKnownKeys(n *yaml.Node, t reflect.Type) error {
	c := &knownKeys{seen: map[seenKey]bool{}}
	c.check(n, t, "")
	return errors.Join(c.errs...)
}

type seenKey struct {
	n *yaml.Node
	t reflect.Type
}

type knownKeys struct {
	errs []error
	// seen stops aliases from making the walk exponential ("billion
	// laughs"): a node is checked once per type.
	seen map[seenKey]bool
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	nodeType        = reflect.TypeFor[yaml.Node]()
)

func (c *knownKeys) check(n *yaml.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return
		}
		n = n.Alias
	}
	k := seenKey{n, t}
	if c.seen[k] {
		return
	}
	c.seen[k] = true
	if t == nodeType {
		return
	}
	if n.Kind == yaml.DocumentNode {
		for _, d := range n.Content {
			c.check(d, t, path)
		}
		return
	}
	// A slice type with its own UnmarshalYAML given a mapping reads it as
	// one element.
	if n.Kind == yaml.MappingNode && t.Kind() == reflect.Slice && reflect.PointerTo(t).Implements(unmarshalerType) {
		c.check(n, t.Elem(), path)
		return
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		if n.Kind == yaml.MappingNode {
			c.mapping(n, t, path)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind == yaml.SequenceNode {
			for i, e := range n.Content {
				c.check(e, t.Elem(), elemPath(path, i, e))
			}
		}
	}
	// Scalars and interfaces hold no keys; kind mismatches are the
	// decoder's to report.
}

// mapping checks a mapping against a struct's fields or a map's values.
func (c *knownKeys) mapping(n *yaml.Node, t reflect.Type, path string) {
	var fields *structFields
	if t.Kind() == reflect.Struct {
		fields = fieldsOf(t)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Kind == yaml.ScalarNode && key.Value == "<<" && key.ShortTag() == "!!merge" {
			// A merge key brings the merged mappings' keys here.
			merged := []*yaml.Node{val}
			if val.Kind == yaml.SequenceNode {
				merged = val.Content
			}
			for _, m := range merged {
				c.check(m, t, path)
			}
			continue
		}
		p := keyPath(path, key.Value)
		if fields == nil {
			c.check(val, t.Elem(), p)
			continue
		}
		ft, ok := fields.byKey[key.Value]
		if !ok {
			if fields.inlineMap != nil {
				c.check(val, fields.inlineMap, p)
				continue
			}
			c.errs = append(c.errs, unknownKey(key, p, fields.keys))
			continue
		}
		c.check(val, ft, p)
	}
}

type structFields struct {
	byKey     map[string]reflect.Type
	keys      []string // in declaration order, for suggestions
	inlineMap reflect.Type
}

// fieldsOf lists a struct's yaml keys the way yaml.v3's getStructInfo does.
func fieldsOf(t reflect.Type) *structFields {
	f := &structFields{byKey: map[string]reflect.Type{}}
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		for i := range t.NumField() {
			sf := t.Field(i)
			if sf.PkgPath != "" && !sf.Anonymous {
				continue
			}
			tag := sf.Tag.Get("yaml")
			if tag == "" && !strings.Contains(string(sf.Tag), ":") {
				tag = string(sf.Tag)
			}
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if inline := containsOpt(opts, "inline"); inline {
				ft := sf.Type
				switch ft.Kind() {
				case reflect.Map:
					f.inlineMap = ft.Elem()
				case reflect.Struct, reflect.Pointer:
					for ft.Kind() == reflect.Pointer {
						ft = ft.Elem()
					}
					add(ft)
				}
				continue
			}
			if name == "" {
				name = strings.ToLower(sf.Name)
			}
			if _, dup := f.byKey[name]; !dup {
				f.keys = append(f.keys, name)
			}
			f.byKey[name] = sf.Type
		}
	}
	add(t)
	return f
}

func containsOpt(opts, want string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

func unknownKey(key *yaml.Node, path string, known []string) error {
	return &keypath.Error{Line: key.Line, Path: path, Err: errors.New("unknown key" + suggest(key.Value, known))}
}

// suggest names the known key closest to a misspelt one, when one is
// close enough to be a likely typo.
func suggest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
