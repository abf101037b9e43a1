package jsontree

import (
	"unsafe"

	"github.com/valyala/fastjson"
)

// Value is one value of a tree: nil stands for a missing one.
type Value fastjson.Value

// Kind is the JSON kind of a value.
type Kind uint8

// Kinds of values, numbered as fastjson numbers its types, so that Kind
// costs a conversion.
const (
	Null   = Kind(fastjson.TypeNull)
	Object = Kind(fastjson.TypeObject)
	Array  = Kind(fastjson.TypeArray)
	String = Kind(fastjson.TypeString)
	Number = Kind(fastjson.TypeNumber)
	True   = Kind(fastjson.TypeTrue)
	False  = Kind(fastjson.TypeFalse)
)

func (v *Value) fj() *fastjson.Value { return (*fastjson.Value)(v) }

// Kind is the kind of v, which must not be nil.
func (v *Value) Kind() Kind { return Kind(v.fj().Type()) }

// Get is member key of an object (the first of that name), or nil.
func (v *Value) Get(key string) *Value { return (*Value)(v.fj().Get(key)) }

// Elements are the elements of an array; nil for another kind.
func (v *Value) Elements() []*Value {
	a, _ := v.fj().Array()
	// The same pointers under another name.
	return unsafe.Slice((**Value)(unsafe.Pointer(unsafe.SliceData(a))), len(a))
}

// NumMembers is the number of members of an object, else 0.
func (v *Value) NumMembers() int {
	o, err := v.fj().Object()
	if err != nil {
		return 0
	}
	return o.Len()
}

// StringBytes is the (unescaped) content of a string, nil for another
// kind; valid while the tree is.
func (v *Value) StringBytes() []byte {
	b, _ := v.fj().StringBytes()
	return b
}

// AppendText appends the JSON text of v: a number's own spelling.
func (v *Value) AppendText(dst []byte) []byte { return v.fj().MarshalTo(dst) }

// Float64 is a number's value.
func (v *Value) Float64() (float64, error) { return v.fj().Float64() }

// Int64 is a number's value when it is an integer that fits.
func (v *Value) Int64() (int64, error) { return v.fj().Int64() }

// SetString replaces the value of the first member key of an object with
// the string s, in place; a missing member is added. It is for formats
// that blank parts of a document they own before encoding it.
func (v *Value) SetString(key, s string) {
	var a fastjson.Arena
	v.fj().Set(key, a.NewString(s))
}

// visitPublic is Visit through fastjson's public API.
func (v *Value) visitPublic(f func(k []byte, c *Value)) {
	o, err := v.fj().Object()
	if err != nil {
		return
	}
	o.Visit(func(k []byte, c *fastjson.Value) { f(k, (*Value)(c)) })
}

// Parse parses JSON text with fastjson's own parser, which is lenient
// where the scan is strict (escapes, numbers, surrogates): for callers
// that only encode the result canonically, which checks numbers itself.
// The tree is valid until the next Parse with the same parser.
func Parse(p *Parser, text []byte) (*Value, error) {
	v, err := (*fastjson.Parser)(p).ParseBytes(text)
	return (*Value)(v), err
}

// Parser is fastjson's parser, for Parse.
type Parser fastjson.Parser
