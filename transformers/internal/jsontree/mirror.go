//go:build !auditpipe_safejson

package jsontree

import (
	"sync"
	"unsafe"

	"github.com/valyala/fastjson"
)

// fastjson builds trees only by parsing JSON text or through its Arena,
// which escapes every string on the way in, unescapes it again on first
// read and searches an object's members on every Set: for a msgpack
// record, that was most of its cost. Its parser copies the text and keeps
// every value array it outgrew: for JSON, that was several times the
// payload. Tree holds the values both decoders (msgpack records, JSON
// text) write directly instead, through types that mirror fastjson.Value's
// layout. The layout is fastjson's private one: go.mod pins the version it
// was written for, and TestTreeMirrorsFastjson checks both the layout
// field by field and that every tree built through it reads, through
// fastjson's public API, as fastjson's own parser reads the same text.
// The build tag auditpipe_safejson replaces this file with arena.go,
// which uses fastjson's public API only.

// WritesViews tells that the strings of a tree written value by value are
// the strings it was given, not copies (the safe build copies them).
const WritesViews = true

// treeValue mirrors fastjson.Value.
type treeValue struct {
	o treeObject
	a []*fastjson.Value
	s string
	t fastjson.Type
}

// treeObject mirrors fastjson.Object.
type treeObject struct {
	kvs           []treeKV
	keysUnescaped bool
}

// treeKV mirrors fastjson's member (kv).
type treeKV struct {
	k string
	v *fastjson.Value
}

// The sizes must match; the test checks every field's offset and type.
var (
	_ [unsafe.Sizeof(fastjson.Value{}) - unsafe.Sizeof(treeValue{})]struct{}
	_ [unsafe.Sizeof(treeValue{}) - unsafe.Sizeof(fastjson.Value{})]struct{}
)

func mirror(v *treeValue) *Value { return (*Value)(unsafe.Pointer(v)) }

// Visit calls f for each member of an object, in order; nothing for
// another kind. The members of a tree this package wrote are read in
// place; a tree fastjson parsed may need its names unescaped first.
func (v *Value) Visit(f func(k []byte, c *Value)) {
	tv := (*treeValue)(unsafe.Pointer(v))
	if tv.t != fastjson.TypeObject || !tv.o.keysUnescaped {
		v.visitPublic(f)
		return
	}
	for i := range tv.o.kvs {
		kv := &tv.o.kvs[i]
		f(unsafe.Slice(unsafe.StringData(kv.k), len(kv.k)), (*Value)(kv.v))
	}
}

// Tree allocates a document's values, members and array elements in
// slabs that are reused from one document to the next. The decoder takes
// an object's or array's children as one run and writes every value whole.
type Tree struct {
	vals slab[treeValue]
	kvs  slab[treeKV]
	ptrs slab[*fastjson.Value]
}

var treePool = sync.Pool{New: func() any { return new(Tree) }}

// GetTree takes an empty tree from the pool.
func GetTree() *Tree { return treePool.Get().(*Tree) }

// PutTree returns t to its pool, unless an outsized payload grew it, more
// than maxPooled bytes, or its stale pointers (see Reset) would keep an
// outsized payload alive (big): a JSON tree's strings point into the
// payload.
func PutTree(t *Tree, big bool, maxPooled int) {
	if t == nil || big {
		return
	}
	t.Reset()
	size := 0
	for _, v := range t.vals.spare {
		size += cap(v) * int(unsafe.Sizeof(treeValue{}))
	}
	for _, kv := range t.kvs.spare {
		size += cap(kv) * int(unsafe.Sizeof(treeKV{}))
	}
	for _, p := range t.ptrs.spare {
		size += cap(p) * int(unsafe.Sizeof((*fastjson.Value)(nil)))
	}
	if size <= maxPooled {
		treePool.Put(t)
	}
}

// Reset keeps the slabs for the next document. They are not cleared: the
// stale pointers they hold are overwritten before they are read again,
// and keep at most the last record a pooled tree saw alive.
func (t *Tree) Reset() {
	t.vals.reset()
	t.kvs.reset()
	t.ptrs.reset()
}

// slabSize is the number of elements of a new slab: a few records' worth.
const slabSize = 256

// slab hands out runs of T from fixed-size arrays that never move, so
// pointers into them stay valid while the document is open. A run may hold
// what an earlier document left: the caller overwrites all of it.
type slab[T any] struct {
	cur   []T
	full  [][]T // filled, handed back to spare on reset
	spare [][]T // ready for reuse (not cleared: see reset)
}

func (s *slab[T]) take(n int) []T {
	if cap(s.cur)-len(s.cur) < n {
		if s.cur != nil {
			s.full = append(s.full, s.cur)
		}
		s.cur = nil
		for i, sp := range s.spare {
			if cap(sp) >= n {
				s.cur = sp
				s.spare = append(s.spare[:i], s.spare[i+1:]...)
				break
			}
		}
		if s.cur == nil {
			s.cur = make([]T, 0, max(slabSize, n))
		}
	}
	start := len(s.cur)
	s.cur = s.cur[:start+n]
	return s.cur[start : start+n : start+n]
}

func (s *slab[T]) reset() {
	for _, f := range s.full {
		s.spare = append(s.spare, f[:0])
	}
	s.full = s.full[:0]
	if s.cur != nil {
		s.spare = append(s.spare, s.cur[:0])
		s.cur = nil
	}
}

// newValue takes one value from the slab, the common case inline.
func (t *Tree) newValue() *treeValue {
	s := &t.vals
	if n := len(s.cur); n < cap(s.cur) {
		s.cur = s.cur[:n+1]
		return &s.cur[n]
	}
	return &s.take(1)[0]
}

// Writing a tree one value at a time (msgpack records, Go values). A
// container is made with its size, and its members or elements are set
// by index, each exactly once, before the tree is read. Strings and
// numbers keep s: it must live as long as the tree.

// Literal is null, true or false.
func (t *Tree) Literal(k Kind) *Value {
	v := t.newValue()
	*v = treeValue{t: fastjson.Type(k)}
	return mirror(v)
}

// String is a string value holding s, unescaped.
func (t *Tree) String(s string) *Value {
	v := t.newValue()
	*v = treeValue{t: fastjson.TypeString, s: s}
	return mirror(v)
}

// Number is a number value spelt s, a valid JSON number.
func (t *Tree) Number(s string) *Value {
	v := t.newValue()
	*v = treeValue{t: fastjson.TypeNumber, s: s}
	return mirror(v)
}

// Object is an object of n members, to be set with SetMember.
func (t *Tree) Object(n int) *Value {
	v := t.newValue()
	*v = treeValue{t: fastjson.TypeObject, o: treeObject{kvs: t.kvs.take(n), keysUnescaped: true}}
	return mirror(v)
}

// SetMember sets member i of an object Object made, named k.
func (t *Tree) SetMember(obj *Value, i int, k string, v *Value) {
	(*treeValue)(unsafe.Pointer(obj)).o.kvs[i] = treeKV{k: k, v: v.fj()}
}

// Array is an array of n elements, to be set with SetElement.
func (t *Tree) Array(n int) *Value {
	v := t.newValue()
	*v = treeValue{t: fastjson.TypeArray, a: t.ptrs.take(n)}
	return mirror(v)
}

// SetElement sets element i of an array Array made.
func (t *Tree) SetElement(arr *Value, i int, v *Value) {
	(*treeValue)(unsafe.Pointer(arr)).a[i] = v.fj()
}

// Head is an array holding v alone: what a format detector sees of a
// batch (its first item).
func (t *Tree) Head(v *Value) *Value {
	if v == nil {
		return t.Array(0)
	}
	a := t.Array(1)
	t.SetElement(a, 0, v)
	return a
}

// Finish is root: a tree written value by value can be read at once.
func (t *Tree) Finish(root *Value) *Value { return root }
