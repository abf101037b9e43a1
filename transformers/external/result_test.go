package external

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/external/proto"
)

// TestHostValidates: an event a plugin sends without the SDK's checks (or
// one that does not decode) is a per-item ErrInvalidEvent on the host.
func TestHostValidates(t *testing.T) {
	good := githubEvent()
	bad := good
	bad.Outcome = "maybe"
	r := (&Transformer{}).result(&proto.Result{
		Events: [][]byte{eventjson.Append(nil, &good), eventjson.Append(nil, &bad), []byte(`{"id":`)},
		Errors: []*proto.ItemError{{Item: 4, Path: "$.x", Kind: proto.Kind_KIND_MISSING, Expected: "x", Format: "mine"}},
	})
	if len(r.Events) != 1 || len(r.Errors) != 3 {
		t.Fatalf("%d events, errors %v", len(r.Events), r.Errors)
	}
	for i, e := range r.Errors[:2] {
		if !errors.Is(e, transformers.ErrInvalidEvent) || e.Item != i+1 || e.Format != Format {
			t.Errorf("error %v item %d", e, e.Item)
		}
	}
	if !strings.Contains(r.Errors[0].Detail, "outcome") {
		t.Errorf("error %q does not name the field", r.Errors[0])
	}
	if e := r.Errors[2]; !errors.Is(e, transformers.ErrMissing) || e.Item != 4 || e.Path != "$.x" || e.Format != "mine" {
		t.Errorf("plugin's error came back as %v", e)
	}
}

// BenchmarkResult is the host's work on one payload's answer besides gRPC:
// decode and validate each event of a 100-event result.
func BenchmarkResult(b *testing.B) {
	ev := githubEvent()
	r := &proto.Result{}
	for range 100 {
		r.Events = append(r.Events, eventjson.Append(nil, &ev))
	}
	t := &Transformer{}
	b.ReportAllocs()
	for b.Loop() {
		if pr := t.result(r); len(pr.Events) != 100 {
			b.Fatal(pr.Errors)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
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
