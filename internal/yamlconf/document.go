package yamlconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/auditpipe/auditpipe/keypath"
)

// Document is one configuration file, parsed and with its references
// expanded. Decode and DecodeMapping collect the problems they find; Err
// reports them all at once.
type Document struct {
	root   *yaml.Node // nil for an empty file
	hidden map[int]bool
	seen   map[seenKey]bool
	idx    *index

	// The problems, by kind: when the document is not a mapping, that
	// alone; else the bad references, the unknown keys, the values that
	// could not be decoded.
	fatal        error
	expErr       error
	keys, values []error
}

// Parse parses data as one YAML document and expands its references,
// resolved through lk. Only YAML syntax errors and a second document are
// reported here; bad references are reported by Decode, with the other
// problems.
func Parse(data []byte, lk Lookups) (*Document, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, err
		}
		return nil, &keypath.Error{Line: extra.Line, Err: errors.New("a second YAML document; the configuration is one document")}
	}
	d := &Document{seen: map[seenKey]bool{}}
	if root.Kind == 0 {
		return d, nil
	}
	d.root = &root
	d.hidden, d.expErr = expandTree(&root, lk.orOS())
	return d, nil
}

// FromNode returns a Document over a tree that was not read by Parse (one
// built in code, or decoded by yaml.v3 alone): nothing is expanded or
// hidden.
func FromNode(n *yaml.Node) *Document {
	return &Document{root: n, seen: map[seenKey]bool{}}
}

// Decode parses data and decodes it into v, a pointer to a struct, as
// Document.Decode does, and returns Err.
func Decode(data []byte, lk Lookups, v any) error {
	d, err := Parse(data, lk)
	if err != nil {
		return err
	}
	d.Decode(v)
	return d.Err()
}

// Decode decodes the document into v, a pointer to a struct: every key
// must be known to v's type (an unknown one is a problem naming its line
// and key path, with the closest known key), and a value that cannot be
// decoded is named by its key path, its text hidden when it held a
// reference or may be a secret. An empty document leaves v as it is.
func (d *Document) Decode(v any) {
	if d.root == nil || d.fatal != nil {
		return
	}
	t := reflect.TypeOf(v).Elem()
	// An empty document (only comments) is a null scalar: all defaults.
	if top := d.top(); top.Kind != yaml.MappingNode && top.ShortTag() != "!!null" {
		d.fatal = &keypath.Error{Line: top.Line, Err: fmt.Errorf("the configuration must be a mapping of keys (%s)", topKeys(t))}
		return
	}
	d.checkKnownKeys(d.root, t, "")
	d.decodeError(d.root.Decode(v))
}

// Err reports every problem Decode and DecodeMapping found, joined, each
// a *keypath.Error: the bad references, then the unknown keys, then the
// values that could not be decoded, each kind in the order of the
// document. When the document is not a mapping, that is the one problem.
func (d *Document) Err() error {
	if d.fatal != nil {
		return d.fatal
	}
	return errors.Join(d.expErr, errors.Join(byLine(d.keys)...), errors.Join(byLine(d.values)...))
}

// byLine sorts problems by line, keeping the order of those on one line:
// DecodeMapping finds its problems after Decode found the others.
func byLine(errs []error) []error {
	line := func(err error) int {
		var e *keypath.Error
		if errors.As(err, &e) {
			return e.Line
		}
		return 0
	}
	slices.SortStableFunc(errs, func(a, b error) int { return line(a) - line(b) })
	return errs
}

// Value returns the value of one of the document's top-level keys, nil
// when it has none.
func (d *Document) Value(key string) *yaml.Node {
	top := d.top()
	if top == nil || top.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == key {
			return deref(top.Content[i+1])
		}
	}
	return nil
}

// Field is a key of a mapping read by DecodeMapping.
type Field struct {
	Key string
	// Into receives the key's value; nil means the key is allowed and its
	// value is decoded by someone else (by Decode, into a struct field).
	Into any
}

// DecodeMapping decodes n, a mapping of the document, key by key: the
// value of a key listed in fields is decoded into its Into as strictly as
// Decode decodes (unknown keys, key paths, hidden values), a null value is
// left alone, and any other key is an unknown key, with the closest
// field's key suggested. It is for mappings whose keys are known only once
// the rest is decoded; Decode reports n being the wrong shape. A mapping
// is decoded once however often aliases or merges bring it back.
func (d *Document) DecodeMapping(n *yaml.Node, fields []Field) {
	if n = deref(n); n != nil && d.fatal == nil {
		d.decodeMapping(n, fields, d.index().paths[n])
	}
}

func (d *Document) decodeMapping(n *yaml.Node, fields []Field, path string) {
	k := seenKey{n, nil}
	if n.Kind != yaml.MappingNode || d.seen[k] {
		return
	}
	d.seen[k] = true
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.Key
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], deref(n.Content[i+1])
		if key.Kind == yaml.ScalarNode && key.Value == "<<" && key.ShortTag() == "!!merge" {
			// A merge key brings the merged mappings' keys here.
			merged := []*yaml.Node{val}
			if val.Kind == yaml.SequenceNode {
				merged = val.Content
			}
			for _, m := range merged {
				d.decodeMapping(deref(m), fields, path)
			}
			continue
		}
		p := keyPath(path, key.Value)
		j := slices.Index(keys, key.Value)
		switch {
		case j < 0:
			d.keys = append(d.keys, unknownKey(key, p, keys))
		case fields[j].Into == nil || val.ShortTag() == "!!null":
		default:
			d.checkKnownKeys(val, reflect.TypeOf(fields[j].Into), p)
			d.decodeError(val.Decode(fields[j].Into))
		}
	}
}

// top is the document's content: the root mapping of a file.
func (d *Document) top() *yaml.Node {
	n := d.root
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	return n
}

func (d *Document) checkKnownKeys(n *yaml.Node, t reflect.Type, path string) {
	c := &knownKeys{seen: d.seen}
	c.check(n, t, path)
	d.keys = append(d.keys, c.errs...)
}

// deref follows an alias to its anchor.
func deref(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode {
		return n.Alias
	}
	return n
}

// topKeys lists the first few keys of a configuration type, for messages.
func topKeys(t reflect.Type) string {
	keys := fieldsOf(t).keys
	if len(keys) > 3 {
		keys = append(keys[:3:3], "...")
	}
	return strings.Join(keys, ", ")
}
