package jsonscan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestPrescan(t *testing.T) {
	lim := Limits{MaxDepth: 3, MaxStringLength: 8}.withDefaults()
	tests := []struct {
		in   string
		kind Fault
	}{
		{`{"a":[1,-2.5e3,true,false,null],"b":"x\u00e9\n"}`, NoFault},
		{`{"a":{"b":{"c":1}}}`, NoFault},
		{`{"a":{"b":{"c":[1]}}}`, TooDeep},
		{`"123456789"`, StringTooLong},
		{`"\u00e9\u00e9\u00e9\u00e9"`, NoFault}, // 24 raw bytes, 8 unescaped
		{`"\u00e9\u00e9\u00e9\u00e9\u00e9"`, StringTooLong},
		{"\"a\x01\"", Syntax},
		{`"a\x"`, Syntax},
		{`"\ud800"`, Syntax},
		{`"\udc00\ud800"`, Syntax},
		{`"\ud83d\ude00"`, NoFault},
		{`[NaN]`, Syntax},
		{`[+1]`, Syntax},
		{`[.5]`, Syntax},
		{`[1.2.3]`, Syntax},
		{`[01]`, Syntax},
		{`[inf]`, Syntax},
		{`"unterminated`, Syntax},
		{`"a very long string, escaped \" all the way"`, StringTooLong},
	}
	for _, tt := range tests {
		var r Result
		Scan([]byte(tt.in), lim, nil, &r, nil)
		if (tt.kind == NoFault) != r.OK || r.Fault != tt.kind {
			t.Errorf("Scan(%q) = %v %q, want %v", tt.in, r.Fault, r.Msg, tt.kind)
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
		if got := IndexSpecial([]byte(s)); got != want {
			t.Errorf("IndexSpecial(%q) = %d, want %d", s, got, want)
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
	lim := Limits{MaxMembers: fuzzMembers}.withDefaults()
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Result
		Scan(b, lim, nil, &r, nil)
		msg, ok := r.Msg, r.OK
		if json.Valid(b) && !ok && !strings.Contains(msg, "nesting") && !strings.Contains(msg, "longer") &&
			!strings.Contains(msg, "surrogate") && r.Fault != TooManyMembers {
			t.Fatalf("prescan rejects valid JSON %q: %s", b, msg)
		}
		if !ok && r.Fault == TooManyMembers && b[r.Off] != '}' && b[r.Off] != ']' {
			t.Fatalf("Scan(%q): too many members at byte %d, which closes nothing", b, r.Off)
		}
		// Whatever passes, the structural check agrees with encoding/json
		// (what the tree-less path relies on).
		if ok && r.WellFormed != json.Valid(b) {
			t.Fatalf("Scan(%q).wellFormed = %v, json.Valid = %v", b, r.WellFormed, json.Valid(b))
		}
		if !ok || !r.WellFormed {
			return
		}
		// A top-level array's elements are as many as it counted, and
		// eachElement finds each where encoding/json does.
		var top []json.RawMessage
		if tb := bytes.TrimSpace(b); len(tb) > 0 && tb[0] == '[' && json.Unmarshal(b, &top) == nil {
			var elems [][]byte
			EachElement(b, func(_ int, e []byte) bool { elems = append(elems, e); return true })
			if len(elems) != len(top) || r.Top != len(top) {
				t.Fatalf("Scan(%q): %d elements, top %d; want %d", b, len(elems), r.Top, len(top))
			}
			for i, e := range elems {
				if !bytes.Equal(bytes.TrimSpace(top[i]), e) {
					t.Fatalf("EachElement(%q): element %d is %q, want %q", b, i, e, top[i])
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
	lim := Limits{MaxMembers: 3}.withDefaults()
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
		var r Result
		Scan([]byte(tt.in), lim, nil, &r, nil)
		if r.OK != tt.ok || !r.OK && (r.Fault != TooManyMembers || r.Object != tt.object) {
			t.Errorf("Scan(%s) = ok %v, %v, object %v; want ok %v, object %v", tt.in, r.OK, r.Fault, r.Object, tt.ok, tt.object)
		}
	}
}

// withDefaults is transformers.Limits.WithDefaults.
func (l Limits) withDefaults() Limits {
	if l.MaxDepth == 0 {
		l.MaxDepth = 64
	}
	if l.MaxStringLength == 0 {
		l.MaxStringLength = 1 << 20
	}
	if l.MaxMembers == 0 {
		l.MaxMembers = 10000
	}
	if l.MaxValues == 0 {
		l.MaxValues = 500000
	}
	return l
}
