package transformers

import (
	"errors"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/transformers/internal/jsontree"
	"github.com/valyala/fastjson"
)

// TestNodeTimeYearBounds: a timestamp outside the schema's years 1..9999 is
// a located ErrValue at the field, for every transformer reading it.
func TestNodeTimeYearBounds(t *testing.T) {
	for _, tc := range []struct {
		json string
		unit time.Duration
		ok   bool
	}{
		{`1674124447947`, time.Millisecond, true},
		{`"2026-11-21T09:30:00Z"`, time.Second, true},
		{`1871732187060000`, time.Millisecond, false}, // year 61282
		{`-62135596801`, time.Second, false},          // one second before year 1
		{`"253402300800"`, time.Second, false},        // year 10000, as a numeric string
	} {
		v := fastjson.MustParse(`{"ts":` + tc.json + `}`)
		_, err := newNode("test", (*jsontree.Value)(v)).Get("ts").Time(tc.unit)
		if tc.ok != (err == nil) {
			t.Errorf("%s: err = %v", tc.json, err)
		}
		if err != nil && (!errors.Is(err, ErrValue) || err.Path != "$.ts") {
			t.Errorf("%s: err = %v (path %s), want ErrValue at $.ts", tc.json, err, err.Path)
		}
	}
}

func TestOptStrings(t *testing.T) {
	root := newNode("test", (*jsontree.Value)(fastjson.MustParse(`{"a":"1","b":null,"c":3,"a":"again","d":{},"e":""}`)))
	tests := []struct {
		names   []string
		want    []string // "<nil>" for nil
		errPath string
	}{
		{[]string{"a", "b", "missing"}, []string{"1", "<nil>", "<nil>"}, ""},
		{[]string{"d", "c"}, nil, "$.d"}, // the first in names' order
		{[]string{"a", "c", "d"}, nil, "$.c"},
	}
	for _, tt := range tests {
		dst := make([][]byte, len(tt.names))
		err := root.OptStrings(tt.names, dst)
		if tt.errPath != "" {
			if err == nil || err.Path != tt.errPath || !errors.Is(err, ErrType) {
				t.Errorf("%v: err %v, want ErrType at %s", tt.names, err, tt.errPath)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tt.names, err)
		}
		for i, w := range tt.want {
			if got := string(dst[i]); (w == "<nil>") != (dst[i] == nil) || (w != "<nil>" && got != w) {
				t.Errorf("%v: %s = %q (nil %v), want %s", tt.names, tt.names[i], got, dst[i] == nil, w)
			}
		}
	}
	dst := make([][]byte, 1)
	if err := root.Get("a").OptStrings([]string{"a"}, dst); err != nil || dst[0] != nil {
		t.Errorf("a string node read as an object: %q, %v", dst[0], err)
	}
}
