package kafka

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/integrity"
	"github.com/auditpipe/auditpipe/outputs/cloudevents"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var sent = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

// encodeEvents are outputstest's events plus every shape of the optional
// attributes: each way of making a subject, none, no source name, no time.
func encodeEvents() []auditpipe.Event {
	evs := outputstest.Events(10)
	evs[4].Resource = auditpipe.Resource{}
	evs[5].Resource = auditpipe.Resource{ID: "res-5"}
	evs[6].Resource = auditpipe.Resource{Name: "only-name", Namespace: ""}
	evs[7].Resource = auditpipe.Resource{Namespace: "ns", ID: "id-7"}
	evs[8].Source.Name = ""
	evs[9].Time = time.Time{}
	evs[9].Action, evs[9].Outcome = "", ""
	return evs
}

// TestValueMatchesEncodingJSON checks the record value against
// encoding/json: byte for byte against an Encoder without HTML escaping,
// and as decoded values against json.Marshal.
func TestValueMatchesEncodingJSON(t *testing.T) {
	for _, ev := range encodeEvents() {
		_, _, m := appendMessage(nil, nil, "t", &ev, sent)
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(&ev); err != nil {
			t.Fatal(err)
		}
		if got := string(m.Value); got != string(bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
			t.Errorf("event %s:\n got %s\nwant %s", ev.ID, got, want.Bytes())
		}
		std, err := json.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		var a, b any
		if err := json.Unmarshal(m.Value, &a); err != nil {
			t.Fatalf("value is not JSON: %v", err)
		}
		if err := json.Unmarshal(std, &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("event %s: value decodes differently from json.Marshal", ev.ID)
		}
		var back auditpipe.Event
		if err := json.Unmarshal(m.Value, &back); err != nil || back.ID != ev.ID {
			t.Errorf("event %s: value does not decode back: %v", ev.ID, err)
		}
	}
}

// TestHeadersMatchAttributes checks the headers against
// cloudevents.AttributesOf, the definition the webhook's CloudEvents share.
func TestHeadersMatchAttributes(t *testing.T) {
	for _, ev := range encodeEvents() {
		_, _, m := appendMessage(nil, nil, "audit.x", &ev, sent)
		a := cloudevents.AttributesOf(&ev)
		want := map[string]string{
			HeaderSpecVersion: cloudevents.SpecVersion, HeaderID: a.ID, HeaderType: a.Type,
			HeaderSource: a.Source, HeaderContentType: cloudevents.DataContentType,
		}
		for k, v := range map[string]string{HeaderTime: a.Time, HeaderSubject: a.Subject, HeaderAction: a.Action, HeaderOutcome: a.Outcome} {
			if v != "" {
				want[k] = v
			}
		}
		got := map[string]string{}
		for _, h := range m.Headers {
			if _, dup := got[h.Key]; dup {
				t.Errorf("event %s: header %s twice", ev.ID, h.Key)
			}
			got[h.Key] = string(h.Value)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("event %s: headers %v, want %v", ev.ID, got, want)
		}
		if string(m.Key) != ev.ID || m.Topic != "audit.x" || !m.Time.Equal(sent) {
			t.Errorf("event %s: key %q topic %q time %v", ev.ID, m.Key, m.Topic, m.Time)
		}
		if len(m.Headers) > maxHeaders {
			t.Errorf("event %s: %d headers, over maxHeaders", ev.ID, len(m.Headers))
		}
	}
}

// TestMessagesDoNotAlias builds many messages into one buffer and header
// slice, as Write does, and checks each is still intact at the end.
func TestMessagesDoNotAlias(t *testing.T) {
	evs := outputstest.Events(50)
	var buf []byte // grows, so early messages keep older arrays
	hdrs := make([]kafkago.Header, 0, len(evs)*maxHeaders)
	msgs := make([]kafkago.Message, len(evs))
	for i := range evs {
		buf, hdrs, msgs[i] = appendMessage(buf, hdrs, "t", &evs[i], sent)
	}
	for i := range evs {
		_, _, want := appendMessage(nil, nil, "t", &evs[i], sent)
		if !reflect.DeepEqual(msgs[i], want) {
			t.Fatalf("message %d changed after later ones were built", i)
		}
		if cap(msgs[i].Value) != len(msgs[i].Value) || cap(msgs[i].Headers) != len(msgs[i].Headers) {
			t.Fatalf("message %d: pieces not capacity-limited", i)
		}
	}
}

func TestValidTopic(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"audit.spacelift", true}, {"A-b_c.9", true}, {"", false}, {".", false}, {"..", false},
		{"a b", false}, {"a/b", false}, {"é", false}, {string(make([]byte, 250)), false},
		{string(bytes.Repeat([]byte("a"), 249)), true},
	} {
		if err := validTopic([]byte(tt.name)); (err == nil) != tt.ok {
			t.Errorf("validTopic(%.20q) = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

// goldenMessage is a record as the golden file shows it.
type goldenMessage struct {
	Topic   string          `json:"topic"`
	Key     string          `json:"key"`
	Headers []string        `json:"headers"` // "key: value"
	Value   json.RawMessage `json:"value"`
}

// TestGolden pins the records' exact form; run with -update after an
// intended change and review the diff.
func TestGolden(t *testing.T) {
	var out bytes.Buffer
	for _, ev := range encodeEvents() {
		_, _, m := appendMessage(nil, nil, "audit."+ev.Source.Type, &ev, sent)
		g := goldenMessage{Topic: m.Topic, Key: string(m.Key), Value: m.Value}
		for _, h := range m.Headers {
			g.Headers = append(g.Headers, h.Key+": "+string(h.Value))
		}
		b, err := json.MarshalIndent(g, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		out.Write(b)
		out.WriteByte('\n')
	}
	path := filepath.Join("testdata", "messages.golden")
	if *update {
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("records differ from %s (run with -update if intended):\n%s", path, out.Bytes())
	}
}

// BenchmarkEncodeMessage builds one record (key, value, headers) per
// event, as Write does, into reused buffers.
func BenchmarkEncodeMessage(b *testing.B) {
	evs := outputstest.Events(64)
	var buf []byte
	hdrs := make([]kafkago.Header, 0, maxHeaders)
	var m kafkago.Message
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf, _, m = appendMessage(buf[:0], hdrs[:0], "audit.spacelift", &evs[i%len(evs)], sent)
	}
	b.StopTimer()
	if len(m.Value) == 0 {
		b.Fatal("empty value")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// TestEncodedEventsSendTheSameRecords: events that carry their encoded
// form (as the sidecar decodes them from its queue) make records
// identical to the events encoded afresh, sealed or not, and the
// unsealed values are the encoded form itself, not a copy.
func TestEncodedEventsSendTheSameRecords(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := integrity.NewSealer(integrity.SealerConfig{Stream: "kafka/test/1", Key: priv, SignEvery: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, sealed := range []bool{false, true} {
		fresh := encodeEvents()
		if sealed {
			if _, err := sealer.Seal(integrity.State{}, fresh); err != nil {
				t.Fatal(err)
			}
		}
		carried := encodeEvents()
		for i := range carried {
			carried[i].Encoded = eventjson.Append(nil, &carried[i])
			carried[i].Integrity = fresh[i].Integrity
		}
		for i := range fresh {
			_, _, want := appendMessage(nil, nil, "t", &fresh[i], sent)
			_, _, got := appendMessage([]byte("x"), nil, "t", &carried[i], sent)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("sealed %t, event %d:\n got %+v\nwant %+v", sealed, i, got, want)
			}
			if !sealed && &got.Value[0] != &carried[i].Encoded[0] {
				t.Errorf("event %d: value copied", i)
			}
		}
	}
}
