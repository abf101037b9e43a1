package auditpipe_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
)

// TestDecodeJSONRoundTrip: what AppendJSON writes, DecodeJSON reads back
// to the same event, and to what encoding/json reads. The decoder's
// strictness and fuzz target live with its first user,
// transformers/external (FuzzDecodeEvent).
func TestDecodeJSONRoundTrip(t *testing.T) {
	for i, ev := range outputstest.Events(16) {
		b := ev.AppendJSON(nil)
		var got, ref auditpipe.Event
		if err := auditpipe.DecodeJSON(b, &got); err != nil {
			t.Fatalf("event %d: %v\n%s", i, err, b)
		}
		if err := json.Unmarshal(b, &ref); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, ref) || string(got.AppendJSON(nil)) != string(b) {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, got, ref)
		}
	}
	var ev auditpipe.Event
	if err := auditpipe.DecodeJSON([]byte(`{"id":"x","nope":1}`), &ev); err == nil {
		t.Error("an unknown member was accepted")
	}
}
