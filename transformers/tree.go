package transformers

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
// payload. tree holds the values both decoders (msgpack.go, jsontree.go)
// write directly instead, through types that mirror fastjson.Value's
// layout (v1.6); TestTreeMirrorsFastjson compares the two field by field,
// so an upgrade that changes the layout fails the tests rather than
// memory.

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

// tree allocates a document's values, members and array elements in
// slabs that are reused from one document to the next. The decoder takes
// an object's or array's children as one run and writes every value whole.
type tree struct {
	vals slab[treeValue]
	kvs  slab[treeKV]
	ptrs slab[*fastjson.Value]
}

var treePool = sync.Pool{New: func() any { return new(tree) }}

// putTree returns t to its pool, unless an outsized payload grew it or
// its stale pointers (see reset) would keep an outsized payload alive
// (big): a JSON tree's strings point into the payload.
func putTree(t *tree, big bool) {
	if t == nil || big {
		return
	}
	t.reset()
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

// reset keeps the slabs for the next document. They are not cleared: the
// stale pointers they hold are overwritten before they are read again,
// and keep at most the last record a pooled tree saw alive.
func (t *tree) reset() {
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
