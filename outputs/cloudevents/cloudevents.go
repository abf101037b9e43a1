// Package cloudevents writes auditpipe events as CloudEvents 1.0: the
// attributes the Kafka binding carries as ce_* headers, and the structured
// and batched JSON forms the webhook output posts. The event's own JSON form
// is the CloudEvent's data, so a consumer that knows auditpipe's schema reads
// the same object whichever way it arrived.
package cloudevents

import (
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/internal/jsonw"
)

const (
	// SpecVersion is the CloudEvents version written.
	SpecVersion = "1.0"
	// Type is every event's CloudEvents type: the event is an auditpipe
	// audit event of schema version 1, whatever its action (which is in the
	// auditaction extension, so subscribers can filter on it).
	Type = "io.auditpipe.audit.v" + auditpipe.SchemaVersion
	// DataContentType is the media type of the data: the event's JSON form.
	DataContentType = "application/json"
	// ContentType is the media type of a structured CloudEvent.
	ContentType = "application/cloudevents+json"
	// BatchContentType is the media type of a batch of CloudEvents.
	BatchContentType = "application/cloudevents-batch+json"
)

// Attributes are an event's CloudEvents context attributes.
type Attributes struct {
	ID     string
	Source string
	Type   string
	// Time is RFC 3339, empty when the event has no time.
	Time string
	// Subject is the resource acted on, when known.
	Subject string
	// Action and Outcome are the extension attributes auditaction and
	// auditoutcome.
	Action, Outcome string
}

// AttributesOf returns ev's attributes. The source is
// "auditpipe/<source type>/<source name>", a URI reference that with the id
// is unique per event, as the specification asks.
func AttributesOf(ev *auditpipe.Event) Attributes {
	a := Attributes{
		ID:      ev.ID,
		Source:  SourceOf(ev),
		Type:    Type,
		Subject: subject(ev),
		Action:  ev.Action,
		Outcome: string(ev.Outcome),
	}
	if !ev.Time.IsZero() {
		a.Time = ev.Time.UTC().Format(time.RFC3339Nano)
	}
	return a
}

// SourceOf is the CloudEvents source of ev.
func SourceOf(ev *auditpipe.Event) string {
	s := "auditpipe/" + ev.Source.Type
	if ev.Source.Name != "" {
		s += "/" + ev.Source.Name
	}
	return s
}

func subject(ev *auditpipe.Event) string {
	r := &ev.Resource
	switch {
	case r.Namespace != "" && r.Name != "":
		return r.Namespace + "/" + r.Name
	case r.ID != "":
		return r.ID
	default:
		return r.Name
	}
}

// AppendStructured appends ev as one structured-mode CloudEvent (JSON
// object, media type ContentType) to dst.
func AppendStructured(dst []byte, ev *auditpipe.Event) []byte {
	dst = append(dst, `{"specversion":"`+SpecVersion+`","id":`...)
	dst = jsonw.AppendString(dst, ev.ID)
	dst = append(dst, `,"source":"auditpipe/`...)
	dst = jsonw.AppendEscaped(dst, ev.Source.Type)
	if ev.Source.Name != "" {
		dst = append(dst, '/')
		dst = jsonw.AppendEscaped(dst, ev.Source.Name)
	}
	dst = append(dst, '"')
	dst = append(dst, `,"type":"`+Type+`"`...)
	if !ev.Time.IsZero() {
		dst = append(dst, `,"time":`...)
		dst = jsonw.AppendTime(dst, ev.Time.UTC())
	}
	if r := &ev.Resource; r.Namespace != "" && r.Name != "" {
		// subject(ev), written in pieces so that no string is built.
		dst = append(dst, `,"subject":"`...)
		dst = jsonw.AppendEscaped(dst, r.Namespace)
		dst = append(dst, '/')
		dst = jsonw.AppendEscaped(dst, r.Name)
		dst = append(dst, '"')
	} else if s := subject(ev); s != "" {
		dst = append(dst, `,"subject":`...)
		dst = jsonw.AppendString(dst, s)
	}
	if ev.Action != "" {
		dst = append(dst, `,"auditaction":`...)
		dst = jsonw.AppendString(dst, ev.Action)
	}
	if ev.Outcome != "" {
		dst = append(dst, `,"auditoutcome":`...)
		dst = jsonw.AppendString(dst, string(ev.Outcome))
	}
	dst = append(dst, `,"datacontenttype":"`+DataContentType+`","data":`...)
	dst = eventjson.Append(dst, ev)
	return append(dst, '}')
}

// AppendBatch appends events as a batched-mode CloudEvents array (media
// type BatchContentType) to dst.
func AppendBatch(dst []byte, events []auditpipe.Event) []byte {
	dst = append(dst, '[')
	for i := range events {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendStructured(dst, &events[i])
	}
	return append(dst, ']')
}
