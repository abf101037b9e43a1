package fluentbithost

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// Shape is the layout of one record in a chunk.
type Shape int

const (
	// Classic is [timestamp, map], what Fluent Bit before 2.1 sends.
	Classic Shape = iota
	// V2 is [[timestamp, metadata], map], Fluent Bit 2.1 and later.
	V2
)

func (s Shape) String() string {
	if s == V2 {
		return "v2"
	}
	return "classic"
}

// TimeEncoding is how a record's timestamp is written.
type TimeEncoding int

const (
	// EventTime is msgpack ext type 0 with 8 bytes: big-endian uint32
	// seconds and uint32 nanoseconds, what Fluent Bit writes.
	EventTime TimeEncoding = iota
	// IntTime is a plain unsigned integer of seconds, the legacy form
	// (msgpack-c's pack_uint64, as flb_time_append_to_msgpack writes it).
	IntTime
)

func (e TimeEncoding) String() string {
	if e == IntTime {
		return "int"
	}
	return "eventtime"
}

// Record is one record of a chunk. Body and Meta are msgpack-encoded maps
// (see AppendJSON, AppendMap); a nil Meta is an empty map.
type Record struct {
	Time time.Time
	Meta []byte
	Body []byte
}

// AppendTime appends ts in the encoding enc.
func AppendTime(dst []byte, ts time.Time, enc TimeEncoding) []byte {
	if enc == IntTime {
		return msgp.AppendUint64(dst, uint64(max(ts.Unix(), 0)))
	}
	// fixext 8, type 0
	dst = append(dst, 0xd7, 0x00)
	dst = binary.BigEndian.AppendUint32(dst, uint32(ts.Unix()))
	return binary.BigEndian.AppendUint32(dst, uint32(ts.Nanosecond()))
}

// AppendRecord appends one record in shape with its timestamp in enc.
func AppendRecord(dst []byte, r Record, shape Shape, enc TimeEncoding) []byte {
	dst = msgp.AppendArrayHeader(dst, 2)
	if shape == V2 {
		dst = msgp.AppendArrayHeader(dst, 2)
		dst = AppendTime(dst, r.Time, enc)
		if r.Meta == nil {
			dst = msgp.AppendMapHeader(dst, 0)
		} else {
			dst = append(dst, r.Meta...)
		}
	} else {
		dst = AppendTime(dst, r.Time, enc)
	}
	return append(dst, r.Body...)
}

// Chunk concatenates records as Fluent Bit does in one flush.
func Chunk(shape Shape, enc TimeEncoding, records ...Record) []byte {
	var dst []byte
	for _, r := range records {
		dst = AppendRecord(dst, r, shape, enc)
	}
	return dst
}

// AppendJSON converts a JSON document into msgpack as Fluent Bit's JSON
// parsers do: objects become maps with string keys, strings msgpack str,
// integers int, other numbers float64.
func AppendJSON(dst, doc []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return dst, fmt.Errorf("fluentbithost: JSON: %w", err)
	}
	return AppendValue(dst, v)
}

// AppendValue appends v, made of what encoding/json decodes into (with
// UseNumber) plus []byte (msgpack bin) and int types.
func AppendValue(dst []byte, v any) ([]byte, error) {
	var err error
	switch v := v.(type) {
	case nil:
		return msgp.AppendNil(dst), nil
	case bool:
		return msgp.AppendBool(dst, v), nil
	case string:
		return msgp.AppendString(dst, v), nil
	case []byte:
		return msgp.AppendBytes(dst, v), nil
	case int:
		return msgp.AppendInt(dst, v), nil
	case int64:
		return msgp.AppendInt64(dst, v), nil
	case float64:
		return msgp.AppendFloat64(dst, v), nil
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return msgp.AppendInt64(dst, i), nil
		}
		f, err := v.Float64()
		if err != nil {
			return dst, fmt.Errorf("fluentbithost: number %q: %w", v, err)
		}
		return msgp.AppendFloat64(dst, f), nil
	case []any:
		dst = msgp.AppendArrayHeader(dst, uint32(len(v)))
		for _, e := range v {
			if dst, err = AppendValue(dst, e); err != nil {
				return dst, err
			}
		}
		return dst, nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = msgp.AppendMapHeader(dst, uint32(len(v)))
		for _, k := range keys {
			dst = msgp.AppendString(dst, k)
			if dst, err = AppendValue(dst, v[k]); err != nil {
				return dst, err
			}
		}
		return dst, nil
	default:
		return dst, fmt.Errorf("fluentbithost: cannot encode %T", v)
	}
}

// MustJSON is AppendJSON into a new slice, panicking on a malformed
// document: for test fixtures only.
func MustJSON(doc []byte) []byte {
	b, err := AppendJSON(nil, doc)
	if err != nil {
		panic(err)
	}
	return b
}

// LogRecord is the map {key: line} that Fluent Bit's tail input makes of a
// line without a parser: the payload is a JSON string under key.
func LogRecord(key string, line []byte) []byte {
	dst := msgp.AppendMapHeader(nil, 1)
	dst = msgp.AppendString(dst, key)
	return msgp.AppendStringFromBytes(dst, bytes.TrimRight(line, "\r\n"))
}
