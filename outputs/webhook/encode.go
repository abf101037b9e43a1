package webhook

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/outputs/cloudevents"
)

// appendEvent appends one event as m writes it: its JSON form, a line of
// NDJSON, or a structured CloudEvent.
func (m Mode) appendEvent(dst []byte, ev *auditpipe.Event) []byte {
	switch m {
	case ModeCloudEvents, ModeCloudEventsBatch:
		return cloudevents.AppendStructured(dst, ev)
	case ModeNDJSON:
		return append(eventjson.Append(dst, ev), '\n')
	default:
		return eventjson.Append(dst, ev)
	}
}

// array reports whether m's batch bodies are JSON arrays.
func (m Mode) array() bool { return m == ModeJSONArray || m == ModeCloudEventsBatch }

// appendChunk appends the body of one batch request to dst: as many of
// events as fit in max bytes, and at least one. It returns the body and how
// many events it holds. Filled this way, the same events and max always
// give the same requests, so a re-sent batch carries the same
// Idempotency-Keys.
func (m Mode) appendChunk(dst []byte, events []auditpipe.Event, max int) ([]byte, int) {
	base := len(dst)
	closing := 0
	if m.array() {
		dst = append(dst, '[')
		closing = 1
	}
	for i := range events {
		mark := len(dst)
		if i > 0 && m.array() {
			dst = append(dst, ',')
		}
		dst = m.appendEvent(dst, &events[i])
		// Encoding an event to find it does not fit wastes one encoding
		// per request, which is cheaper than measuring each event first.
		if i > 0 && len(dst)-base+closing > max {
			dst = dst[:mark]
			if m.array() {
				dst = append(dst, ']')
			}
			return dst, i
		}
	}
	if m.array() {
		dst = append(dst, ']')
	}
	return dst, len(events)
}

// batchKey is the Idempotency-Key of a batch request: the hex SHA-256 of
// its events' ids, each followed by a newline. It depends on nothing but
// the ids and their order, so the same batch sent again has the same key.
// scratch is reused for the ids.
func batchKey(scratch []byte, events []auditpipe.Event) string {
	ids := scratch[:0]
	for i := range events {
		ids = append(ids, events[i].ID...)
		ids = append(ids, '\n')
	}
	sum := sha256.Sum256(ids)
	return hex.EncodeToString(sum[:])
}
