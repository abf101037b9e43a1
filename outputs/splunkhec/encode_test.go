package splunkhec

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
)

func testEncoder(t testing.TB, cfg Config) *encoder {
	t.Helper()
	e, err := newEncoder(cfg.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEncodeEnvelope(t *testing.T) {
	e := testEncoder(t, Config{Index: "audit-{source}", Host: "{label:cluster}", Fields: []string{"env", "absent"}})
	ev := outputstest.Event(1)
	b, err := e.appendEvent(nil, &ev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(b, []byte("}\n")) {
		t.Fatalf("envelope does not end in a newline: %s", b)
	}
	var got struct {
		Time       json.Number       `json:"time"`
		Host       string            `json:"host"`
		Source     string            `json:"source"`
		Sourcetype string            `json:"sourcetype"`
		Index      string            `json:"index"`
		Fields     map[string]string `json:"fields"`
		Event      json.RawMessage   `json:"event"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	// outputstest.Base is 09:30:00.123456 UTC on 2026-11-21, event 1 a
	// second later: milliseconds kept, the rest dropped.
	if want := "1795253401.123"; got.Time.String() != want {
		t.Errorf("time = %s, want %s", got.Time, want)
	}
	if ev.Time.Unix() != 1795253401 {
		t.Fatalf("fixture moved: %d", ev.Time.Unix())
	}
	want := map[string]string{"host": "dev-1", "source": "auditpipe:alertmanager-main", "sourcetype": "auditpipe:alertmanager", "index": "audit-alertmanager"}
	gotm := map[string]string{"host": got.Host, "source": got.Source, "sourcetype": got.Sourcetype, "index": got.Index}
	for k, v := range want {
		if gotm[k] != v {
			t.Errorf("%s = %q, want %q", k, gotm[k], v)
		}
	}
	if len(got.Fields) != 1 || got.Fields["env"] != "test" {
		t.Errorf("fields = %v, want only env=test", got.Fields)
	}
	if !bytes.Equal(got.Event, eventjson.Append(nil, &ev)) {
		t.Errorf("event is not the event's JSON form:\n%s", got.Event)
	}
}

func TestEncodeOmitsEmptyAndEscapes(t *testing.T) {
	e := testEncoder(t, Config{Host: "{label:nohost}", Source: `s"{label:q}`, Fields: []string{"absent"}})
	ev := outputstest.Event(0)
	ev.Labels = map[string]string{"q": "a\\b\né"}
	b, err := e.appendEvent(nil, &ev)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if _, ok := got["host"]; ok {
		t.Errorf("empty host sent: %s", b)
	}
	if _, ok := got["fields"]; ok {
		t.Errorf("empty fields sent: %s", b)
	}
	if got["source"] != "s\"a\\b\né" {
		t.Errorf("source = %q", got["source"])
	}
}

func TestEncodeInvalidIndex(t *testing.T) {
	e := testEncoder(t, Config{Index: "{label:ix}"})
	ev := outputstest.Event(0)
	ev.Labels = map[string]string{"ix": "Not An Index"}
	prefix := []byte("kept")
	b, err := e.appendEvent(prefix, &ev)
	if err == nil || !outputs.IsPermanent(err) {
		t.Fatalf("err = %v, want a permanent error", err)
	}
	if string(b) != "kept" {
		t.Errorf("dst changed to %q", b)
	}
	ev.Labels["ix"] = ""
	if b, err = e.appendEvent(nil, &ev); err != nil || bytes.Contains(b, []byte(`"index"`)) {
		t.Errorf("empty index: err %v, body %s; want no index member", err, b)
	}
}

// BenchmarkEncode encodes batches of 100 events with the default
// templates and one indexed field.
func BenchmarkEncode(b *testing.B) {
	const batch = 100
	evs := outputstest.Events(batch)
	e := testEncoder(b, Config{Index: "audit", Fields: []string{"cluster"}})
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = buf[:0]
		for i := range evs {
			var err error
			if buf, err = e.appendEvent(buf, &evs[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.SetBytes(int64(len(buf)))
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}
