package cloudevents_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/outputs/cloudevents"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// reference builds the structured CloudEvent with encoding/json, the
// independent implementation the hand-written encoder must agree with.
func reference(t *testing.T, ev *auditpipe.Event) []byte {
	t.Helper()
	a := cloudevents.AttributesOf(ev)
	m := map[string]any{
		"specversion": cloudevents.SpecVersion, "id": a.ID, "source": a.Source, "type": a.Type,
		"datacontenttype": cloudevents.DataContentType, "data": json.RawMessage(eventjson.Append(nil, ev)),
	}
	for k, v := range map[string]string{"time": a.Time, "subject": a.Subject, "auditaction": a.Action, "auditoutcome": a.Outcome} {
		if v != "" {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func canon(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	out, _ := json.Marshal(v)
	return string(out)
}

func TestStructuredAgreesWithEncodingJSON(t *testing.T) {
	evs := outputstest.Events(8)
	evs[0].Resource = auditpipe.Resource{}     // no subject
	evs[1].Time = time.Time{}                  // no time (invalid, but the encoder must cope)
	evs[2].Source.Name = ""                    // source without a name
	evs[3].Action = "odd \"action\"\u2028\x01" // escaping
	for i := range evs {
		got := cloudevents.AppendStructured(nil, &evs[i])
		if canon(t, got) != canon(t, reference(t, &evs[i])) {
			t.Errorf("event %d:\n got %s\nwant %s", i, got, reference(t, &evs[i]))
		}
	}
}

func TestGolden(t *testing.T) {
	got := cloudevents.AppendBatch(nil, outputstest.Events(4))
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "  "); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	path := filepath.Join("testdata", "batch.golden.json")
	if *update {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("batch differs from %s (run with -update to accept):\n%s", path, pretty.Bytes())
	}
	if got := cloudevents.AppendBatch(nil, nil); string(got) != "[]" {
		t.Errorf("empty batch = %s", got)
	}
}

func TestAttributes(t *testing.T) {
	ev := outputstest.Event(3)
	a := cloudevents.AttributesOf(&ev)
	want := cloudevents.Attributes{ID: ev.ID, Source: "auditpipe/k8s/k8s-main", Type: "io.auditpipe.audit.v1",
		Time: "2026-11-21T09:30:03.123456Z", Subject: "team-a/stack-3", Action: "create pods", Outcome: "success"}
	if a != want {
		t.Errorf("got %+v\nwant %+v", a, want)
	}
}

func BenchmarkAppendStructured(b *testing.B) {
	evs := outputstest.Events(100)
	buf := make([]byte, 0, 1<<20)
	b.ReportAllocs()
	for b.Loop() {
		buf = cloudevents.AppendBatch(buf[:0], evs)
	}
	b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "events/s")
}
