package kafka

import (
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/outputs/cloudevents"
)

// The record headers of the CloudEvents Kafka protocol binding, binary
// mode: each context attribute as ce_<name>, and the data's media type as
// content-type.
const (
	HeaderSpecVersion = "ce_specversion"
	HeaderID          = "ce_id"
	HeaderType        = "ce_type"
	HeaderSource      = "ce_source"
	HeaderTime        = "ce_time"
	HeaderSubject     = "ce_subject"
	HeaderAction      = "ce_auditaction"
	HeaderOutcome     = "ce_auditoutcome"
	HeaderContentType = "content-type"
)

// maxHeaders is the most headers a record gets.
const maxHeaders = 9

// appendMessage builds ev's record for topic: key = id, value = the
// event's JSON form, headers = its CloudEvents attributes. The bytes of
// key, value and header values are appended to buf, and the headers to
// hdrs; the message refers to both, so neither may be modified while the
// message is in use. Each piece is cut with a capacity limit so that
// appending to one cannot overwrite the next.
//
// The attributes are cloudevents.AttributesOf's, written in pieces
// straight into buf rather than built as strings first (which costs four
// allocations an event); TestHeadersMatchAttributes holds them equal.
func appendMessage(buf []byte, hdrs []kafkago.Header, topic string, ev *auditpipe.Event, now time.Time) ([]byte, []kafkago.Header, kafkago.Message) {
	h0 := len(hdrs)
	var v []byte

	buf, v = appendPiece(buf, cloudevents.SpecVersion)
	hdrs = append(hdrs, kafkago.Header{Key: HeaderSpecVersion, Value: v})
	buf, key := appendPiece(buf, ev.ID)
	hdrs = append(hdrs, kafkago.Header{Key: HeaderID, Value: key})
	buf, v = appendPiece(buf, cloudevents.Type)
	hdrs = append(hdrs, kafkago.Header{Key: HeaderType, Value: v})

	start := len(buf)
	buf = append(buf, "auditpipe/"...)
	buf = append(buf, ev.Source.Type...)
	if ev.Source.Name != "" {
		buf = append(buf, '/')
		buf = append(buf, ev.Source.Name...)
	}
	hdrs = append(hdrs, kafkago.Header{Key: HeaderSource, Value: buf[start:len(buf):len(buf)]})

	if !ev.Time.IsZero() {
		start = len(buf)
		buf = ev.Time.UTC().AppendFormat(buf, time.RFC3339Nano)
		hdrs = append(hdrs, kafkago.Header{Key: HeaderTime, Value: buf[start:len(buf):len(buf)]})
	}
	if r := &ev.Resource; r.Namespace != "" && r.Name != "" {
		start = len(buf)
		buf = append(buf, r.Namespace...)
		buf = append(buf, '/')
		buf = append(buf, r.Name...)
		hdrs = append(hdrs, kafkago.Header{Key: HeaderSubject, Value: buf[start:len(buf):len(buf)]})
	} else if s := r.ID; s != "" || r.Name != "" {
		if s == "" {
			s = r.Name
		}
		buf, v = appendPiece(buf, s)
		hdrs = append(hdrs, kafkago.Header{Key: HeaderSubject, Value: v})
	}
	if ev.Action != "" {
		buf, v = appendPiece(buf, ev.Action)
		hdrs = append(hdrs, kafkago.Header{Key: HeaderAction, Value: v})
	}
	if ev.Outcome != "" {
		buf, v = appendPiece(buf, string(ev.Outcome))
		hdrs = append(hdrs, kafkago.Header{Key: HeaderOutcome, Value: v})
	}
	buf, v = appendPiece(buf, cloudevents.DataContentType)
	hdrs = append(hdrs, kafkago.Header{Key: HeaderContentType, Value: v})

	var value []byte
	if ev.Integrity == nil && len(ev.Encoded) > 0 {
		// The event's JSON form as it is: no copy.
		value = ev.Encoded[:len(ev.Encoded):len(ev.Encoded)]
	} else {
		start = len(buf)
		buf = eventjson.Append(buf, ev)
		value = buf[start:len(buf):len(buf)]
	}

	return buf, hdrs, kafkago.Message{
		Topic:   topic,
		Key:     key,
		Value:   value,
		Headers: hdrs[h0:len(hdrs):len(hdrs)],
		// The record's timestamp is when it was produced, not when the
		// event happened (that is ce_time): an event replayed from the
		// dead-letter store weeks later must not fall straight out of
		// time-based retention, nor trip a broker's
		// message.timestamp.difference.max.ms.
		Time: now,
	}
}

func appendPiece(buf []byte, s string) ([]byte, []byte) {
	start := len(buf)
	buf = append(buf, s...)
	return buf, buf[start:len(buf):len(buf)]
}

// messageSize is the size kafka-go's Writer compares with its BatchBytes
// (Message.totalSize, unexported there): checking it here lets one
// oversized event fail alone, where the Writer would refuse the whole call.
func messageSize(m *kafkago.Message) int64 {
	n := 4 + 1 + 1 + 4 + int64(len(m.Key)) + 4 + int64(len(m.Value)) + 8
	n += int64(varIntLen(len(m.Headers)))
	for i := range m.Headers {
		h := &m.Headers[i]
		n += int64(varIntLen(len(h.Key)) + len(h.Key) + varIntLen(len(h.Value)) + len(h.Value))
	}
	return n
}

// varIntLen is the length of n as a zig-zag varint.
func varIntLen(n int) int {
	u := uint64(n) << 1
	l := 1
	for u >= 0x80 {
		u >>= 7
		l++
	}
	return l
}
