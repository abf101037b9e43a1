package outputs

import (
	"context"
	"encoding/json"
	"time"
)

// DeadLetter is one event (or one payload that never became an event) that
// cannot be delivered as it is, with the reason. The dead-letter store keeps
// it so an operator can fix the cause and replay it.
type DeadLetter struct {
	Time time.Time `json:"time"`
	// Output is the configured output that rejected the event; empty for a
	// payload rejected before any output saw it.
	Output string `json:"output,omitempty"`
	Error  string `json:"error"`
	// Event is the event's JSON form (eventjson.Append).
	Event json.RawMessage `json:"event,omitempty"`
	// Source and Payload hold input that could not be transformed: the
	// source it arrived on and its bytes as received.
	Source  string `json:"source,omitempty"`
	Payload []byte `json:"payload,omitempty"`
	// Headers are the payload's headers as they came with it, when the
	// transformer reads them (a Kafka message's: ce_* CloudEvents
	// attributes, content-type), so that a replay can send them again.
	Headers map[string][]string `json:"headers,omitempty"`
	// Kafka is where a Kafka source read the payload.
	Kafka *KafkaPosition `json:"kafka,omitempty"`
}

// KafkaPosition is a message's place in Kafka.
type KafkaPosition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// DeadLetterer stores dead letters durably: when DeadLetter returns nil the
// letters survive a crash. outputs/dlq implements it with NDJSON files.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, letters []DeadLetter) error
}
