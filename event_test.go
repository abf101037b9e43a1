package auditpipe_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
)

func validEvent() auditpipe.Event {
	return auditpipe.Event{
		SchemaVersion: "1",
		ID:            "evt_1",
		Time:          time.Date(2024, 3, 10, 14, 30, 0, 0, time.UTC),
		Source:        auditpipe.Source{Type: "app", Name: "teabar", Format: "app/teabar"},
		Action:        "member.invited",
		Operation:     auditpipe.OperationCreate,
		Outcome:       auditpipe.OutcomeSuccess,
		Actor:         auditpipe.Actor{Type: auditpipe.ActorUser, ID: "user_xyz"},
		Details:       json.RawMessage(`{"role":"member"}`),
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*auditpipe.Event)
		fields []string // fields the error must name; none = valid
	}{
		{"valid", func(*auditpipe.Event) {}, nil},
		{"schema version", func(e *auditpipe.Event) { e.SchemaVersion = "2" }, []string{"schema_version"}},
		{"missing id", func(e *auditpipe.Event) { e.ID = "" }, []string{"id"}},
		{"id too long", func(e *auditpipe.Event) { e.ID = strings.Repeat("x", 513) }, []string{"id"}},
		{"missing time", func(e *auditpipe.Event) { e.Time = time.Time{} }, []string{"time"}},
		{"year beyond RFC 3339", func(e *auditpipe.Event) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, []string{"time"}},
		{"missing source type", func(e *auditpipe.Event) { e.Source.Type = "" }, []string{"source.type"}},
		{"bad source type", func(e *auditpipe.Event) { e.Source.Type = "App Events" }, []string{"source.type"}},
		{"missing action", func(e *auditpipe.Event) { e.Action = "" }, []string{"action"}},
		{"bad operation", func(e *auditpipe.Event) { e.Operation = "CREATE" }, []string{"operation"}},
		{"bad outcome", func(e *auditpipe.Event) { e.Outcome = "ok" }, []string{"outcome"}},
		{"missing actor type", func(e *auditpipe.Event) { e.Actor.Type = "" }, []string{"actor.type"}},
		{"bad actor type", func(e *auditpipe.Event) { e.Actor.Type = "robot" }, []string{"actor.type"}},
		{"details not an object", func(e *auditpipe.Event) { e.Details = json.RawMessage(`[1]`) }, []string{"details"}},
		{"details malformed", func(e *auditpipe.Event) { e.Details = json.RawMessage(`{"a":`) }, []string{"details"}},
		{"empty label key", func(e *auditpipe.Event) { e.Labels = map[string]string{"": "x"} }, []string{"labels"}},
		{"several at once", func(e *auditpipe.Event) { e.ID, e.Outcome = "", "" }, []string{"id", "outcome"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validEvent()
			tt.mutate(&e)
			err := e.Validate()
			if len(tt.fields) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors naming %v", tt.fields)
			}
			for _, f := range tt.fields {
				found := false
				for _, fe := range fieldErrors(err) {
					if fe.Field == f {
						found = true
					}
				}
				if !found {
					t.Errorf("Validate() = %v, want a *FieldError for %q", err, f)
				}
			}
		})
	}
}

func fieldErrors(err error) []*auditpipe.FieldError {
	var out []*auditpipe.FieldError
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, fieldErrors(e)...)
		}
		return out
	}
	var fe *auditpipe.FieldError
	if errors.As(err, &fe) {
		out = append(out, fe)
	}
	return out
}

func TestValidateFieldsSkipsDetails(t *testing.T) {
	e := validEvent()
	e.Details = json.RawMessage(`not json`)
	if err := e.ValidateFields(); err != nil {
		t.Errorf("ValidateFields() = %v; it must not parse details", err)
	}
	if err := e.Validate(); err == nil {
		t.Error("Validate() must reject malformed details")
	}
}

func TestJSONForm(t *testing.T) {
	e := validEvent()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"schema_version":"1","id":"evt_1","time":"2024-03-10T14:30:00Z","source":{"type":"app","name":"teabar","format":"app/teabar"},"action":"member.invited","operation":"create","outcome":"success","actor":{"type":"user","id":"user_xyz"},"details":{"role":"member"}}`
	if string(b) != want {
		t.Errorf("JSON form\n got %s\nwant %s", b, want)
	}
	var back auditpipe.Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.Validate(); err != nil || back.ID != e.ID || !back.Time.Equal(e.Time) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}

func TestCanonicalize(t *testing.T) {
	// RFC 8785 §3.2.3 sorting example, and number/whitespace normalisation.
	a, err := auditpipe.Canonicalize([]byte(`{ "b" : [1.0, 2e1, -0], "a":"\u00e9\/" }`))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":"é/","b":[1,20,0]}`; string(a) != want {
		t.Errorf("Canonicalize = %s, want %s", a, want)
	}
	if _, err := auditpipe.Canonicalize([]byte(`{"a":1,"a":2}`)); err == nil {
		t.Error("duplicate names must be rejected")
	}
}

func TestIDRules(t *testing.T) {
	c1, _ := auditpipe.Canonicalize([]byte(`{"x": 1.0, "a": "b"}`))
	c2, _ := auditpipe.Canonicalize([]byte("{\"a\":\"b\",\n \"x\":1}"))
	if auditpipe.IDFromCanonical(c1) != auditpipe.IDFromCanonical(c2) {
		t.Error("key order, whitespace and number spelling must not change the id")
	}
	base := auditpipe.IDFromCanonical(c1)
	if auditpipe.NthDuplicateID(base, 0) != base {
		t.Error("the first of equal entries keeps the base id")
	}
	d1, d2 := auditpipe.NthDuplicateID(base, 1), auditpipe.NthDuplicateID(base, 2)
	if d1 == base || d2 == base || d1 == d2 {
		t.Error("repeats of an entry need distinct ids")
	}
	if auditpipe.NthDuplicateID(base, 1) != d1 {
		t.Error("duplicate ids must be deterministic")
	}
	if auditpipe.IDFromParts("a/b", "c") == auditpipe.IDFromParts("a", "b/c") {
		t.Error("IDFromParts must not be ambiguous")
	}
	if len(base) != 64 || strings.ToLower(base) != base {
		t.Errorf("id %q: want 64 lowercase hex digits", base)
	}
}

func TestCanonicalJSONOfEvent(t *testing.T) {
	e := validEvent()
	c, err := e.CanonicalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(c), `{"action":"member.invited","actor":{"id":"user_xyz","type":"user"}`) {
		t.Errorf("canonical event: %s", c)
	}
}
