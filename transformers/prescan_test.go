package transformers

import (
	"encoding/json"
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
func FuzzPrescan(f *testing.F) {
	f.Add([]byte(`{"a":[1,"b\u00e9",{"c":null}]}`))
	f.Add([]byte(`[1e5,-0.5,"\ud83d\ude00"]`))
	f.Add([]byte(`{"a":1 "b":2}`))
	f.Add([]byte(`{"a":[1,],"b":{}}`))
	f.Add([]byte(`[{"a" : {"b":[]} }, 2] 3`))
	lim := Limits{}.WithDefaults()
	f.Fuzz(func(t *testing.T, b []byte) {
		var r scanResult
		prescan(b, lim, nil, &r, nil)
		msg, ok := r.msg, r.ok
		if json.Valid(b) && !ok && !strings.Contains(msg, "nesting") && !strings.Contains(msg, "longer") && !strings.Contains(msg, "surrogate") {
			t.Fatalf("prescan rejects valid JSON %q: %s", b, msg)
		}
		// Whatever passes, the structural check agrees with encoding/json
		// (what the tree-less path relies on).
		if ok && r.wellFormed != json.Valid(b) {
			t.Fatalf("prescan(%q).wellFormed = %v, json.Valid = %v", b, r.wellFormed, json.Valid(b))
		}
	})
}
