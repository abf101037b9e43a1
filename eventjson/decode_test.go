package eventjson_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
)

// fullEvent sets every field, with strings that need escaping.
func fullEvent(i int) auditpipe.Event {
	return auditpipe.Event{
		SchemaVersion: "1",
		ID:            "id-" + strings.Repeat("x", i),
		Time:          time.Date(2026, 11, 21, 9, 30, i, 123456789, time.UTC),
		ObservedTime:  time.Date(2026, 11, 21, 9, 31, 0, 0, time.UTC),
		Source:        auditpipe.Source{Type: "github", Name: "gh \"main\"", Format: "github_audit"},
		Action:        "repo.create",
		Operation:     auditpipe.OperationCreate,
		Category:      []string{"configuration", "iam"},
		Outcome:       auditpipe.OutcomeSuccess,
		Reason:        "tab\there, newline\nthere",
		Message:       "é ✓ 😀 \u2028 <html> & \\ \x01",
		Actor:         auditpipe.Actor{Type: auditpipe.ActorUser, ID: "1", UID: "u", Name: "Octo Cat", Email: "o@example.com", Provider: "github"},
		Resource:      auditpipe.Resource{Type: "repository", ID: "2", Name: "o/r", Namespace: "ns", APIGroup: "g", APIVersion: "v1"},
		Tenant:        auditpipe.Tenant{Account: "a", Org: "o", Project: "p"},
		Client:        auditpipe.Client{IP: "203.0.113.1", UserAgent: "curl/8"},
		Details:       json.RawMessage(`{"n":1.5e3,"a":[true,false,null,{}],"s":"\u00e9\"","o":{"k":[]}}`),
		Labels:        map[string]string{"env": "prod", "ünï": "cödé"},
		RawSHA256:     "abc",
		Integrity:     &auditpipe.Integrity{Stream: "s", Seq: 18446744073709551615, PrevHash: "p", Hash: "h", KeyID: "k", Signature: "sig"},
	}
}

// TestDecodeEventRoundTrip: what Append writes decodes to the same
// event, and to what encoding/json decodes.
func TestDecodeEventRoundTrip(t *testing.T) {
	minimal := auditpipe.Event{SchemaVersion: "1", ID: "x", Time: time.Unix(0, 0).UTC(), Source: auditpipe.Source{Type: "t"},
		Action: "a", Operation: auditpipe.OperationOther, Outcome: auditpipe.OutcomeUnknown}
	empties := fullEvent(0)
	empties.Category, empties.Labels, empties.Integrity = []string{}, map[string]string{}, &auditpipe.Integrity{}
	for i, ev := range []auditpipe.Event{minimal, fullEvent(1), fullEvent(30), empties, githubEvent()} {
		b := eventjson.Append(nil, &ev)
		var got, std auditpipe.Event
		if err := eventjson.Decode(b, &got); err != nil {
			t.Fatalf("event %d: %v\n%s", i, err, b)
		}
		if err := json.Unmarshal(b, &std); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, std) {
			t.Errorf("event %d: decoded\n%+v\nencoding/json\n%+v", i, got, std)
		}
		var shared auditpipe.Event
		if err := eventjson.DecodeShared(b, &shared); err != nil || !reflect.DeepEqual(shared, got) {
			t.Errorf("event %d: DecodeShared: %v\n%+v\nDecode\n%+v", i, err, shared, got)
		}
		if again := eventjson.Append(nil, &got); string(again) != string(b) {
			t.Errorf("event %d: re-encoded\n%s\nwant\n%s", i, again, b)
		}
	}
}

// TestDecodeOutputsEvents: the events the outputs are tested with, as
// Append writes them, Decode reads back to the same event, and to what
// encoding/json reads.
func TestDecodeOutputsEvents(t *testing.T) {
	for i, ev := range outputstest.Events(16) {
		b := eventjson.Append(nil, &ev)
		var got, ref auditpipe.Event
		if err := eventjson.Decode(b, &got); err != nil {
			t.Fatalf("event %d: %v\n%s", i, err, b)
		}
		if err := json.Unmarshal(b, &ref); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, ref) || string(eventjson.Append(nil, &got)) != string(b) {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, got, ref)
		}
	}
	var ev auditpipe.Event
	if err := eventjson.Decode([]byte(`{"id":"x","nope":1}`), &ev); err == nil {
		t.Error("an unknown member was accepted")
	}
}

// TestDecodeEventLenient: spellings Append does not write but any JSON
// encoder may are accepted, as encoding/json accepts them.
func TestDecodeEventLenient(t *testing.T) {
	for _, in := range []string{
		" {\n \"id\" : \"a\\u00e9\\ud83d\\ude00\\/\" , \"source\":{\"type\":\"t\"},\"source\":{\"name\":\"n\"} } \n",
		`{"time":"2026-01-02T03:04:05+02:00","details":[1,-0.5e-3,"x",{"a":null}],"labels":{"a":"b"},"labels":{"c":"d"}}`,
		`{"integrity":{"seq":0},"integrity":{"hash":"h"},"category":[]}`,
	} {
		var got, std auditpipe.Event
		if err := eventjson.Decode([]byte(in), &got); err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if err := json.Unmarshal([]byte(in), &std); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, std) {
			t.Errorf("%s: decoded %+v, encoding/json %+v", in, got, std)
		}
	}
}

// TestDecodeEventRejects: what the decoder refuses, each with an error
// that says where.
func TestDecodeEventRejects(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{``, "expected an object"},
		{`[]`, "expected an object"},
		{`{"id":"a"`, "expected ',' or '}'"},
		{`{"id":"a"} x`, "data after the event"},
		{`{"ID":"a"}`, `unknown member "ID"`},
		{`{"source":{"kind":"x"}}`, `unknown member "kind"`},
		{`{"id":null}`, "expected a string"},
		{`{"details":null}`, "details: null"},
		{`{"id":1}`, "expected a string"},
		{`{"id":"a` + "\x01" + `"}`, "control character"},
		{`{"id":"\x"}`, "invalid escape"},
		{`{"id":"\ud800"}`, "lone surrogate"},
		{`{"id":"\ud800\u0041"}`, "lone surrogate"},
		{"{\"id\":\"\xff\"}", "invalid UTF-8"},
		{"{\"id\":\"\\n\xff\"}", "invalid UTF-8"},
		{`{"time":"yesterday"}`, "cannot parse"},
		{`{"time":"2026-01-02T03:04:05\u005a"}`, "cannot parse"},
		{`{"integrity":{"seq":-1}}`, "unsigned integer"},
		{`{"integrity":{"seq":1.0}}`, "unsigned integer"},
		{`{"integrity":{"seq":01}}`, "expected ',' or '}'"},
		{`{"details":{"a":tru}}`, "expected true"},
		{`{"details":{"a":1.}}`, "expected a digit"},
		{`{"details":` + strings.Repeat("[", eventjson.MaxDecodeDepth+1) + strings.Repeat("]", eventjson.MaxDecodeDepth+1) + `}`, "nested too deep"},
		{`{"category":["a",]}`, "expected a string"},
		{`{"labels":{"a":1}}`, "expected a string"},
	} {
		var ev auditpipe.Event
		err := eventjson.Decode([]byte(tt.in), &ev)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "offset") {
			t.Errorf("%q: error %v, want one containing %q and the offset", tt.in, err, tt.want)
		}
	}
}

// FuzzDecodeEvent holds the decoder to encoding/json: whatever it accepts,
// encoding/json accepts too and decodes to the same event; and it never
// panics.
func FuzzDecodeEvent(f *testing.F) {
	ev := fullEvent(3)
	f.Add(eventjson.Append(nil, &ev))
	f.Add([]byte(`{"id":"a\u00e9","labels":{"a":"b"},"labels":{"c":"d"},"integrity":{"seq":1}}`))
	f.Add([]byte(`{"details":{"a":[1,2.5e-3,"\ud83d\ude00"]},"time":"2026-01-02T03:04:05Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var got, shared auditpipe.Event
		err := eventjson.Decode(b, &got)
		if serr := eventjson.DecodeShared(b, &shared); (serr == nil) != (err == nil) || !reflect.DeepEqual(shared, got) {
			t.Fatalf("%q: DecodeShared %v %+v, Decode %v %+v", b, serr, shared, err, got)
		}
		if err != nil {
			return
		}
		var std auditpipe.Event
		if err := json.Unmarshal(b, &std); err != nil {
			t.Fatalf("decoder accepted what encoding/json rejects (%v): %q", err, b)
		}
		if !reflect.DeepEqual(got, std) {
			t.Fatalf("%q:\ndecoded       %+v\nencoding/json %+v", b, got, std)
		}
	})
}

// githubEvent is what the example plugin makes of one GitHub audit-log
// entry: the typical event on the wire.
func githubEvent() auditpipe.Event {
	return auditpipe.Event{
		SchemaVersion: "1", ID: "Xy9pLq2bS0aT1uV3wZ4cDe",
		Time:         time.Date(2024, 11, 21, 10, 40, 0, 123000000, time.UTC),
		ObservedTime: time.Date(2026, 11, 21, 9, 30, 0, 0, time.UTC),
		Source:       auditpipe.Source{Type: "github", Name: "src", Format: "github_audit"},
		Action:       "repo.create", Operation: auditpipe.OperationCreate, Outcome: auditpipe.OutcomeSuccess,
		Message:   "octocat: repo.create octo-org/hello-world",
		Actor:     auditpipe.Actor{Type: auditpipe.ActorUser, ID: "583231", Name: "octocat", Provider: "github"},
		Resource:  auditpipe.Resource{Type: "repository", ID: "1296269", Name: "octo-org/hello-world"},
		Tenant:    auditpipe.Tenant{Account: "octo-business", Org: "octo-org"},
		Client:    auditpipe.Client{IP: "203.0.113.24", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"},
		Details:   json.RawMessage(`{"@timestamp":1732185600123,"_document_id":"Xy9pLq2bS0aT1uV3wZ4cDe","action":"repo.create","actor":"octocat","actor_id":583231,"actor_ip":"203.0.113.24","actor_location":{"country_code":"US"},"business":"octo-business","business_id":1234,"created_at":1732185600123,"operation_type":"create","org":"octo-org","org_id":9919,"repo":"octo-org/hello-world","repo_id":1296269,"user_agent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36","visibility":"private"}`),
		Labels:    map[string]string{"actor_country_code": "US"},
		RawSHA256: "1ac757cb7bd2c73418d1a001a3dee67ca7d6091044ed7af8b79c71bd7911bdab",
	}
}

// TestValidateRefusesBadUTF8InDetails: Event.Validate checks details with
// the same scanner as Decode (internal/jsonsyntax), so invalid UTF-8 is
// refused there too.
func TestValidateRefusesBadUTF8InDetails(t *testing.T) {
	ev := githubEvent()
	ev.Details = json.RawMessage("{\"a\":\"\xff\"}")
	ev.Outcome = "maybe"
	if err := ev.Validate(); err == nil || !strings.Contains(err.Error(), "details") || !strings.Contains(err.Error(), "outcome") {
		t.Errorf("Validate = %v, want outcome and details", err)
	}
}

func BenchmarkDecodeEvent(b *testing.B) {
	ev := githubEvent()
	raw := eventjson.Append(nil, &ev)
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ev auditpipe.Event
			if err := eventjson.Decode(raw, &ev); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ev auditpipe.Event
			if err := json.Unmarshal(raw, &ev); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
