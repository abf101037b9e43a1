//go:build auditpipe_safejson

package jsontree

import (
	"sync"

	"github.com/valyala/fastjson"
)

// The fallback of mirror.go, built with the tag auditpipe_safejson: trees
// come from fastjson's own parser and nothing else of fastjson's but its
// public API is used, so no fastjson release can make a tree read other
// than its text. It costs what mirror.go saves (the parser copies the
// text, and a record is written out as JSON text to be parsed), and is
// there to be measured against, and to fall back on should fastjson's
// layout change in a way TestTreeMirrorsFastjson cannot be made to pass.

// WritesViews tells that the strings of a tree written value by value are
// the strings it was given, not copies: here they are copies.
const WritesViews = false

// Visit calls f for each member of an object, in order; nothing for
// another kind.
func (v *Value) Visit(f func(k []byte, c *Value)) { v.visitPublic(f) }

// Tree holds the parsers whose trees a document reads, and the values
// being written (Object, String, ...) until Finish parses them.
type Tree struct {
	parsers []*fastjson.Parser
	// Written values, by handle: a handle is a Value no one reads, which
	// Finish replaces with the parsed tree.
	nodes map[*Value]*node
	text  []byte
}

type node struct {
	kind Kind
	s    string
	keys []string
	kids []*Value
}

var (
	treePool   = sync.Pool{New: func() any { return new(Tree) }}
	parserPool fastjson.ParserPool
)

// GetTree takes an empty tree from the pool.
func GetTree() *Tree { return treePool.Get().(*Tree) }

// PutTree returns t to its pool, unless an outsized payload grew it
// (big): its parsers hold copies of the text.
func PutTree(t *Tree, big bool, maxPooled int) {
	if t == nil {
		return
	}
	if big || cap(t.text) > maxPooled {
		return
	}
	t.Reset()
	treePool.Put(t)
}

// Reset gives the parsers back for the next document.
func (t *Tree) Reset() {
	for _, p := range t.parsers {
		parserPool.Put(p)
	}
	clear(t.parsers)
	t.parsers = t.parsers[:0]
	clear(t.nodes)
	t.text = t.text[:0]
}

// Build parses b, JSON text jsonscan.Scan found valid and well formed,
// with a parser of its own that stays t's until Reset. Nil if fastjson
// refuses it, which cannot happen. scratch and plain are what mirror.go
// needs.
func (t *Tree) Build(b []byte, scratch *[]byte, plain bool) *Value {
	p := parserPool.Get()
	v, err := p.ParseBytes(b)
	if err != nil {
		parserPool.Put(p)
		return nil
	}
	t.parsers = append(t.parsers, p)
	return (*Value)(v)
}

func (t *Tree) add(n *node) *Value {
	if t.nodes == nil {
		t.nodes = make(map[*Value]*node)
	}
	h := new(Value)
	t.nodes[h] = n
	return h
}

// Literal is null, true or false.
func (t *Tree) Literal(k Kind) *Value { return t.add(&node{kind: k}) }

// String is a string value holding s, unescaped.
func (t *Tree) String(s string) *Value { return t.add(&node{kind: String, s: s}) }

// Number is a number value spelt s, a valid JSON number.
func (t *Tree) Number(s string) *Value { return t.add(&node{kind: Number, s: s}) }

// Object is an object of n members, to be set with SetMember.
func (t *Tree) Object(n int) *Value {
	return t.add(&node{kind: Object, keys: make([]string, n), kids: make([]*Value, n)})
}

// SetMember sets member i of an object Object made, named k.
func (t *Tree) SetMember(obj *Value, i int, k string, v *Value) {
	n := t.nodes[obj]
	n.keys[i], n.kids[i] = k, v
}

// Array is an array of n elements, to be set with SetElement.
func (t *Tree) Array(n int) *Value { return t.add(&node{kind: Array, kids: make([]*Value, n)}) }

// SetElement sets element i of an array Array made.
func (t *Tree) SetElement(arr *Value, i int, v *Value) { t.nodes[arr].kids[i] = v }

// Finish turns the written value root into a tree that can be read: the
// JSON text of what was written, parsed.
func (t *Tree) Finish(root *Value) *Value {
	t.text = t.appendNode(t.text[:0], root)
	v := t.Build(t.text, nil, false)
	clear(t.nodes)
	return v
}

func (t *Tree) appendNode(dst []byte, h *Value) []byte {
	n := t.nodes[h]
	switch n.kind {
	case Object:
		dst = append(dst, '{')
		for i, k := range n.keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, []byte(k))
			dst = append(dst, ':')
			dst = t.appendNode(dst, n.kids[i])
		}
		return append(dst, '}')
	case Array:
		dst = append(dst, '[')
		for i, c := range n.kids {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = t.appendNode(dst, c)
		}
		return append(dst, ']')
	case String:
		return AppendString(dst, []byte(n.s))
	case Number:
		return append(dst, n.s...)
	case True:
		return append(dst, "true"...)
	case False:
		return append(dst, "false"...)
	}
	return append(dst, "null"...)
}

// Head is an array holding v alone: what a format detector sees of a
// batch (its first item).
func (t *Tree) Head(v *Value) *Value {
	var a fastjson.Arena
	arr := a.NewArray()
	if v != nil {
		arr.SetArrayItem(0, v.fj())
	}
	return (*Value)(arr)
}
