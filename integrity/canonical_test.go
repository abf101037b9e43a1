package integrity_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/integrity"
)

// reference is the definition AppendCanonical implements: RFC 8785 of the
// event's JSON without integrity.
func reference(t testing.TB, ev auditpipe.Event) []byte {
	t.Helper()
	ev.Integrity = nil
	b, err := json.Marshal(&ev)
	if err != nil {
		t.Fatal(err)
	}
	c, err := auditpipe.Canonicalize(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCanonicalMatchesReference(t *testing.T) {
	full := events(1)[0]
	full.Integrity = &auditpipe.Integrity{Stream: "s", Seq: 3, Hash: "ab"}
	cases := map[string]auditpipe.Event{
		"full":    full,
		"minimal": {Time: time.Unix(0, 0).UTC()},
		"escapes": {Action: "a\"b\\c\n\t\x01\x1f\u2028é😀", Message: "<&>", Time: time.Unix(1, 5).UTC(),
			Source: auditpipe.Source{Type: "t\u007f"}},
		"invalid utf8":     {Action: "a\xffb", Time: time.Unix(1, 0)},
		"details to order": {Details: json.RawMessage(`{ "b" : 1.50, "a": [1e3, -0, 0.1, "\u0041\/"], "é":{}, "😀":0, "\ufb01":1 }`)},
		"labels utf16": {Labels: map[string]string{"\ufb01": "1", "😀": "2", "a": "3", "": "4"},
			Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))},
		"sub objects": {Actor: auditpipe.Actor{Email: "e"}, Resource: auditpipe.Resource{Namespace: "n"},
			Tenant: auditpipe.Tenant{Project: "p"}, Client: auditpipe.Client{UserAgent: "u"}, Category: []string{"b", "a"}},
	}
	for name, ev := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := integrity.AppendCanonical(nil, &ev)
			if err != nil {
				t.Fatal(err)
			}
			if want := reference(t, ev); !bytes.Equal(got, want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// FuzzCanonical holds AppendCanonical to the reference for any field
// values and any details text.
func FuzzCanonical(f *testing.F) {
	f.Add("stack.create", "alice", "k", "v", []byte(`{"a":1}`), int64(0))
	f.Add("a\u2028\x00", "\xff", "😀", "\ufb01", []byte(`{"b":[1.0,2e400],"a":"\u00e9"}`), int64(1e18))
	f.Fuzz(func(t *testing.T, action, actor, lk, lv string, details []byte, nanos int64) {
		ev := auditpipe.Event{Action: action, Actor: auditpipe.Actor{ID: actor}, Labels: map[string]string{lk: lv, "z": actor},
			Time: time.Unix(0, nanos).UTC()}
		if json.Valid(details) && bytes.HasPrefix(bytes.TrimSpace(details), []byte("{")) {
			ev.Details = details
		}
		want, err := json.Marshal(&ev)
		if err != nil {
			return // a details value encoding/json refuses is no event
		}
		ref, refErr := auditpipe.Canonicalize(want)
		got, err := integrity.AppendCanonical(nil, &ev)
		if (err != nil) != (refErr != nil) {
			t.Fatalf("error %v, reference error %v", err, refErr)
		}
		if err == nil && !bytes.Equal(got, ref) {
			t.Fatalf("got  %s\nwant %s", got, ref)
		}
	})
}
