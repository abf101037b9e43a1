package webhooktest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"

	"github.com/auditpipe/auditpipe"
)

// SignatureHeader is the header carrying the body's HMAC.
const SignatureHeader = "X-Signature-256"

// Sign returns the X-Signature-256 value for body under secret:
// "sha256=" and the hex HMAC-SHA256 of the body.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature reports whether header is the X-Signature-256 value of
// body under secret. The comparison takes the same time however many bytes
// match, so a caller cannot guess the HMAC byte by byte.
func VerifySignature(secret string, body []byte, header string) bool {
	hexSum, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// The media types Decode knows.
const (
	ContentTypeJSON            = "application/json"
	ContentTypeNDJSON          = "application/x-ndjson"
	ContentTypeCloudEvents     = "application/cloudevents+json"
	ContentTypeCloudEventBatch = "application/cloudevents-batch+json"
)

// Decode returns the events of a webhook body:
//   - application/json: one event object, or an array of them;
//   - application/x-ndjson (also application/jsonl): one event per line,
//     blank lines ignored;
//   - application/cloudevents+json: one structured CloudEvent 1.0 whose data
//     is the event;
//   - application/cloudevents-batch+json: an array of those.
//
// Any other or missing content type is sniffed from the body. Events are
// decoded strictly (an unknown field is an error, the id is required), and
// a CloudEvent must carry specversion 1.0, id, source and type, with an id
// equal to its event's.
func Decode(contentType string, body []byte) ([]auditpipe.Event, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt = ""
	}
	switch mt {
	case ContentTypeJSON:
		if firstByte(body) == '[' {
			return decodeArray(body, decodeEvent)
		}
		ev, err := decodeEvent(body)
		if err != nil {
			return nil, err
		}
		return []auditpipe.Event{ev}, nil
	case ContentTypeNDJSON, "application/jsonl", "application/x-jsonlines":
		return decodeLines(body)
	case ContentTypeCloudEvents:
		ev, err := decodeCloudEvent(body)
		if err != nil {
			return nil, err
		}
		return []auditpipe.Event{ev}, nil
	case ContentTypeCloudEventBatch:
		if firstByte(body) != '[' {
			return nil, errors.New("cloudevents batch: not a JSON array")
		}
		return decodeArray(body, decodeCloudEvent)
	}
	return sniff(body)
}

// sniff decodes a body sent with an unknown content type by its shape.
func sniff(body []byte) ([]auditpipe.Event, error) {
	switch firstByte(body) {
	case '[':
		return decodeArray(body, decodeAny)
	case '{':
		if ev, err := decodeAny(body); err == nil {
			return []auditpipe.Event{ev}, nil
		}
		return decodeLines(body)
	case 0:
		return nil, errors.New("empty body")
	}
	return nil, errors.New("body is neither a JSON object, an array nor NDJSON")
}

// decodeAny decodes an object that is either an event or a CloudEvent.
func decodeAny(b []byte) (auditpipe.Event, error) {
	var probe struct {
		SpecVersion *string `json:"specversion"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return auditpipe.Event{}, err
	}
	if probe.SpecVersion != nil {
		return decodeCloudEvent(b)
	}
	return decodeEvent(b)
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

func decodeArray(body []byte, one func([]byte) (auditpipe.Event, error)) ([]auditpipe.Event, error) {
	var items []json.RawMessage
	if err := decodeStrict(body, &items); err != nil {
		return nil, fmt.Errorf("array: %w", err)
	}
	if len(items) == 0 {
		return nil, errors.New("array: empty")
	}
	evs := make([]auditpipe.Event, 0, len(items))
	for i, it := range items {
		ev, err := one(it)
		if err != nil {
			return nil, fmt.Errorf("array item %d: %w", i, err)
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

func decodeLines(body []byte) ([]auditpipe.Event, error) {
	var evs []auditpipe.Event
	for n, line := range bytes.Split(body, []byte{'\n'}) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		ev, err := decodeEvent(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		return nil, errors.New("ndjson: no events")
	}
	return evs, nil
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields, so that a sender writing a field the schema lacks is caught.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

func decodeEvent(b []byte) (auditpipe.Event, error) {
	if firstByte(b) != '{' {
		return auditpipe.Event{}, errors.New("event: not a JSON object")
	}
	var ev auditpipe.Event
	if err := decodeStrict(b, &ev); err != nil {
		return auditpipe.Event{}, fmt.Errorf("event: %w", err)
	}
	if ev.ID == "" {
		return auditpipe.Event{}, errors.New("event: no id")
	}
	return ev, nil
}

// cloudEvent is the part of a structured CloudEvent the sink checks.
// Extension attributes are allowed, as the specification requires.
type cloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

func decodeCloudEvent(b []byte) (auditpipe.Event, error) {
	if firstByte(b) != '{' {
		return auditpipe.Event{}, errors.New("cloudevent: not a JSON object")
	}
	var ce cloudEvent
	if err := json.Unmarshal(b, &ce); err != nil {
		return auditpipe.Event{}, fmt.Errorf("cloudevent: %w", err)
	}
	switch {
	case ce.SpecVersion != "1.0":
		return auditpipe.Event{}, fmt.Errorf("cloudevent: specversion %q, want 1.0", ce.SpecVersion)
	case ce.ID == "" || ce.Source == "" || ce.Type == "":
		return auditpipe.Event{}, errors.New("cloudevent: id, source and type are required")
	case ce.DataContentType != "" && ce.DataContentType != ContentTypeJSON:
		return auditpipe.Event{}, fmt.Errorf("cloudevent: datacontenttype %q, want %s", ce.DataContentType, ContentTypeJSON)
	case len(ce.Data) == 0:
		return auditpipe.Event{}, errors.New("cloudevent: no data")
	}
	ev, err := decodeEvent(ce.Data)
	if err != nil {
		return auditpipe.Event{}, fmt.Errorf("cloudevent data: %w", err)
	}
	if ev.ID != ce.ID {
		return auditpipe.Event{}, fmt.Errorf("cloudevent: id %q differs from its event's id %q", ce.ID, ev.ID)
	}
	return ev, nil
}
