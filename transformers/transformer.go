package transformers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/auditpipe/auditpipe"
)

// Transformer turns one payload of a source format into common events.
// Implementations are safe for concurrent use.
type Transformer interface {
	// Transform decodes in, maps every item it holds and adds the outcome
	// to res: it appends events, errors and skips, and sets Format. What
	// res already holds is kept, so a front door can reuse one Result's
	// event slice across payloads (Run starts from an empty one). The
	// error is non-nil (an *Error) only when the payload as a whole is
	// unusable; problems with single items are reported in Result.Errors
	// while the other items still become events.
	Transform(ctx context.Context, in Input, res *Result) error
}

// Run transforms in with t into a new Result.
func Run(ctx context.Context, t Transformer, in Input) (Result, error) {
	var res Result
	err := t.Transform(ctx, in, &res)
	return res, err
}

// Detector is implemented by transformers that can recognise their format
// from a decoded document, for the auto format.
type Detector interface {
	// Detect reports whether root looks like this format and, if so, the
	// JSONPath of the field that decided.
	Detect(root Node, meta Meta) (decidedBy string, ok bool)
}

// Input is one payload as a front door received it. Exactly one of Body,
// Msgpack, Value or Doc is set.
type Input struct {
	// Body is the raw payload: one JSON document, or NDJSON.
	Body []byte
	// Value is an already-decoded payload: map[string]any, map[any]any,
	// []any, string, []byte (a string, as Fluent Bit hands them), bool,
	// integers, floats, json.Number, time.Time or nil.
	Value any
	// Msgpack is one msgpack value (a Fluent Bit record), decoded straight
	// into the document: strings may be str or bin, EventTime extensions
	// read as RFC 3339 times, and a duplicate member name is an error.
	// Events may keep views into these bytes, so the caller must never
	// change them (the Fluent Bit plugin's chunk is a Go copy no one
	// writes to): an event then costs no copy of its strings.
	Msgpack []byte
	// Doc is a document another transformer (auto) already decoded. The
	// receiving transformer owns it: it may change it in place (k8s blanks
	// Secret bodies) and closes it; the sender no longer touches it.
	Doc *Document
	// Meta describes how the payload arrived.
	Meta Meta
}

// Meta is what a front door knows about a payload besides its content.
type Meta struct {
	// SourceName is the configured source (sidecar source name, Fluent Bit
	// tag); it becomes event.source.name.
	SourceName string
	// Headers are the request headers (CloudEvents binary mode reads ce-*).
	Headers http.Header
	// ReceivedAt becomes event.observed_time. Zero means now.
	ReceivedAt time.Time
}

// ContentType is the media type of the payload without parameters.
func (m Meta) ContentType() string {
	ct := m.Headers.Get("Content-Type")
	for i := 0; i < len(ct); i++ {
		if ct[i] == ';' {
			ct = ct[:i]
			break
		}
	}
	for len(ct) > 0 && ct[len(ct)-1] == ' ' {
		ct = ct[:len(ct)-1]
	}
	return ct
}

// Result is what a transformer made of a payload.
type Result struct {
	// Events are valid events (Validate passed), in payload order.
	Events []auditpipe.Event
	// Errors are the items that could not be mapped, each with its path.
	Errors []*Error
	// Skipped counts items deliberately not turned into events, by reason
	// (for example "alertname", "resolved", "stage").
	Skipped map[string]int
	// Format is the decoder that ran; for auto, the one it chose.
	Format string
	// DecidedBy is, for auto, the JSONPath of the field that decided.
	DecidedBy string
}

// Skip counts one item skipped for reason.
func (r *Result) Skip(reason string) {
	if r.Skipped == nil {
		r.Skipped = make(map[string]int)
	}
	r.Skipped[reason]++
}

// Fail records a per-item error.
func (r *Result) Fail(err *Error) { r.Errors = append(r.Errors, err) }

// Emit finishes an item a format mapped (Finish) and records the event, or
// the item's error when mapping (err) or finishing failed.
func (r *Result) Emit(ev auditpipe.Event, err *Error, meta Meta, rawSHA, format string, item Node) {
	if err == nil {
		err = Finish(&ev, meta, rawSHA, format, item)
	}
	if err != nil {
		r.Fail(err)
		return
	}
	r.Events = append(r.Events, ev)
}

// Grow makes room for n more events. A format that knows how many items
// a payload holds (Document.Count) sizes the event slice once: grown by
// doubling, it would be up to twice as large, and briefly three times
// while it moves, for a batch whose events are most of the memory a
// transform keeps.
func (r *Result) Grow(n int) { r.Events = slices.Grow(r.Events, n) }

// Mark is what a Result held at some point; Rollback returns to it.
type Mark struct {
	events, errors int
	skipped        map[string]int
}

// Mark notes what r holds, for Rollback.
func (r *Result) Mark() Mark {
	m := Mark{events: len(r.Events), errors: len(r.Errors)}
	if len(r.Skipped) > 0 {
		m.skipped = maps.Clone(r.Skipped)
	}
	return m
}

// Rollback takes back whatever was added to r since m. A format that maps
// items as it reads them and then finds the payload unusable as a whole
// (a limit crossed further on) leaves nothing of it behind: front doors
// queue the events a Result holds even when Transform fails.
func (r *Result) Rollback(m Mark) {
	clear(r.Events[m.events:])
	r.Events = r.Events[:m.events]
	r.Errors = r.Errors[:m.errors]
	r.Skipped = m.skipped
}

// Merge appends o's events, errors and skips to r.
func (r *Result) Merge(o Result) {
	r.Events = append(r.Events, o.Events...)
	r.Errors = append(r.Errors, o.Errors...)
	for k, n := range o.Skipped {
		if r.Skipped == nil {
			r.Skipped = make(map[string]int)
		}
		r.Skipped[k] += n
	}
}

// Registry maps format names to transformers. It is an ordinary value, not a
// global: each front door builds its own from configuration.
type Registry struct {
	byName map[string]Transformer
	order  []string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{byName: make(map[string]Transformer)} }

// Register adds t under name. Detection (auto) tries formats in registration
// order, so register the most specific shapes first.
func (r *Registry) Register(name string, t Transformer) error {
	if name == "" {
		return errors.New("register transformer: empty name")
	}
	if _, dup := r.byName[name]; dup {
		return fmt.Errorf("register transformer %q: already registered", name)
	}
	r.byName[name] = t
	r.order = append(r.order, name)
	return nil
}

// Get returns the transformer registered under name.
func (r *Registry) Get(name string) (Transformer, error) {
	t, ok := r.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %v)", ErrUnknownFormat, name, r.order)
	}
	return t, nil
}

// Names lists the registered formats in registration order.
func (r *Registry) Names() []string { return slices.Clone(r.order) }

// Finish completes an event a format mapped: schema version, observed time
// (meta.ReceivedAt, else now), source name, raw hash, UTC times; then it
// validates the event. A validation failure is returned as an *Error of
// kind ErrInvalidEvent located at item, so it becomes a per-item error
// instead of an invalid event leaving the transformer. Details are not
// re-parsed: the formats encode them with Details.
func Finish(ev *auditpipe.Event, meta Meta, rawSHA string, format string, item Node) *Error {
	ev.SchemaVersion = auditpipe.SchemaVersion
	if ev.ObservedTime.IsZero() {
		ev.ObservedTime = meta.ReceivedAt
		if ev.ObservedTime.IsZero() {
			ev.ObservedTime = time.Now()
		}
	}
	ev.ObservedTime = ev.ObservedTime.UTC()
	ev.Time = ev.Time.UTC()
	if ev.Source.Name == "" {
		ev.Source.Name = meta.SourceName
	}
	ev.RawSHA256 = rawSHA
	if err := ev.ValidateFields(); err != nil {
		// Field problems may quote what the payload set (a label name).
		return &Error{Format: format, Item: item.Item(), Line: item.Line(), Path: item.Path(), Kind: ErrInvalidEvent, Detail: cut(err.Error(), maxDetail)}
	}
	return nil
}
