package spacelift_test

import (
	"context"
	"os"
	"testing"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/spacelift"
	"github.com/auditpipe/auditpipe/transformers/transformertest"
)

func newTransformer(t testing.TB) *spacelift.Transformer {
	red, err := transformers.NewRedactor(transformers.RedactConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return spacelift.New(transformers.Options{Redactor: red})
}

func TestGolden(t *testing.T) { transformertest.Golden(t, newTransformer(t), "testdata") }

func TestIDsStable(t *testing.T) { transformertest.IDsStable(t, newTransformer(t), "testdata") }

func TestSlowPathSame(t *testing.T) { transformertest.SlowPathSame(t, newTransformer(t), "testdata") }

func FuzzTransform(f *testing.F) {
	transformertest.Seed(f, "testdata")
	tr := newTransformer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		transformertest.Check(t, tr, body)
		// The canonical fast path and the general path (a leading space
		// rules the former out) agree on every input.
		in := transformers.Input{Body: body, Meta: transformers.Meta{ReceivedAt: transformertest.ReceivedAt}}
		fast, ferr := transformers.Run(context.Background(), tr, in)
		in.Body = append([]byte{' '}, body...)
		slow, serr := transformers.Run(context.Background(), tr, in)
		if (ferr == nil) != (serr == nil) || len(fast.Errors) != len(slow.Errors) {
			t.Fatalf("paths disagree on %q: %v/%v, %d/%d errors", body, ferr, serr, len(fast.Errors), len(slow.Errors))
		}
		if d := transformertest.DiffButRawHash(fast.Events, slow.Events); d != "" {
			t.Fatalf("paths disagree on %q: %s", body, d)
		}
	})
}

// TestSeedTakesTheFastPath: the seed, indented with sorted keys as Go's
// MarshalIndent writes it, is read without building a tree.
func TestSeedTakesTheFastPath(t *testing.T) {
	for _, file := range []string{"testdata/seed_stack_create.json", "testdata/actor_without_provider.json"} {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := transformers.DecodeLazy(transformers.Input{Body: body}, transformers.Options{}, spacelift.Format)
		if err != nil {
			t.Fatal(err)
		}
		if doc.Roots[0].Parsed() {
			t.Errorf("%s: tree built for an already-canonical payload", file)
		}
		doc.Close()
	}
}

func TestParseActor(t *testing.T) {
	tests := []struct {
		in   string
		want auditpipe.Actor
	}{
		{"github::name", auditpipe.Actor{Type: auditpipe.ActorUser, ID: "name", Name: "name", Provider: "github"}},
		{"api::01HAPI", auditpipe.Actor{Type: auditpipe.ActorToken, ID: "01HAPI", Name: "01HAPI", Provider: "api"}},
		{"spacelift::scheduler", auditpipe.Actor{Type: auditpipe.ActorSystem, ID: "scheduler", Name: "scheduler", Provider: "spacelift"}},
		{"plain", auditpipe.Actor{Type: auditpipe.ActorUnknown, ID: "plain", Name: "plain"}},
		{"saml::a::b", auditpipe.Actor{Type: auditpipe.ActorUser, ID: "a::b", Name: "a::b", Provider: "saml"}},
		{"", auditpipe.Actor{Type: auditpipe.ActorUnknown}},
	}
	for _, tt := range tests {
		if got := spacelift.ParseActor(tt.in); got != tt.want {
			t.Errorf("ParseActor(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestOperation(t *testing.T) {
	tests := map[string]auditpipe.Operation{
		"create": auditpipe.OperationCreate, "set": auditpipe.OperationUpdate, "delete": auditpipe.OperationDelete,
		"set_state": auditpipe.OperationUpdate, "trigger": auditpipe.OperationExecute, "login": auditpipe.OperationLogin,
		"frobnicate": auditpipe.OperationOther, "Create": auditpipe.OperationCreate,
	}
	for verb, want := range tests {
		if got := spacelift.Operation(verb); got != want {
			t.Errorf("Operation(%q) = %q, want %q", verb, got, want)
		}
	}
}
