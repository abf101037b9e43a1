package auditpipe

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/auditpipe/auditpipe/internal/jsonsyntax"
)

// FieldError is one problem Validate found, naming the field in its JSON
// spelling (actor.type, source.type, ...).
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Validate checks that e is a well-formed schema_version "1" event: required
// fields are present, enumerations hold one of their values and details is
// a JSON object. It reports every problem at once (joined), each as a
// *FieldError.
func (e *Event) Validate() error {
	errs := e.validate()
	if len(e.Details) > 0 {
		// jsonsyntax.Valid is encoding/json's json.Valid at a fraction of
		// the cost, and also refuses invalid UTF-8 and lone surrogates.
		if firstNonSpace(e.Details) != '{' || !jsonsyntax.Valid(e.Details, MaxDecodeDepth) {
			errs = append(errs, &FieldError{Field: "details", Problem: "must be a JSON object"})
		}
	}
	return errors.Join(errs...)
}

// ValidateFields is Validate without re-parsing Details: for producers that
// encoded Details themselves (the built-in transformers), where checking
// the JSON again would cost more than the rest of the event.
func (e *Event) ValidateFields() error {
	return errors.Join(e.validate()...)
}

func (e *Event) validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	if e.SchemaVersion != SchemaVersion {
		bad("schema_version", "must be %q, got %q", SchemaVersion, e.SchemaVersion)
	}
	switch {
	case e.ID == "":
		bad("id", "is required")
	case len(e.ID) > 512:
		// 512 bytes is Elasticsearch's limit for _id, the strictest consumer.
		bad("id", "must be at most 512 bytes, got %d", len(e.ID))
	}
	switch {
	case e.Time.IsZero():
		bad("time", "is required")
	case e.Time.UTC().Year() < 1 || e.Time.UTC().Year() > 9999:
		// RFC 3339 has four-digit years; outside them the event could not
		// be encoded, and no real audit event is dated there.
		bad("time", "must be between years 1 and 9999, got %d", e.Time.UTC().Year())
	}
	if !e.ObservedTime.IsZero() && (e.ObservedTime.UTC().Year() < 1 || e.ObservedTime.UTC().Year() > 9999) {
		bad("observed_time", "must be between years 1 and 9999, got %d", e.ObservedTime.UTC().Year())
	}
	if e.Source.Type == "" {
		bad("source.type", "is required")
	} else if !isToken(e.Source.Type) {
		bad("source.type", "must be lowercase letters, digits, '_', '-' or '.', got %q", e.Source.Type)
	}
	if e.Action == "" {
		bad("action", "is required")
	}
	if !e.Operation.Valid() {
		bad("operation", "must be one of %s, got %q", join(Operations()), e.Operation)
	}
	if !e.Outcome.Valid() {
		bad("outcome", "must be one of %s, got %q", join(Outcomes()), e.Outcome)
	}
	if !e.Actor.Type.Valid() {
		bad("actor.type", "must be one of %s, got %q", join(ActorTypes()), e.Actor.Type)
	}
	for k, v := range e.Labels {
		if k == "" {
			bad("labels", "keys must not be empty")
		} else if !utf8.ValidString(k) || !utf8.ValidString(v) {
			bad("labels."+k, "must be valid UTF-8")
		}
	}
	return errs
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return s != ""
}

func firstNonSpace(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

func join[T ~string](vs []T) string {
	var b strings.Builder
	for i, v := range vs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(v))
	}
	return b.String()
}
