package app

import (
	"bytes"
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/transformers"
)

// envelope is a CloudEvent's attributes.
type envelope struct {
	id, source, typ string
	time            time.Time
	attrs           map[string]string // every attribute but specversion, for details.cloudevent
}

// structured reads a CloudEvent in the JSON event format (structured and
// batched mode). Its data is an object, or data_base64 holding one.
func (t *Transformer) structured(item transformers.Node, now time.Time) (auditpipe.Event, *transformers.Error) {
	var ev auditpipe.Event
	sv := item.Get("specversion")
	v, err := sv.String()
	if err != nil {
		return ev, err
	}
	if v != "1.0" {
		return ev, sv.Errf(transformers.ErrUnsupported, `specversion "1.0"`, "specversion "+short(v))
	}
	env := envelope{attrs: make(map[string]string)}
	var r reader
	env.id = r.str(item.Get("id"), true)
	env.source = r.str(item.Get("source"), true)
	env.typ = r.str(item.Get("type"), true)
	r.str(item.Get("subject"), false)
	if tn := item.Get("time"); tn.Present() {
		if s := r.str(tn, true); r.err == nil {
			var perr error
			if env.time, perr = parseTime(s); perr != nil {
				r.fail(tn.Errf(transformers.ErrValue, "RFC 3339 timestamp", "unparseable time"))
			}
		}
	}
	if r.err != nil {
		return ev, r.err
	}
	item.Members(func(k string, v transformers.Node) {
		// Extension attributes are scalars by the spec; other values are
		// not attributes and are dropped from details.cloudevent.
		if s, err := v.Text(); err == nil && s != "" && k != "specversion" && k != "data" && k != "data_base64" {
			env.attrs[k] = s
		}
	})
	missingTime := func() *transformers.Error {
		return item.Get("time").Err(transformers.ErrMissing, "a time in the data or the CloudEvent")
	}

	data, b64 := item.Get("data"), item.Get("data_base64")
	switch {
	case data.Present() && b64.Present():
		return ev, b64.Err(transformers.ErrValue, "data or data_base64, not both")
	case !b64.Present():
		if !data.Present() {
			return ev, data.Err(transformers.ErrMissing, "object (the app event) in data or data_base64")
		}
		return t.cloudEvent(env, data, now, missingTime, nil)
	}
	s, err := b64.String()
	if err != nil {
		return ev, err
	}
	// Padding is optional in practice; the spec's base64 is RFC 4648.
	raw, berr := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	if berr != nil {
		return ev, b64.Errf(transformers.ErrValue, "base64 (RFC 4648)", berr.Error())
	}
	inner := func(e *transformers.Error) *transformers.Error { return inBase64(e, b64) }
	doc, derr := transformers.Decode(transformers.Input{Body: raw}, t.opts.Limits, item.Format())
	if derr != nil {
		return ev, inner(transformers.AsError(item.Format(), derr))
	}
	defer doc.Close()
	if doc.NDJSON || len(doc.Roots) != 1 {
		return ev, b64.Err(transformers.ErrValue, "base64 of one JSON object")
	}
	doc.Roots[0].Parse()
	return t.cloudEvent(env, doc.Roots[0].Node, now, missingTime, inner)
}

// binary reads a CloudEvent in HTTP binary mode: the attributes are ce-*
// headers, the body is the data. Header problems concern the whole payload.
func (t *Transformer) binary(in transformers.Input, res *transformers.Result, now time.Time) error {
	hdrErr := func(name string, kind error, expected string) *transformers.Error {
		return &transformers.Error{Format: FormatCloudEvents, Item: -1, Path: "header:" + name, Kind: kind, Expected: expected}
	}
	h := in.Meta.Headers
	if v := h.Get("ce-specversion"); v != "1.0" {
		e := hdrErr("ce-specversion", transformers.ErrUnsupported, `"1.0"`)
		e.Detail = "specversion " + short(v)
		return e
	}
	env := envelope{attrs: make(map[string]string)}
	for k, vs := range h {
		if name, ok := strings.CutPrefix(strings.ToLower(k), "ce-"); ok && len(vs) > 0 && name != "specversion" && name != "" {
			env.attrs[name] = headerValue(vs[0])
		}
	}
	for _, a := range []struct {
		name string
		dst  *string
	}{{"id", &env.id}, {"source", &env.source}, {"type", &env.typ}} {
		if *a.dst = env.attrs[a.name]; *a.dst == "" {
			return hdrErr("ce-"+a.name, transformers.ErrMissing, "a non-empty string")
		}
	}
	if s := env.attrs["time"]; s != "" {
		var err error
		if env.time, err = parseTime(s); err != nil {
			e := hdrErr("ce-time", transformers.ErrValue, "RFC 3339 timestamp")
			e.Detail = "unparseable time"
			return e
		}
	}
	if ct := strings.ToLower(in.Meta.ContentType()); ct != "" && ct != "application/json" && ct != "text/json" && !strings.HasSuffix(ct, "+json") {
		return hdrErr("content-type", transformers.ErrUnsupported, "a JSON content type for the event data")
	}
	if in.Doc == nil && in.Value == nil && in.Msgpack == nil && len(bytes.TrimSpace(in.Body)) == 0 {
		res.Fail(&transformers.Error{Format: FormatCloudEvents, Item: -1, Path: "$", Kind: transformers.ErrMissing,
			Expected: "the event data (a JSON object) as the body", Got: "empty body"})
		return nil
	}
	doc, err := transformers.Decode(in, t.opts.Limits, FormatCloudEvents)
	if err != nil {
		return err
	}
	defer doc.Close()
	if doc.NDJSON || len(doc.Roots) != 1 {
		return &transformers.Error{Format: FormatCloudEvents, Item: -1, Path: "$", Kind: transformers.ErrUnsupported,
			Expected: "one JSON object as the event data", Got: "NDJSON"}
	}
	root := &doc.Roots[0]
	root.Parse()
	missingTime := func() *transformers.Error {
		return hdrErr("ce-time", transformers.ErrMissing, "a time in the data or the ce-time header")
	}
	ev, ierr := t.cloudEvent(env, root.Node, now, missingTime, nil)
	res.Emit(ev, ierr, in.Meta, root.RawSHA256(), FormatCloudEvents, root.Node)
	return nil
}

// cloudEvent decodes a CloudEvent's data as an app event and completes it
// from the envelope. inner re-anchors errors found inside the data when it
// came from data_base64 (nil otherwise).
func (t *Transformer) cloudEvent(env envelope, data transformers.Node, now time.Time,
	missingTime func() *transformers.Error, inner func(*transformers.Error) *transformers.Error) (auditpipe.Event, *transformers.Error) {
	if inner == nil {
		inner = func(e *transformers.Error) *transformers.Error { return e }
	}
	if !data.IsObject() {
		return auditpipe.Event{}, inner(data.Err(transformers.ErrType, "object (the app event)"))
	}
	d, err := t.decode(t.dataFlavor(data), data, true)
	if err != nil {
		return d.ev, inner(err)
	}
	d.ev.ID = auditpipe.IDFromParts(env.source, env.id)
	if d.ev.Time.IsZero() {
		d.ev.Time = env.time
	}
	if d.ev.Time.IsZero() && (d.flavor != FormatGeneric || t.generic.has("time")) {
		return d.ev, missingTime()
	}
	if d.ev.Action == "" {
		d.ev.Action = env.typ
	}
	d.details.Map("cloudevent", env.attrs)
	ev, err := t.complete(&d, FormatCloudEvents, now)
	if err != nil {
		return ev, inner(err)
	}
	return ev, nil
}

// dataFlavor picks the decoder of a CloudEvent's data. Data of no known
// shape is read as a Teabar event, whose fields are all optional under an
// envelope, unless a generic mapping is configured.
func (t *Transformer) dataFlavor(data transformers.Node) string {
	if f, _, ok := t.shape(data); ok && f != FormatCloudEvents {
		return f
	}
	if t.generic != nil {
		return FormatGeneric
	}
	return FormatTeabar
}

// inBase64 re-anchors an error found inside decoded data_base64 at the
// attribute: a JSONPath cannot point into a string, so the path inside the
// data moves to the detail.
func inBase64(e *transformers.Error, at transformers.Node) *transformers.Error {
	detail := "in the decoded data at " + e.Path
	if e.Detail != "" {
		detail += ": " + e.Detail
	}
	return &transformers.Error{Format: at.Format(), Item: at.Item(), Line: at.Line(), Path: at.Path(),
		Kind: e.Kind, Expected: e.Expected, Got: e.Got, Detail: detail}
}

func parseTime(s string) (time.Time, error) {
	ts, err := time.Parse(time.RFC3339Nano, s)
	return ts.UTC(), err
}

// headerValue undoes the percent-encoding the CloudEvents HTTP binding
// applies to non-ASCII attribute values; a value that does not decode is
// kept as sent.
func headerValue(v string) string {
	if strings.IndexByte(v, '%') >= 0 {
		if u, err := url.PathUnescape(v); err == nil {
			v = u
		}
	}
	return strings.ToValidUTF8(v, "\uFFFD")
}

// short quotes a value for an error detail, cut so that a hostile payload
// cannot fill logs through it.
func short(s string) string {
	if len(s) <= 16 {
		return strconv.Quote(s)
	}
	s = s[:16]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return strconv.Quote(s) + "..."
}
