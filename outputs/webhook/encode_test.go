package webhook

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/outputs/cloudevents"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// stdJSON is the event as encoding/json writes it.
func stdJSON(t testing.TB, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
}

// stdCloudEvent is a structured CloudEvent as encoding/json writes it from
// the attributes, independently of the cloudevents package's encoder.
func stdCloudEvent(t testing.TB, ev *auditpipe.Event) []byte {
	t.Helper()
	a := cloudevents.AttributesOf(ev)
	return stdJSON(t, struct {
		SpecVersion     string           `json:"specversion"`
		ID              string           `json:"id"`
		Source          string           `json:"source"`
		Type            string           `json:"type"`
		Time            string           `json:"time,omitempty"`
		Subject         string           `json:"subject,omitempty"`
		Action          string           `json:"auditaction,omitempty"`
		Outcome         string           `json:"auditoutcome,omitempty"`
		DataContentType string           `json:"datacontenttype"`
		Data            *auditpipe.Event `json:"data"`
	}{"1.0", a.ID, a.Source, a.Type, a.Time, a.Subject, a.Action, a.Outcome, "application/json", ev})
}

// stdBody is the whole body of a request holding evs, built with
// encoding/json.
func stdBody(t testing.TB, m Mode, evs []auditpipe.Event) []byte {
	var parts [][]byte
	for i := range evs {
		if m == ModeCloudEvents || m == ModeCloudEventsBatch {
			parts = append(parts, stdCloudEvent(t, &evs[i]))
		} else {
			parts = append(parts, stdJSON(t, &evs[i]))
		}
	}
	switch {
	case m == ModeNDJSON:
		return append(bytes.Join(parts, []byte{'\n'}), '\n')
	case m.array():
		return append(append([]byte{'['}, bytes.Join(parts, []byte{','})...), ']')
	default:
		return parts[0]
	}
}

// body is what the output sends for evs in one request.
func body(m Mode, evs []auditpipe.Event) []byte {
	if !m.Batched() {
		return m.appendEvent(nil, &evs[0])
	}
	b, _ := m.appendChunk(nil, evs, 1<<30)
	return b
}

// testEvents covers escaping, an event without optional parts and one
// with integrity, beside the ordinary ones.
func testEvents() []auditpipe.Event {
	evs := outputstest.Events(4)
	evs[1].Message = "<script>&\u2028\u2029\x01 \"quoted\" \\ é"
	evs[1].Labels = map[string]string{"z": "1", "a": "<>", "m": ""}
	evs[2].Integrity = &auditpipe.Integrity{Stream: "s", Seq: 7, Hash: "h"}
	evs[3] = auditpipe.Event{SchemaVersion: "1", ID: "minimal", Time: time.Unix(0, 1).UTC(),
		Source: auditpipe.Source{Type: "app"}, Action: "x", Operation: auditpipe.OperationOther, Outcome: auditpipe.OutcomeUnknown}
	return evs
}

// TestBodiesMatchEncodingJSON: every mode's body is byte for byte what
// encoding/json writes, for single events and whole batches.
func TestBodiesMatchEncodingJSON(t *testing.T) {
	evs := testEvents()
	for _, m := range Modes() {
		t.Run(string(m), func(t *testing.T) {
			n := 1
			if m.Batched() {
				n = len(evs)
			}
			for i := 0; i+n <= len(evs); i += n {
				got, want := body(m, evs[i:i+n]), stdBody(t, m, evs[i:i+n])
				if !bytes.Equal(got, want) {
					t.Errorf("\n got %s\nwant %s", got, want)
				}
				if m != ModeNDJSON && !json.Valid(got) {
					t.Errorf("invalid JSON: %s", got)
				}
			}
		})
	}
	if got := body(ModeCloudEventsBatch, evs); !bytes.Equal(got, cloudevents.AppendBatch(nil, evs)) {
		t.Error("cloudevents_batch body differs from cloudevents.AppendBatch")
	}
}

func TestGolden(t *testing.T) {
	evs := testEvents()[:3]
	for _, m := range Modes() {
		t.Run(string(m), func(t *testing.T) {
			var got []byte
			if m.Batched() {
				got = body(m, evs)
			} else {
				for i := range evs {
					got = append(m.appendEvent(got, &evs[i]), '\n')
				}
			}
			path := filepath.Join("testdata", string(m)+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs:\n got %s\nwant %s", path, got, want)
			}
		})
	}
}

// TestAppendChunk: whatever the limit, the chunks hold every event once, in
// order, each within the limit unless it holds a single event, and each is
// exactly the body of its events.
func TestAppendChunk(t *testing.T) {
	evs := outputstest.Events(30)
	for _, m := range []Mode{ModeNDJSON, ModeJSONArray, ModeCloudEventsBatch} {
		for _, max := range []int{1, 500, 1000, 2500, 7000, 1 << 20} {
			var seen []auditpipe.Event
			prefix := []byte("prefix")
			for start := 0; start < len(evs); {
				b, n := m.appendChunk(append([]byte(nil), prefix...), evs[start:], max)
				if n < 1 || !bytes.HasPrefix(b, prefix) {
					t.Fatalf("%s max %d: chunk of %d events", m, max, n)
				}
				b = b[len(prefix):]
				if len(b) > max && n > 1 {
					t.Errorf("%s max %d: %d bytes for %d events", m, max, len(b), n)
				}
				if want := stdBody(t, m, evs[start:start+n]); !bytes.Equal(b, want) {
					t.Errorf("%s max %d: chunk\n got %s\nwant %s", m, max, b, want)
				}
				// A chunk is as full as the limit allows.
				if start+n < len(evs) {
					if more, _ := m.appendChunk(nil, evs[start:start+n+1], 1<<30); len(more) <= max {
						t.Errorf("%s max %d: chunk of %d events could take one more", m, max, n)
					}
				}
				seen = append(seen, evs[start:start+n]...)
				start += n
			}
			if !reflect.DeepEqual(outputstest.IDs(seen), outputstest.IDs(evs)) {
				t.Errorf("%s max %d: events %v", m, max, outputstest.IDs(seen))
			}
		}
	}
}

func TestBatchKey(t *testing.T) {
	evs := outputstest.Events(3)
	sum := sha256.Sum256([]byte(strings.Join(outputstest.IDs(evs), "\n") + "\n"))
	if got, want := batchKey(nil, evs), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("batchKey = %s, want %s", got, want)
	}
	if batchKey(nil, evs) != batchKey(nil, outputstest.Events(3)) {
		t.Error("not deterministic")
	}
	if batchKey(nil, evs) == batchKey(nil, []auditpipe.Event{evs[1], evs[0], evs[2]}) {
		t.Error("order ignored")
	}
	// The separator keeps ids from running into each other.
	a := []auditpipe.Event{{ID: "ab"}, {ID: "c"}}
	b := []auditpipe.Event{{ID: "a"}, {ID: "bc"}}
	if batchKey(nil, a) == batchKey(nil, b) {
		t.Error("ids run together")
	}
}

// BenchmarkEncode measures building request bodies for a batch of 100
// events, which is the output's CPU work per event beside the HTTP round
// trip.
func BenchmarkEncode(b *testing.B) {
	const batch = 100
	evs := outputstest.Events(batch)
	for _, m := range Modes() {
		b.Run(string(m), func(b *testing.B) {
			var buf []byte
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if m.Batched() {
					buf, _ = m.appendChunk(buf[:0], evs, DefaultMaxBatchBytes)
					continue
				}
				for i := range evs {
					buf = m.appendEvent(buf[:0], &evs[i])
				}
			}
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
			if cpu0 >= 0 && cpu > 0 {
				b.ReportMetric(float64(b.N*batch)/(float64(cpu)/1e9), "events/cpu-s")
			}
		})
	}
}
