package flb

import (
	"errors"
	"fmt"
	"time"

	"github.com/auditpipe/auditpipe/transformers"
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
	// for classic [timestamp, map] records and empty metadata. Strings are
	// string, binaries []byte, EventTime values time.Time.
	Meta map[string]any
	// Body is the record's msgpack encoding, left for the transformer to
	// decode straight into its document: a sub-slice of the chunk.
	Body []byte
	// Raw is the whole record's msgpack encoding, a sub-slice of the chunk.
	Raw []byte
}

// Value decodes Body into Go values (maps, slices, strings...), for the
// places that show a record rather than transform it: dead letters.
func (r *Record) Value() (any, error) {
	v, _, err := readValue(r.Body, 0)
	return v, err
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
	// Well-formed records are read in one pass; only a record that does
	// not decode is delimited separately, to carry on after it.
	rest, err := r.decode(d.b)
	if err != nil {
		*r = Record{}
		rest, serr := msgp.Skip(d.b)
		if serr != nil {
			return false, fmt.Errorf("%w: %v", ErrCorrupt, serr)
		}
		r.Raw, d.b = d.b[:len(d.b)-len(rest)], rest
		return true, err
	}
	r.Raw, d.b = d.b[:len(d.b)-len(rest)], rest
	return true, nil
}

// decode reads the record at the start of chunk and returns what follows
// it.
func (r *Record) decode(chunk []byte) ([]byte, error) {
	n, b, err := msgp.ReadArrayHeaderBytes(chunk)
	if err != nil || n != 2 {
		return nil, fmt.Errorf("a record must be [timestamp, map] or [[timestamp, metadata], map], got %s", msgp.NextType(chunk))
	}
	if msgp.NextType(b) == msgp.ArrayType {
		var hn uint32
		hn, b, err = msgp.ReadArrayHeaderBytes(b)
		if err != nil || hn == 0 {
			return nil, errors.New("a v2 record header must be [timestamp, metadata]")
		}
		if r.Time, b, err = transformers.MsgpackTime(b); err != nil {
			return nil, err
		}
		if hn > 1 {
			if len(b) > 0 && b[0] == 0x80 {
				b = b[1:] // empty metadata, as most records have: no map
			} else {
				var meta any
				if meta, b, err = readValue(b, 0); err != nil {
					return nil, fmt.Errorf("metadata: %w", err)
				}
				switch m := meta.(type) {
				case map[string]any:
					r.Meta = m
				case nil:
				default:
					return nil, fmt.Errorf("metadata: a map, got %T", meta)
				}
			}
		}
		for i := uint32(2); i < hn; i++ {
			if b, err = msgp.Skip(b); err != nil {
				return nil, err
			}
		}
	} else if r.Time, b, err = transformers.MsgpackTime(b); err != nil {
		return nil, err
	}
	rest, err := msgp.Skip(b)
	if err != nil {
		return nil, err
	}
	r.Body = b[:len(b)-len(rest)]
	return rest, nil
}

// member finds a member by name in a msgpack map without decoding the
// others.
func member(m []byte, name string) (val []byte, found bool, err error) {
	n, b, err := msgp.ReadMapHeaderBytes(m)
	if err != nil {
		return nil, false, err
	}
	for range n {
		var k []byte
		switch msgp.NextType(b) {
		case msgp.StrType:
			k, b, err = msgp.ReadStringZC(b)
		case msgp.BinType:
			k, b, err = msgp.ReadBytesZC(b)
		default:
			return nil, false, fmt.Errorf("map keys must be strings, got %s", msgp.NextType(b))
		}
		if err != nil {
			return nil, false, err
		}
		rest, err := msgp.Skip(b)
		if err != nil {
			return nil, false, err
		}
		if string(k) == name {
			return b[:len(b)-len(rest)], true, nil
		}
		b = rest
	}
	return nil, false, nil
}

// kind names a msgpack value's kind in the words of error messages.
func kind(b []byte) string {
	switch msgp.NextType(b) {
	case msgp.NilType:
		return "nil"
	case msgp.StrType, msgp.BinType:
		return "a string"
	case msgp.ArrayType:
		return "an array"
	case msgp.MapType:
		return "a map"
	case msgp.BoolType:
		return "a boolean"
	case msgp.ExtensionType:
		return "a timestamp"
	case msgp.IntType, msgp.UintType, msgp.Float32Type, msgp.Float64Type:
		return "a number"
	}
	return "nothing"
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
		return wrapRead(transformers.MsgpackTime(b))
	}
	return nil, b, fmt.Errorf("unsupported msgpack value %s", msgp.NextType(b))
}

func wrapRead[T any](v T, o []byte, err error) (any, []byte, error) { return v, o, err }
