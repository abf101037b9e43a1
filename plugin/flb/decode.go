package flb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// maxDepth bounds nesting in a record, so a hostile chunk cannot exhaust
// the stack; the transformers' own limit (64 by default) is lower.
const maxDepth = 100

// Record is one Fluent Bit log record.
type Record struct {
	// Time is the record's timestamp (EventTime, integer or float seconds).
	Time time.Time
	// Meta is the v2 record metadata ([[timestamp, metadata], map]); nil
	// for classic [timestamp, map] records.
	Meta map[string]any
	// Body is the record: map[string]any for a well-formed record. Strings
	// are string, binaries []byte, EventTime values time.Time.
	Body any
	// Raw is the record's msgpack encoding, a sub-slice of the chunk.
	Raw []byte
}

// Decoder reads the records of a chunk, without copying it to JSON.
type Decoder struct {
	b []byte
}

// NewDecoder returns a Decoder over chunk.
func NewDecoder(chunk []byte) *Decoder { return &Decoder{b: chunk} }

// Rest is the chunk not yet read; after a corrupt-chunk error, the bytes
// from the unreadable record on.
func (d *Decoder) Rest() []byte { return d.b }

// ErrCorrupt marks a chunk whose records cannot be delimited any more.
var ErrCorrupt = errors.New("corrupt msgpack chunk")

// Next decodes the next record into r. It returns false at the end of the
// chunk. An error wrapping ErrCorrupt means the rest of the chunk cannot
// be read (r.Raw is nil); any other error is about this record only (r.Raw
// holds it) and the next call reads the record after it.
func (d *Decoder) Next(r *Record) (bool, error) {
	*r = Record{}
	if len(d.b) == 0 {
		return false, nil
	}
	rest, err := msgp.Skip(d.b)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	r.Raw, d.b = d.b[:len(d.b)-len(rest)], rest
	return true, r.decode()
}

func (r *Record) decode() error {
	n, b, err := msgp.ReadArrayHeaderBytes(r.Raw)
	if err != nil || n != 2 {
		return fmt.Errorf("a record must be [timestamp, map] or [[timestamp, metadata], map], got %s", msgp.NextType(r.Raw))
	}
	if msgp.NextType(b) == msgp.ArrayType {
		var hn uint32
		hn, b, err = msgp.ReadArrayHeaderBytes(b)
		if err != nil || hn == 0 {
			return errors.New("a v2 record header must be [timestamp, metadata]")
		}
		if r.Time, b, err = readTime(b); err != nil {
			return err
		}
		var meta any
		if meta, b, err = readValue(b, 0); err != nil {
			return fmt.Errorf("metadata: %w", err)
		}
		switch m := meta.(type) {
		case map[string]any:
			r.Meta = m
		case nil:
		default:
			return fmt.Errorf("metadata: a map, got %T", meta)
		}
		for i := uint32(2); i < hn; i++ {
			if b, err = msgp.Skip(b); err != nil {
				return err
			}
		}
	} else if r.Time, b, err = readTime(b); err != nil {
		return err
	}
	r.Body, _, err = readValue(b, 0)
	return err
}

// readTime reads EventTime (ext 0: big-endian uint32 seconds, uint32
// nanoseconds), integer seconds or float seconds.
func readTime(b []byte) (time.Time, []byte, error) {
	switch msgp.NextType(b) {
	case msgp.ExtensionType:
		ext := msgp.RawExtension{Type: 0}
		o, err := msgp.ReadExtensionBytes(b, &ext)
		if err != nil {
			return time.Time{}, b, fmt.Errorf("timestamp: %w", err)
		}
		if len(ext.Data) != 8 {
			return time.Time{}, b, fmt.Errorf("timestamp: EventTime of %d bytes, want 8", len(ext.Data))
		}
		s, ns := binary.BigEndian.Uint32(ext.Data), binary.BigEndian.Uint32(ext.Data[4:])
		return time.Unix(int64(s), int64(ns)).UTC(), o, nil
	case msgp.IntType:
		s, o, err := msgp.ReadInt64Bytes(b)
		return time.Unix(s, 0).UTC(), o, err
	case msgp.UintType:
		s, o, err := msgp.ReadUint64Bytes(b)
		if s > math.MaxInt64 {
			return time.Time{}, b, errors.New("timestamp: out of range")
		}
		return time.Unix(int64(s), 0).UTC(), o, err
	case msgp.Float64Type, msgp.Float32Type:
		f, o, err := msgp.ReadFloat64Bytes(b)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1<<62/1e9 {
			return time.Time{}, b, errors.New("timestamp: not a finite number of seconds")
		}
		sec := math.Floor(f)
		// A float64 holds about a microsecond of precision at today's
		// epoch seconds: more digits would be noise.
		return time.Unix(int64(sec), int64(math.Round((f-sec)*1e6))*1e3).UTC(), o, nil
	}
	return time.Time{}, b, fmt.Errorf("timestamp: EventTime, integer or float, got %s", msgp.NextType(b))
}

// readValue decodes one msgpack value into the shapes transformers.Input
// Value accepts.
func readValue(b []byte, depth int) (any, []byte, error) {
	if depth > maxDepth {
		return nil, b, fmt.Errorf("nested deeper than %d", maxDepth)
	}
	switch msgp.NextType(b) {
	case msgp.MapType:
		n, o, err := msgp.ReadMapHeaderBytes(b)
		if err != nil {
			return nil, b, err
		}
		m := make(map[string]any, min(n, 64))
		for range n {
			var k string
			switch msgp.NextType(o) {
			case msgp.StrType:
				k, o, err = msgp.ReadStringBytes(o)
			case msgp.BinType:
				var kb []byte
				kb, o, err = msgp.ReadBytesZC(o)
				k = string(kb)
			default:
				return nil, b, fmt.Errorf("map keys must be strings, got %s", msgp.NextType(o))
			}
			if err != nil {
				return nil, b, err
			}
			var v any
			if v, o, err = readValue(o, depth+1); err != nil {
				return nil, b, err
			}
			m[k] = v
		}
		return m, o, nil
	case msgp.ArrayType:
		n, o, err := msgp.ReadArrayHeaderBytes(b)
		if err != nil {
			return nil, b, err
		}
		a := make([]any, 0, min(n, 64))
		for range n {
			var v any
			if v, o, err = readValue(o, depth+1); err != nil {
				return nil, b, err
			}
			a = append(a, v)
		}
		return a, o, nil
	case msgp.StrType:
		return wrapRead(msgp.ReadStringBytes(b))
	case msgp.BinType:
		return wrapRead(msgp.ReadBytesBytes(b, nil))
	case msgp.IntType:
		return wrapRead(msgp.ReadInt64Bytes(b))
	case msgp.UintType:
		return wrapRead(msgp.ReadUint64Bytes(b))
	case msgp.Float32Type:
		f, o, err := msgp.ReadFloat32Bytes(b)
		return float64(f), o, err
	case msgp.Float64Type:
		return wrapRead(msgp.ReadFloat64Bytes(b))
	case msgp.BoolType:
		return wrapRead(msgp.ReadBoolBytes(b))
	case msgp.NilType:
		o, err := msgp.ReadNilBytes(b)
		return nil, o, err
	case msgp.ExtensionType:
		if len(b) > 1 && extType(b) == 0 {
			t, o, err := readTime(b)
			return t, o, err
		}
	}
	return nil, b, fmt.Errorf("unsupported msgpack value %s", msgp.NextType(b))
}

func wrapRead[T any](v T, o []byte, err error) (any, []byte, error) { return v, o, err }

// extType returns the type byte of the extension b starts with.
func extType(b []byte) int8 {
	switch b[0] {
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1..16
		return int8(b[1])
	case 0xc7: // ext 8
		if len(b) > 2 {
			return int8(b[2])
		}
	case 0xc8: // ext 16
		if len(b) > 3 {
			return int8(b[3])
		}
	case 0xc9: // ext 32
		if len(b) > 5 {
			return int8(b[5])
		}
	}
	return -1
}
