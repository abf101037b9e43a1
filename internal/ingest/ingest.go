package ingest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/transformers"
)

// Config is what a Stage is made of.
type Config struct {
	// Transformer turns payloads into events. Required.
	Transformer transformers.Transformer
	// Labels are added to every event, under those of the payload's
	// Origin and the transformer's own (static labels, pod labels, a
	// source's labels). The Stage keeps a copy.
	Labels map[string]string
	// OnSkip, when set, is told for each payload how many of its items
	// the transformer skipped on purpose, per reason (resolved alerts,
	// other alertnames, non-final stages): the doors' metrics.
	OnSkip func(reason string, n int)
	// Empty, when set, is what Outcome.Reason says of a payload that made
	// nothing, in place of the error Outcome.Errors holds for it.
	Empty string
}

// Stage runs payloads through a transformer and labels what comes of
// them; see the package doc. It is safe for concurrent use.
type Stage struct {
	tr     transformers.Transformer
	labels map[string]string
	onSkip func(reason string, n int)
	empty  string
}

// New checks cfg and makes a Stage of it.
func New(cfg Config) (*Stage, error) {
	if cfg.Transformer == nil {
		return nil, errors.New("ingest: Transformer: required")
	}
	return &Stage{tr: cfg.Transformer, labels: maps.Clone(cfg.Labels), onSkip: cfg.OnSkip, empty: cfg.Empty}, nil
}

// Outcome is what the stage made of one payload that the transformer
// could read.
type Outcome struct {
	// Events are the payload's events, labelled: a view of the tail of
	// the caller's Result.Events.
	Events []auditpipe.Event
	// Errors are what kept parts of the payload (or all of it) from
	// becoming events: the error that failed the payload as a whole
	// first, then the items'. A payload that made nothing (Empty) has one
	// error saying so.
	Errors []*transformers.Error
	// Skipped counts the items deliberately not turned into events, by
	// reason (already told to Config.OnSkip).
	Skipped map[string]int
	// Empty: the payload made no event, no error and skipped nothing. It
	// is refused like a malformed one (a sender's bug more often than
	// not) rather than taken for nothing.
	Empty bool

	stage  *Stage
	source string // where it came in: the dead letter's source
}

// Malformed reports whether something of the payload could not be taken,
// so that the payload (or the record) must be dead-lettered.
func (o *Outcome) Malformed() bool { return len(o.Errors) > 0 }

// Reason is the refusal in one line, for a dead letter and the logs: the
// first error and how many more (see Summary).
func (o *Outcome) Reason() string {
	if o.Empty && o.stage.empty != "" {
		return o.stage.empty
	}
	return Summary(o.Errors)
}

// Letter is the dead letter keeping payload, received at at, with the
// Reason. Which bytes are kept is the door's choice: the sidecar keeps the
// body as sent, the plugin each bad record as JSON with its time and
// metadata.
func (o *Outcome) Letter(at time.Time, payload []byte) outputs.DeadLetter {
	return outputs.DeadLetter{Time: at.UTC(), Source: o.source, Error: o.Reason(), Payload: payload}
}

// Summary is errs in one line: the first error, and how many more there
// are ("... (and 3 more errors)"); "" for none. Every error is in the
// answer or the logs of whoever needs them all; a dead letter names one.
func Summary(errs []*transformers.Error) string {
	if len(errs) == 0 {
		return ""
	}
	msg := errs[0].Error()
	if len(errs) > 1 {
		msg = fmt.Sprintf("%s (and %d more errors)", msg, len(errs)-1)
	}
	return msg
}

// Ingest runs one payload through the stage. Its events are appended to
// res.Events, labelled, and returned as a view of that tail; the rest of
// res is reset first, so a door that batches passes the same res for
// every payload of a batch and its events accumulate there. in is read,
// not kept (a pointer: an Input is 15 words, copied once more into the
// transformer). from is where the payload came from (nil: nowhere that
// adds labels); it must not be shared by two Stages.
//
// The error is non-nil only when the transformer could not run (it wraps
// transformers.ErrUnavailable): nothing is wrong with the payload, which
// must be sent again later, and res.Events is left as it was, with
// nothing counted. Every other failure is in the Outcome.
func (s *Stage) Ingest(ctx context.Context, in *transformers.Input, from *Origin, res *transformers.Result) (Outcome, error) {
	first := len(res.Events)
	*res = transformers.Result{Events: res.Events}
	terr := s.tr.Transform(ctx, *in, res)
	if terr != nil && errors.Is(terr, transformers.ErrUnavailable) {
		clear(res.Events[first:])
		res.Events = res.Events[:first]
		return Outcome{}, terr
	}
	return s.outcome(in, from, res, first, terr), nil
}

// Take is Ingest for a payload that a batching door transformed itself,
// many payloads in one call (the external transformer's TransformBatch):
// got is the payload's own result, and what Ingest would make of it is
// made of it here, its events appended to res.Events. A batch call that
// failed as a whole (transformers.ErrUnavailable) never reaches Take: the
// door retries the batch.
func (s *Stage) Take(in *transformers.Input, from *Origin, got *transformers.Result, res *transformers.Result) Outcome {
	first := len(res.Events)
	*res = transformers.Result{Events: append(res.Events, got.Events...), Errors: got.Errors, Skipped: got.Skipped,
		Format: got.Format, DecidedBy: got.DecidedBy}
	return s.outcome(in, from, res, first, nil)
}

// outcome is what the stage makes of a payload's result: its events are
// res.Events[first:], terr the transformer's error for the whole payload.
func (s *Stage) outcome(in *transformers.Input, from *Origin, res *transformers.Result, first int, terr error) Outcome {
	o := Outcome{Events: res.Events[first:], Errors: res.Errors, Skipped: res.Skipped, stage: s, source: in.Meta.SourceName}
	if terr != nil {
		o.Errors = append([]*transformers.Error{transformers.AsError(res.Format, terr)}, o.Errors...)
	}
	if len(o.Events) == 0 && len(o.Errors) == 0 && len(o.Skipped) == 0 {
		o.Empty = true
		o.Errors = []*transformers.Error{{Format: res.Format, Item: -1, Path: "$", Expected: "at least one item",
			Kind: transformers.ErrMissing, Detail: "the payload holds no items"}}
	}
	// Ranging over a map, even a nil one, starts an iterator: some 60
	// instructions, a third of the stage's own cost per payload.
	if s.onSkip != nil && len(o.Skipped) > 0 {
		for reason, n := range o.Skipped {
			s.onSkip(reason, n)
		}
	}
	s.Label(o.Events, from)
	return o
}

// Label adds the configured labels and from's to events, under the
// events' own (a transformer's security_signal wins). Events that bring
// no labels share one read-only set, built once per Origin: labels are
// read-only once an event is made. Ingest calls it; a door that runs the
// transformer itself (the sidecar's pull sources) calls it directly.
func (s *Stage) Label(events []auditpipe.Event, from *Origin) {
	var extra []Label
	if from != nil {
		extra = from.labels
	}
	if len(s.labels) == 0 && len(extra) == 0 {
		return
	}
	for i := range events {
		ev := &events[i]
		if len(ev.Labels) == 0 {
			ev.Labels = s.shared(from)
			continue
		}
		l := make(map[string]string, len(s.labels)+len(extra)+len(ev.Labels))
		maps.Copy(l, s.labels)
		for _, x := range extra {
			l[x.Name] = x.Value
		}
		maps.Copy(l, ev.Labels)
		ev.Labels = l
	}
}

// shared is the label set of events that bring none of their own.
func (s *Stage) shared(from *Origin) map[string]string {
	if from == nil || len(from.labels) == 0 {
		return s.labels
	}
	if from.shared == nil {
		l := make(map[string]string, len(s.labels)+len(from.labels))
		maps.Copy(l, s.labels)
		for _, x := range from.labels {
			l[x.Name] = x.Value
		}
		from.shared = l
	}
	return from.shared
}

// Label is one label an Origin brings.
type Label struct{ Name, Value string }

// Origin is where payloads came from, as the labels it brings: above the
// configured ones, under the transformer's own (the plugin's Fluent Bit
// tag, a record's metadata). The labels shared by its events that bring
// none of their own are built once per Origin, so one Origin for a whole
// chunk costs one map. The zero Origin brings nothing; an Origin is not
// safe for concurrent use.
type Origin struct {
	labels []Label
	shared map[string]string // built by Stage.shared; nil after a change
}

// Add adds a label; of two of the same name, the later wins.
func (o *Origin) Add(name, value string) {
	o.labels = append(o.labels, Label{name, value})
	o.shared = nil
}

// Reset empties o for reuse, keeping the memory of its list.
func (o *Origin) Reset() {
	clear(o.labels)
	o.labels = o.labels[:0]
	o.shared = nil
}
