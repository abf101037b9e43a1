// Package app decodes application audit logs: yoq-style entries,
// Teabar-style rich events, CloudEvents 1.0 carrying either, and other
// apps' JSON through a configured mapping of JSON pointers.
//
// Flavors. Config.Flavor picks the decoder; auto, the default, recognises
// each item by its shape, in this order:
//   - a CloudEvent has "specversion"; a payload sent as
//     application/cloudevents+json or application/cloudevents-batch+json,
//     or in binary mode (ce-specversion header, the body is the data), is
//     CloudEvents whatever it holds;
//   - a yoq entry has "recorded_at";
//   - a Teabar event has a string "action", a "timestamp", and an "actor"
//     object or an "id";
//   - anything else is generic when a generic mapping is configured and its
//     action pointer finds a value, and a per-item error otherwise.
//
// Every event has source type "app"; source.format names the decoder:
// app/yoq, app/teabar, app/cloudevents or app/generic. Forced flavors
// (yoq, teabar, generic) ignore content types and ce-* headers.
//
// Ids:
//   - yoq: entries carry no id, so the id is the SHA-256 of the entry's
//     canonical JSON (RFC 8785). Equal entries in one batch are distinct
//     operations (two secret_set calls in the same second): the n-th repeat
//     gets auditpipe.NthDuplicateID(base, n), which depends only on the
//     batch, so a re-sent batch gets the same ids again. Batches that
//     merely overlap (polling GET /v1/audit with a sliding window) can
//     number equal entries differently: a poller should forward each entry
//     once.
//   - Teabar: the event's own id, verbatim; without one, the yoq rule.
//   - generic: the value at app.generic.id, verbatim; without one, the yoq
//     rule.
//   - CloudEvents: auditpipe.IDFromParts(source, id), the pair CloudEvents
//     defines as unique, whatever the data holds. A re-delivered CloudEvent
//     keeps its id; so does the same event in structured, batched or binary
//     mode. The same Teabar event exported plain and through the webhook
//     therefore has two ids.
//
// A CloudEvent's data is itself an app event, decoded by the flavor its
// shape suggests (yoq, Teabar, generic when configured, else Teabar, whose
// fields are all optional there). The envelope completes it: the data's
// time, else the CloudEvent's time; the data's action, else the CloudEvent
// type; and details gain a "cloudevent" object with the envelope's
// attributes (type, source, id, subject, time, extensions).
//
// Outcomes: yoq states its own (ok, failed). A Teabar event is recorded
// when the action happened and names failures in the action, so it is a
// success unless the action ends in failed or denied (auth.login_failed).
// A generic event takes the value at app.generic.outcome, else what its
// action says, else unknown: a generic app is not assumed to have
// succeeded.
//
// The mappings of verbs, categories and actors are documented on
// Operation, Category, ActionOutcome, YoqActor and ActorType.
package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/transformers"
)

// Format is the format name, also the source type of every event.
const Format = "app"

// The decoders, as event.source.format names them.
const (
	FormatYoq         = "app/yoq"
	FormatTeabar      = "app/teabar"
	FormatCloudEvents = "app/cloudevents"
	FormatGeneric     = "app/generic"
)

// The CloudEvents content types of structured and batched mode.
const (
	ContentTypeStructured = "application/cloudevents+json"
	ContentTypeBatch      = "application/cloudevents-batch+json"
)

// Config configures the format (the `app:` YAML block).
type Config struct {
	// Flavor is the decoder: auto (default: by shape, item by item), yoq,
	// teabar, cloudevents or generic.
	Flavor string `yaml:"flavor"`
	// Generic maps another app's fields; required with flavor generic, a
	// fallback for unrecognised items with auto and cloudevents.
	Generic GenericConfig `yaml:"generic"`
}

// Transformer decodes application audit logs. It is immutable once built.
type Transformer struct {
	opts    transformers.Options
	flavor  string   // one of the Format* constants; "" for auto
	generic *mapping // nil when no generic mapping is configured
}

// New returns an app transformer, or an error naming the bad key.
func New(cfg Config, opts transformers.Options) (*Transformer, error) {
	t := &Transformer{opts: opts}
	switch cfg.Flavor {
	case "", "auto":
	case "yoq", "teabar", "cloudevents", "generic":
		t.flavor = Format + "/" + cfg.Flavor
	default:
		return nil, fmt.Errorf("app.flavor: unknown flavor %q (want auto, yoq, teabar, cloudevents or generic)", cfg.Flavor)
	}
	if err := opts.Limits.Validate(); err != nil {
		return nil, err
	}
	var err error
	if t.generic, err = compile(cfg.Generic); err != nil {
		return nil, err
	}
	switch {
	case t.flavor == FormatGeneric && t.generic == nil:
		return nil, errors.New("app.generic.action: required when app.flavor is generic")
	case t.generic != nil && (t.flavor == FormatYoq || t.flavor == FormatTeabar):
		// A mapping that is never used is a misconfiguration to point out.
		return nil, fmt.Errorf("app.generic: set, but app.flavor %s never uses it (use auto, cloudevents or generic)", cfg.Flavor)
	}
	return t, nil
}

// decoded is one app event as a flavor read it. The caller completes it:
// the id, and for CloudEvents the time and action.
type decoded struct {
	ev      auditpipe.Event
	details transformers.Details
	flavor  string
	who     string // the actor as the message names it
}

// Transform implements transformers.Transformer.
func (t *Transformer) Transform(ctx context.Context, in transformers.Input, res *transformers.Result) error {
	res.Format = Format
	if in.Meta.ReceivedAt.IsZero() {
		// Fixed once, so that a generic event without a time of its own gets
		// its observed time as its time.
		in.Meta.ReceivedAt = time.Now()
	}
	now := in.Meta.ReceivedAt
	flavor, batch := t.flavor, false
	if t.acceptsCloudEvents() {
		if in.Meta.Headers.Get("ce-specversion") != "" {
			return t.binary(in, res, now)
		}
		switch strings.ToLower(in.Meta.ContentType()) {
		case ContentTypeBatch:
			flavor, batch = FormatCloudEvents, true
		case ContentTypeStructured:
			flavor = FormatCloudEvents
		}
	}
	doc, err := transformers.Decode(in, t.opts.Limits, Format)
	if err != nil {
		return err
	}
	defer doc.Close()
	if batch && (doc.NDJSON || len(doc.Roots) != 1 || !doc.Roots[0].IsArray()) {
		got := "NDJSON"
		if !doc.NDJSON && len(doc.Roots) == 1 {
			got = doc.Roots[0].Kind()
		}
		return &transformers.Error{Format: FormatCloudEvents, Item: -1, Path: "$", Kind: transformers.ErrType,
			Expected: "a JSON array of CloudEvents (" + ContentTypeBatch + ")", Got: got}
	}
	res.Errors = append(res.Errors, doc.Errors...)
	res.Grow(doc.Count())
	dups := make(map[string]int) // derived id -> times seen in this batch
	if err := doc.Items(t.opts.Limits, func(item transformers.Node, root *transformers.Root) {
		ev, ierr := t.item(item, flavor, dups, now)
		res.Emit(ev, ierr, in.Meta, root.RawSHA256(), ev.Source.Format, item)
	}); err != nil {
		return err
	}
	return nil
}

func (t *Transformer) acceptsCloudEvents() bool {
	return t.flavor == "" || t.flavor == FormatCloudEvents
}

// Detect implements transformers.Detector. CloudEvents headers decide
// first (header:ce-specversion, header:content-type); otherwise the field
// that decided the first item's flavor ($.specversion, $.recorded_at,
// $.actor or $.id for Teabar, the generic action pointer).
func (t *Transformer) Detect(root transformers.Node, meta transformers.Meta) (string, bool) {
	if t.acceptsCloudEvents() {
		if meta.Headers.Get("ce-specversion") != "" {
			return "header:ce-specversion", true
		}
		if ct := strings.ToLower(meta.ContentType()); ct == ContentTypeStructured || ct == ContentTypeBatch {
			return "header:content-type", true
		}
	}
	if root.IsArray() && root.Len() > 0 {
		root = root.Index(0)
	}
	if t.flavor == FormatGeneric {
		if by := t.generic.get(root, "action"); by.Present() {
			return by.Path(), true
		}
		return "", false
	}
	flavor, by, ok := t.shape(root)
	if !ok || t.flavor != "" && flavor != t.flavor {
		return "", false
	}
	return by.Path(), true
}

// shape recognises an item's flavor and returns the node that decided.
// Teabar needs more than one field because its names (action, id) are
// common: a generic app's events must not be taken for Teabar's.
func (t *Transformer) shape(n transformers.Node) (string, transformers.Node, bool) {
	if v := n.Get("specversion"); v.Exists() {
		return FormatCloudEvents, v, true
	}
	if v := n.Get("recorded_at"); v.Exists() {
		return FormatYoq, v, true
	}
	if n.Get("action").IsString() && n.Get("timestamp").Present() {
		if v := n.Get("actor"); v.IsObject() {
			return FormatTeabar, v, true
		}
		if v := n.Get("id"); v.Present() {
			return FormatTeabar, v, true
		}
	}
	if t.generic != nil {
		if v := t.generic.get(n, "action"); v.Present() {
			return FormatGeneric, v, true
		}
	}
	return "", transformers.Node{}, false
}

func (t *Transformer) item(item transformers.Node, flavor string, dups map[string]int, now time.Time) (auditpipe.Event, *transformers.Error) {
	if _, err := item.Object(); err != nil {
		return auditpipe.Event{}, err
	}
	if flavor == "" {
		f, _, ok := t.shape(item)
		if !ok {
			want := "an app event: a CloudEvent (specversion), a yoq entry (recorded_at) or a Teabar event (action, timestamp, and actor object or id)"
			if t.generic != nil {
				want += ", or a value at app.generic.action"
			}
			return auditpipe.Event{}, item.Err(transformers.ErrUnsupported, want)
		}
		flavor = f
	}
	item = item.WithFormat(flavor)
	if flavor == FormatCloudEvents {
		return t.structured(item, now)
	}
	d, err := t.decode(flavor, item, false)
	if err != nil {
		return d.ev, err
	}
	if d.ev.ID == "" {
		base, err := transformers.CanonicalID(item)
		if err != nil {
			return d.ev, err
		}
		d.ev.ID = auditpipe.NthDuplicateID(base, dups[base])
		dups[base]++
	}
	return t.complete(&d, flavor, now)
}

// decode reads n as flavor. Inside a CloudEvent the envelope supplies the
// id, time and action, so the data may lack them.
func (t *Transformer) decode(flavor string, n transformers.Node, inCE bool) (decoded, *transformers.Error) {
	switch flavor {
	case FormatYoq:
		return yoq(n, inCE)
	case FormatGeneric:
		return t.generic.decode(n, inCE)
	default:
		return teabar(n, inCE)
	}
}

// complete derives what follows from the action, which a CloudEvent may
// only have settled now, and encodes the details.
func (t *Transformer) complete(d *decoded, format string, now time.Time) (auditpipe.Event, *transformers.Error) {
	ev := &d.ev
	ev.Source = auditpipe.Source{Type: Format, Format: format}
	if ev.Time.IsZero() && d.flavor == FormatGeneric && !t.generic.has("time") {
		ev.Time = now // the app records no time: when we received it is the best we know
	}
	a := analyze(ev.Action)
	switch d.flavor {
	case FormatYoq:
		if i := strings.LastIndexByte(ev.Action, '_'); i > 0 && ev.Resource.Type == "" {
			ev.Resource.Type = ev.Action[:i] // secret_set is about a secret
		}
	case FormatGeneric:
		if op, ok := t.generic.operations[ev.Action]; ok {
			ev.Operation = op
		}
	}
	if ev.Operation == "" {
		ev.Operation = a.operation()
	}
	if ev.Outcome == "" {
		// A Teabar event is logged when the action happened, and names
		// failures in the action (auth.login_failed); a generic app that
		// states no outcome is not assumed to have succeeded.
		ev.Outcome = a.outcome
		if ev.Outcome == "" {
			ev.Outcome = auditpipe.OutcomeUnknown
			if d.flavor == FormatTeabar {
				ev.Outcome = auditpipe.OutcomeSuccess
			}
		}
	}
	ev.Category = a.categories()
	if ev.Message == "" {
		ev.Message = message(d.who, ev.Action, ev.Resource, ev.Outcome)
	}
	var err *transformers.Error
	if ev.Details, err = d.details.Build(t.opts.Redactor); err != nil {
		return *ev, err
	}
	return *ev, nil
}

// message is one human-readable line: "api-token performed secret_set on
// secret db-password (failed)".
func message(who, action string, r auditpipe.Resource, outcome auditpipe.Outcome) string {
	if who == "" {
		who = "unknown actor"
	}
	var b strings.Builder
	b.WriteString(who)
	b.WriteString(" performed ")
	b.WriteString(action)
	name := r.Name
	if name == "" {
		name = r.ID
	}
	if name != "" {
		b.WriteString(" on ")
		if r.Type != "" {
			b.WriteString(r.Type)
			b.WriteString(" ")
		}
		b.WriteString(name)
	}
	switch outcome {
	case auditpipe.OutcomeFailure:
		b.WriteString(" (failed)")
	case auditpipe.OutcomeDenied:
		b.WriteString(" (denied)")
	}
	return b.String()
}

// unmapped adds the members of n that the flavor does not map to details,
// so nothing the app said is lost.
func unmapped(n transformers.Node, d *transformers.Details, mapped ...string) {
	d.Grow(n.NumMembers() - len(mapped))
	n.Members(func(k string, v transformers.Node) {
		for _, m := range mapped {
			if k == m {
				return
			}
		}
		d.Value(k, v)
	})
}

// reader collects the first error of a run of field reads, so a decoder
// reads like the list of its fields.
type reader struct{ err *transformers.Error }

func (r *reader) fail(err *transformers.Error) {
	if r.err == nil {
		r.err = err
	}
}

// str reads an optional string, or a required non-empty one.
func (r *reader) str(n transformers.Node, required bool) string {
	if r.err != nil {
		return ""
	}
	var s string
	if required {
		s, r.err = n.String()
	} else {
		s, r.err = n.OptString()
	}
	return s
}

// text reads an optional scalar as text (ids are numbers in some apps).
func (r *reader) text(n transformers.Node) string {
	if r.err != nil {
		return ""
	}
	s, err := n.Text()
	r.fail(err)
	return s
}

// time reads a timestamp; missing or null is the zero time unless
// required. Node.Time refuses years outside 1..9999.
func (r *reader) time(n transformers.Node, unit time.Duration, required bool) time.Time {
	if r.err != nil || !required && !n.Present() {
		return time.Time{}
	}
	ts, err := n.Time(unit)
	r.fail(err)
	return ts
}

// actor builds an actor from loose fields: an actor with an email but no
// stated type is a person.
func actor(typ, id, name, email string) auditpipe.Actor {
	a := auditpipe.Actor{Type: ActorType(typ), ID: id, Name: name, Email: email}
	if typ == "" && email != "" {
		a.Type = auditpipe.ActorUser
	}
	return a
}

// ActorType maps an app's actor type: user (also human, person, member),
// service (service_account, bot, integration, app), token (api_key, apikey,
// token, pat, access_token), system (also internal, scheduler, cron);
// anything else is unknown. Case, '_', '-' and spaces are ignored.
func ActorType(s string) auditpipe.ActorType {
	s = strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', ' ', '.':
			return -1
		}
		return r
	}, strings.ToLower(s))
	switch s {
	case "user", "human", "person", "member":
		return auditpipe.ActorUser
	case "service", "serviceaccount", "bot", "integration", "app", "application":
		return auditpipe.ActorService
	case "apikey", "token", "apitoken", "pat", "accesstoken", "personalaccesstoken":
		return auditpipe.ActorToken
	case "system", "internal", "scheduler", "cron":
		return auditpipe.ActorSystem
	}
	return auditpipe.ActorUnknown
}
