package transformers

import (
	"errors"
	"testing"
	"time"

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
		_, err := NewNode("test", v).Get("ts").Time(tc.unit)
		if tc.ok != (err == nil) {
			t.Errorf("%s: err = %v", tc.json, err)
		}
		if err != nil && (!errors.Is(err, ErrValue) || err.Path != "$.ts") {
			t.Errorf("%s: err = %v (path %s), want ErrValue at $.ts", tc.json, err, err.Path)
		}
	}
}
