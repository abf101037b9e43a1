package eventjson_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
)

// stdJSON is what Append must reproduce byte for byte.
func stdJSON(t testing.TB, e *auditpipe.Event) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
}

// TestAppendMatchesEncodingJSON over every event of every golden file.
func TestAppendMatchesEncodingJSON(t *testing.T) {
	files, _ := filepath.Glob("../transformers/*/testdata/*.golden.json")
	more, _ := filepath.Glob("../transformers/*/testdata/*/*.golden.json")
	files = append(files, more...)
	if len(files) < 20 {
		t.Fatalf("only %d golden files found", len(files))
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var g struct{ Events []auditpipe.Event }
		if err := json.Unmarshal(b, &g); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for i := range g.Events {
			e := &g.Events[i]
			// Goldens hold details indented; events carry them compact.
			var c bytes.Buffer
			if len(e.Details) > 0 {
				if err := json.Compact(&c, e.Details); err != nil {
					t.Fatal(err)
				}
				e.Details = c.Bytes()
			}
			if got, want := eventjson.Append(nil, e), stdJSON(t, e); !bytes.Equal(got, want) {
				t.Errorf("%s event %d:\n got %s\nwant %s", f, i, got, want)
			}
			n++
		}
	}
	if n < 50 {
		t.Errorf("only %d events compared", n)
	}
}

// TestAppendEncoded: an event that carries its encoded form, as the
// sidecar's delivery loop decodes it from a queue record, is written
// byte for byte as the event itself would be, sealed or not, for every
// event of every golden file. The record is what Append wrote, and what
// Decode reads back from it must encode to the record again: that is
// what lets outputs send the record.
func TestAppendEncoded(t *testing.T) {
	files, _ := filepath.Glob("../transformers/*/testdata/*.golden.json")
	more, _ := filepath.Glob("../transformers/*/testdata/*/*.golden.json")
	files = append(files, more...)
	seals := []*auditpipe.Integrity{nil, {}, {Stream: "kafka/host/1", Seq: 1, Hash: "h"},
		{Stream: "s\"x", Seq: 18446744073709551615, PrevHash: "p", Hash: "h", KeyID: "k", Signature: "sig=="}}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var g struct{ Events []auditpipe.Event }
		if err := json.Unmarshal(b, &g); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for i := range g.Events {
			e := g.Events[i]
			var c bytes.Buffer
			if len(e.Details) > 0 {
				if err := json.Compact(&c, e.Details); err != nil {
					t.Fatal(err)
				}
				e.Details = c.Bytes()
			}
			e.Integrity = nil
			record := eventjson.Append(nil, &e)
			var dec auditpipe.Event
			if err := eventjson.Decode(record, &dec); err != nil {
				t.Fatalf("%s event %d: %v", f, i, err)
			}
			if again := eventjson.Append(nil, &dec); !bytes.Equal(again, record) {
				t.Fatalf("%s event %d: decoded and encoded again\n got %s\nwant %s", f, i, again, record)
			}
			for _, in := range seals {
				dec.Integrity, dec.Encoded = in, nil
				want := eventjson.Append([]byte("prefix"), &dec)
				dec.Encoded = record
				if got := eventjson.Append([]byte("prefix"), &dec); !bytes.Equal(got, want) {
					t.Errorf("%s event %d, integrity %+v:\n got %s\nwant %s", f, i, in, got, want)
				}
				n++
			}
		}
	}
	if n < 200 {
		t.Errorf("only %d events compared", n)
	}
}

func FuzzAppend(f *testing.F) {
	f.Add("stack.create", "github::a\"b\\c", "<tag>&\u2028\u2029\x01\xff", "k", "v", uint64(3))
	f.Fuzz(func(t *testing.T, action, actor, msg, lk, lv string, seq uint64) {
		e := auditpipe.Event{
			SchemaVersion: "1", ID: actor, Time: time.Unix(int64(seq%1e10), int64(seq%1e9)).UTC(),
			Source: auditpipe.Source{Type: "app", Name: msg}, Action: action, Operation: auditpipe.OperationOther,
			Category: []string{msg, lk}, Outcome: auditpipe.OutcomeUnknown, Message: msg, Reason: lv,
			Actor: auditpipe.Actor{Name: actor}, Client: auditpipe.Client{UserAgent: msg},
			Labels: map[string]string{lk: lv, "z": msg}, Details: json.RawMessage(`{"a":1}`),
		}
		if seq%2 == 0 {
			e.Integrity = &auditpipe.Integrity{Seq: seq, Hash: lv}
		}
		want := stdJSON(t, &e)
		if got := eventjson.Append(nil, &e); !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
		// The same event carrying its encoded form (without integrity).
		in := e.Integrity
		e.Integrity = nil
		e.Encoded = eventjson.Append(nil, &e)
		e.Integrity = in
		if got := eventjson.Append(nil, &e); !bytes.Equal(got, want) {
			t.Fatalf("from Encoded:\n got %s\nwant %s", got, want)
		}
	})
}

func BenchmarkEncodeEvent(b *testing.B) {
	body, err := os.ReadFile("../transformers/spacelift/testdata/seed_stack_create.golden.json")
	if err != nil {
		b.Fatal(err)
	}
	var g struct{ Events []auditpipe.Event }
	if err := json.Unmarshal(body, &g); err != nil {
		b.Fatal(err)
	}
	e := &g.Events[0]
	var c bytes.Buffer
	json.Compact(&c, e.Details)
	e.Details = c.Bytes()
	b.Run("Append", func(b *testing.B) {
		buf := make([]byte, 0, 4096)
		b.ReportAllocs()
		for b.Loop() {
			buf = eventjson.Append(buf[:0], e)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(e); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
