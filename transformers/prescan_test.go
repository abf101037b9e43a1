package transformers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestPrescan(t *testing.T) {
	lim := Limits{MaxDepth: 3, MaxStringLength: 8}.WithDefaults()
	tests := []struct {
		in   string
		kind error
	}{
		{`{"a":[1,-2.5e3,true,false,null],"b":"x\u00e9\n"}`, nil},
		{`{"a":{"b":{"c":1}}}`, nil},
		{`{"a":{"b":{"c":[1]}}}`, ErrTooDeep},
		{`"123456789"`, ErrStringTooLong},
		{`"\u00e9\u00e9\u00e9\u00e9"`, nil}, // 24 raw bytes, 8 unescaped
		{`"\u00e9\u00e9\u00e9\u00e9\u00e9"`, ErrStringTooLong},
		{"\"a\x01\"", ErrSyntax},
		{`"a\x"`, ErrSyntax},
		{`"\ud800"`, ErrSyntax},
		{`"\udc00\ud800"`, ErrSyntax},
		{`"\ud83d\ude00"`, nil},
		{`[NaN]`, ErrSyntax},
		{`[+1]`, ErrSyntax},
		{`[.5]`, ErrSyntax},
		{`[1.2.3]`, ErrSyntax},
		{`[01]`, ErrSyntax},
		{`[inf]`, ErrSyntax},
		{`"unterminated`, ErrSyntax},
		{`"a very long string, escaped \" all the way"`, ErrStringTooLong},
	}
	for _, tt := range tests {
		var r scanResult
		prescan([]byte(tt.in), lim, nil, &r, nil)
		if (tt.kind == nil) != r.ok || r.kind != tt.kind {
			t.Errorf("prescan(%q) = %v %q, want %v", tt.in, r.kind, r.msg, tt.kind)
		}
	}
}

func TestIndexSpecial(t *testing.T) {
	for _, s := range []string{"", "abc", "abcdefgh\"", "abcdefghijklmnop\\", "ab\x1fcdefgh", strings.Repeat("x", 40) + `"`, "\x7f\x80\xff\"", "é\"", "!!!!!!!!#"} {
		want := -1
		for i := 0; i < len(s); i++ {
			if c := s[i]; c == '"' || c == '\\' || c < 0x20 {
				want = i
				break
			}
		}
		if got := indexSpecial([]byte(s)); got != want {
			t.Errorf("indexSpecial(%q) = %d, want %d", s, got, want)
		}
	}
}

// FuzzPrescan: whatever stdlib calls valid JSON within the limits passes,
// except unpaired surrogates, which Go decodes to U+FFFD and JCS rejects.
// The member limit is low here, so that small inputs reach it.
func FuzzPrescan(f *testing.F) {
	f.Add([]byte(`{"a":[1,"b\u00e9",{"c":null}]}`))
	f.Add([]byte(`[1e5,-0.5,"\ud83d\ude00"]`))
	f.Add([]byte(`{"a":1 "b":2}`))
	f.Add([]byte(`{"a":[1,],"b":{}}`))
	f.Add([]byte(`[{"a" : {"b":[]} }, 2] 3`))
	f.Add([]byte(wideObject(fuzzMembers + 1)))
	f.Add([]byte(`{"a":` + wideArray(fuzzMembers+1) + `}`))
	f.Add([]byte(wideArray(fuzzMembers)))
	lim := Limits{MaxMembers: fuzzMembers}.WithDefaults()
	f.Fuzz(func(t *testing.T, b []byte) {
		var r scanResult
		prescan(b, lim, nil, &r, nil)
		msg, ok := r.msg, r.ok
		if json.Valid(b) && !ok && !strings.Contains(msg, "nesting") && !strings.Contains(msg, "longer") &&
			!strings.Contains(msg, "surrogate") && r.kind != ErrTooManyMembers {
			t.Fatalf("prescan rejects valid JSON %q: %s", b, msg)
		}
		if !ok && r.kind == ErrTooManyMembers && b[r.off] != '}' && b[r.off] != ']' {
			t.Fatalf("prescan(%q): too many members at byte %d, which closes nothing", b, r.off)
		}
		// Whatever passes, the structural check agrees with encoding/json
		// (what the tree-less path relies on).
		if ok && r.wellFormed != json.Valid(b) {
			t.Fatalf("prescan(%q).wellFormed = %v, json.Valid = %v", b, r.wellFormed, json.Valid(b))
		}
		if !ok || !r.wellFormed {
			return
		}
		// A top-level array's elements are as many as it counted, and
		// eachElement finds each where encoding/json does.
		var top []json.RawMessage
		if tb := bytes.TrimSpace(b); len(tb) > 0 && tb[0] == '[' && json.Unmarshal(b, &top) == nil {
			var elems [][]byte
			eachElement(b, func(_ int, e []byte) bool { elems = append(elems, e); return true })
			if len(elems) != len(top) || r.top != len(top) {
				t.Fatalf("prescan(%q): %d elements, top %d; want %d", b, len(elems), r.top, len(top))
			}
			for i, e := range elems {
				if !bytes.Equal(bytes.TrimSpace(top[i]), e) {
					t.Fatalf("eachElement(%q): element %d is %q, want %q", b, i, e, top[i])
				}
			}
		}
	})
}

// fuzzMembers is the member limit of the fuzz targets: low, so that small
// inputs reach it.
const fuzzMembers = 8

// wideObject is an object of n members; wideArray an array of n elements.
func wideObject(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"k%d":%d`, i, i)
	}
	return b.String() + "}"
}

func wideArray(n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat("1,", n), ",") + "]"
}

func TestPrescanMembers(t *testing.T) {
	lim := Limits{MaxMembers: 3}.WithDefaults()
	tests := []struct {
		in     string
		ok     bool
		object bool
	}{
		{`{"a":1,"b":2,"c":3}`, true, false},
		{`{"a":1,"b":2,"c":3,"d":4}`, false, true},
		{`[1,2,3]`, true, false},
		{`[1,2,3,4]`, false, false},
		{`[[1,2,3],[1,2,3],[1,2,3]]`, true, false},
		{`[[1,2,3],[1,2,3],[1,2,3,4]]`, false, false},
		{`{"a":{"b":[{},{},{"c":1,"d":2,"e":3,"f":4}]}}`, false, true},
		{`[{},[],""]`, true, false},
	}
	for _, tt := range tests {
		var r scanResult
		prescan([]byte(tt.in), lim, nil, &r, nil)
		if r.ok != tt.ok || !r.ok && (r.kind != ErrTooManyMembers || r.object != tt.object) {
			t.Errorf("prescan(%s) = ok %v, %v, object %v; want ok %v, object %v", tt.in, r.ok, r.kind, r.object, tt.ok, tt.object)
		}
	}
}
