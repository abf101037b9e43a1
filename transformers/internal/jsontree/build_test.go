package jsontree

import (
	"bytes"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/transformers/internal/jsonscan"
	"github.com/valyala/fastjson"
)

// sameTree reports whether two trees hold the same values, members in the
// same order, as fastjson reads them.
func sameTree(a, b *fastjson.Value) bool {
	if a.Type() != b.Type() {
		return false
	}
	switch a.Type() {
	case fastjson.TypeObject:
		oa, _ := a.Object()
		ob, _ := b.Object()
		if oa.Len() != ob.Len() {
			return false
		}
		var ka, kb []string
		var va, vb []*fastjson.Value
		oa.Visit(func(k []byte, v *fastjson.Value) { ka, va = append(ka, string(k)), append(va, v) })
		ob.Visit(func(k []byte, v *fastjson.Value) { kb, vb = append(kb, string(k)), append(vb, v) })
		for i := range ka {
			if ka[i] != kb[i] || !sameTree(va[i], vb[i]) {
				return false
			}
		}
		return true
	case fastjson.TypeArray:
		aa, _ := a.Array()
		ab, _ := b.Array()
		if len(aa) != len(ab) {
			return false
		}
		for i := range aa {
			if !sameTree(aa[i], ab[i]) {
				return false
			}
		}
		return true
	case fastjson.TypeString:
		sa, _ := a.StringBytes()
		sb, _ := b.StringBytes()
		return bytes.Equal(sa, sb)
	}
	return bytes.Equal(a.MarshalTo(nil), b.MarshalTo(nil))
}

// buildBoth builds in's tree with Build and with fastjson's parser, for
// what the scan passes; ok is false for what it does not.
func buildBoth(t *testing.T, in []byte) (built, parsed *fastjson.Value, ok bool) {
	var r jsonscan.Result
	jsonscan.Scan(in, testLimits, nil, &r, nil)
	if !r.OK || !r.WellFormed {
		return nil, nil, false
	}
	var scratch []byte
	built = GetTree().Build(in, &scratch, !r.Escaped).fj()
	var p fastjson.Parser
	parsed, err := p.ParseBytes(in)
	if err != nil {
		t.Fatalf("fastjson refuses %q, which the prescan passed: %v", in, err)
	}
	if built == nil {
		t.Fatalf("the tree builder refuses %q, which the prescan passed", in)
	}
	if !r.Escaped {
		// The general string path, on text the plain one served.
		var scratch2 []byte
		if other := GetTree().Build(in, &scratch2, false); other == nil || !sameTree(other.fj(), built) {
			t.Fatalf("%q: the plain and general string paths differ", in)
		}
	}
	return built, parsed, true
}

func TestBuildTree(t *testing.T) {
	for _, in := range []string{
		`{}`, `[]`, ` { "a" : [ 1 , -2.5e3 , true , false , null , "x" ] } `,
		`{"a\u00e9\n":"\ud83d\ude00\"\\\/\b\f\n\r\t","b":{"c":[[],{}]}}`,
		`"only a string"`, `12`, `[{"a":1,"a":2}]`, `{"` + strings.Repeat("k", 300) + `":"` + strings.Repeat(`\u00e9`, 300) + `"}`,
	} {
		built, parsed, ok := buildBoth(t, []byte(in))
		if !ok {
			t.Fatalf("prescan refuses %q", in)
		}
		if !sameTree(built, parsed) {
			t.Errorf("%s: the built tree differs from fastjson's: %s", in, built)
		}
	}
}

// FuzzBuildTree holds the tree builder to fastjson on whatever the
// scan passes.
func FuzzBuildTree(f *testing.F) {
	f.Add([]byte(`{"a":[1,"b\u00e9",{"c":null}],"d":"\ud83d\ude00\n"}`))
	f.Add([]byte(`[1e5,-0.5,true,false,null,[],{}]`))
	f.Add([]byte(`{"k":"` + strings.Repeat(`\"`, 40) + `"}`))
	f.Add([]byte(` [ {"a" : {"b":[ ]} } , 2 ] `))
	f.Fuzz(func(t *testing.T, in []byte) {
		built, parsed, ok := buildBoth(t, in)
		if ok && !sameTree(built, parsed) {
			t.Fatalf("%q: the built tree differs from fastjson's", in)
		}
	})
}

// testLimits are the default limits (transformers.Limits.WithDefaults).
var testLimits = jsonscan.Limits{MaxDepth: 64, MaxStringLength: 1 << 20, MaxMembers: 10000, MaxValues: 500000}
