package githubaudit

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/external"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// render is the golden form of a transform: each event's JSON on its own
// line, then each error, then the payload error if any.
func render(events []auditpipe.Event, err error) []byte {
	var b bytes.Buffer
	for i := range events {
		b.Write(eventjson.Append(nil, &events[i]))
		b.WriteByte('\n')
	}
	for _, e := range flattenErrors(err) {
		b.WriteString("error: " + e.Error() + "\n")
	}
	return b.Bytes()
}

func flattenErrors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func newT(t testing.TB) *Transformer {
	t.Helper()
	tr, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestGolden runs every sample payload under testdata through the function
// in-process and compares the events and errors with testdata/golden.
func TestGolden(t *testing.T) {
	tr := newT(t)
	files, err := filepath.Glob("testdata/*.*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			events, err := tr.Transform(context.Background(), external.Payload{Body: body, SourceName: "github-org"})
			for i := range events {
				if verr := events[i].Validate(); verr != nil {
					t.Errorf("event %d invalid: %v", i, verr)
				}
			}
			got := render(events, err)
			golden := filepath.Join("testdata", "golden", strings.TrimSuffix(name, filepath.Ext(name))+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s (run with -update after checking):\ngot:\n%s\nwant:\n%s", name, golden, got, want)
			}
		})
	}
}

// TestErrors checks how failures are reported: a payload that is not JSON
// fails as a whole; a bad entry fails alone, with its path and kind.
func TestErrors(t *testing.T) {
	tr := newT(t)
	tests := []struct {
		name       string
		body       string
		events     int
		kind       error
		item       int
		path       string
		wholeBatch bool
	}{
		{name: "not JSON", body: "502 Bad Gateway", kind: transformers.ErrSyntax, item: -1, path: "$", wholeBatch: true},
		{name: "no action", body: `{"@timestamp":1,"actor":"a"}`, kind: transformers.ErrMissing, item: -1, path: "$.action"},
		{name: "bad time", body: `[{"@timestamp":1,"action":"a.b"},{"@timestamp":true,"action":"a.b"}]`, events: 1, kind: transformers.ErrType, item: 1, path: "$[1][\"@timestamp\"]"},
		{name: "no time", body: `[{"action":"a.b"}]`, kind: transformers.ErrMissing, item: 0, path: "$[0].created_at"},
		{name: "not an object", body: `[{"@timestamp":1,"action":"a.b"},42]`, events: 1, kind: transformers.ErrType, item: 1, path: "$[1]"},
		{name: "actor not a string", body: `{"@timestamp":1,"action":"a.b","actor":{}}`, kind: transformers.ErrType, item: -1, path: "$.actor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := tr.Transform(context.Background(), external.Payload{Body: []byte(tt.body)})
			if len(events) != tt.events {
				t.Errorf("%d events, want %d", len(events), tt.events)
			}
			var te *transformers.Error
			if !errors.As(err, &te) {
				t.Fatalf("error %v is not a *transformers.Error", err)
			}
			if !errors.Is(err, tt.kind) || te.Item != tt.item || te.Path != tt.path {
				t.Errorf("error %v: item %d path %s, want kind %v item %d path %s", err, te.Item, te.Path, tt.kind, tt.item, tt.path)
			}
			if _, joined := err.(interface{ Unwrap() []error }); joined == tt.wholeBatch {
				t.Errorf("error %v: joined = %v, want %v", err, joined, !tt.wholeBatch)
			}
		})
	}
}

func TestOperation(t *testing.T) {
	tests := []struct {
		action, opType string
		want           auditpipe.Operation
	}{
		{"repo.create", "", auditpipe.OperationCreate},
		{"team.add_member", "modify", auditpipe.OperationCreate},
		{"repo.destroy", "", auditpipe.OperationDelete},
		{"org.remove_member", "", auditpipe.OperationDelete},
		{"repo.rename", "", auditpipe.OperationUpdate},
		{"repo.access", "", auditpipe.OperationUpdate},
		{"git.clone", "", auditpipe.OperationRead},
		{"user.login", "", auditpipe.OperationLogin},
		{"workflows.completed_workflow_run", "", auditpipe.OperationExecute},
		{"hook.events_changed", "modify", auditpipe.OperationUpdate},
		{"secret_scanning_alert.reopen", "", auditpipe.OperationOther},
		{"oauth_application.authentication", "authentication", auditpipe.OperationLogin},
		{"noaction", "", auditpipe.OperationOther},
	}
	for _, tt := range tests {
		if got := operation(tt.action, tt.opType); got != tt.want {
			t.Errorf("operation(%q, %q) = %s, want %s", tt.action, tt.opType, got, tt.want)
		}
	}
}

// TestStableIDs: an entry keeps its id when re-sent, reformatted or not,
// with or without _document_id.
func TestStableIDs(t *testing.T) {
	tr := newT(t)
	a := `{"@timestamp":1732186300000,"action":"repo.create","repo":"o/r"}`
	b := "{\n  \"repo\": \"o/r\",\n  \"action\": \"repo.create\",\n  \"@timestamp\": 1732186300000\n}"
	ea, err := tr.Transform(context.Background(), external.Payload{Body: []byte(a)})
	if err != nil {
		t.Fatal(err)
	}
	eb, err := tr.Transform(context.Background(), external.Payload{Body: []byte(b)})
	if err != nil {
		t.Fatal(err)
	}
	if ea[0].ID != eb[0].ID || ea[0].ID == "" {
		t.Errorf("ids %q and %q differ", ea[0].ID, eb[0].ID)
	}
	if !ea[0].Time.Equal(time.UnixMilli(1732186300000)) {
		t.Errorf("time %v", ea[0].Time)
	}
}

// FuzzTransform: whatever the payload, the function does not panic, every
// event it returns is valid, and every error is a located
// *transformers.Error.
func FuzzTransform(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.*")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"@timestamp":1e300,"action":"a.b"}`))
	f.Add([]byte(`[{"created_at":"2024-01-01T00:00:00Z","action":"x","actor_location":null}]`))
	tr := newT(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := tr.Transform(context.Background(), external.Payload{Body: body})
		for i := range events {
			if verr := events[i].Validate(); verr != nil {
				t.Fatalf("event %d invalid: %v", i, verr)
			}
		}
		for _, e := range flattenErrors(err) {
			var te *transformers.Error
			if !errors.As(e, &te) || te.Kind == nil || te.Path == "" {
				t.Fatalf("error %v is not a located *transformers.Error", e)
			}
		}
	})
}
