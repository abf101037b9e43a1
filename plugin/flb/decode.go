package flb

import (
	"encoding/binary"
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
		rest, serr := skip(d.b)
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
			if b, err = skip(b); err != nil {
				return nil, err
			}
		}
	} else if r.Time, b, err = transformers.MsgpackTime(b); err != nil {
		return nil, err
	}
	rest, err := skip(b)
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
		rest, err := skip(b)
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

// skip returns b after its first msgpack value. It is msgp.Skip without
// the recursion: a count of the values still to skip stands in for the
// stack, as a container only adds its elements to it. Every value takes
// at least one byte, so a forged element count runs out of input, not
// time. Skipping each record's body was a tenth of the flush path.
func skip(b []byte) ([]byte, error) {
	for n := 1; n > 0; n-- {
		if len(b) == 0 {
			return b, msgp.ErrShortBytes
		}
		c := b[0]
		size, add := 1, 0 // bytes of this value without its elements; elements
		switch {
		case c <= 0x7f || c >= 0xe0: // fixint
		case c <= 0x8f: // fixmap
			add = 2 * int(c&0x0f)
		case c <= 0x9f: // fixarray
			add = int(c & 0x0f)
		case c <= 0xbf: // fixstr
			size += int(c & 0x1f)
		default:
			var l, lenBytes int // a length that follows the type byte
			switch c {
			case 0xc0, 0xc2, 0xc3: // nil, false, true
			case 0xcc, 0xd0:
				size = 2
			case 0xcd, 0xd1:
				size = 3
			case 0xca, 0xce, 0xd2:
				size = 5
			case 0xcb, 0xcf, 0xd3:
				size = 9
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16
				size = 2 + 1<<(c-0xd4)
			case 0xc4, 0xd9: // bin 8, str 8
				lenBytes = 1
			case 0xc5, 0xda:
				lenBytes = 2
			case 0xc6, 0xdb:
				lenBytes = 4
			case 0xc7, 0xc8, 0xc9: // ext 8, 16, 32: the length, then a type byte
				lenBytes = 1 << (c - 0xc7)
				size = 2
			case 0xdc, 0xdd, 0xde, 0xdf: // array 16, 32, map 16, 32
				lenBytes = 2 << ((c - 0xdc) & 1)
			default: // 0xc1, never used
				return b, msgp.InvalidPrefixError(c)
			}
			if lenBytes > 0 {
				if len(b) < 1+lenBytes {
					return b, msgp.ErrShortBytes
				}
				switch lenBytes {
				case 1:
					l = int(b[1])
				case 2:
					l = int(binary.BigEndian.Uint16(b[1:]))
				default:
					l = int(binary.BigEndian.Uint32(b[1:]))
				}
				size += lenBytes
				switch {
				case c >= 0xde:
					add = 2 * l
				case c >= 0xdc:
					add = l
				default:
					size += l
				}
			}
		}
		if len(b) < size {
			return b, msgp.ErrShortBytes
		}
		b = b[size:]
		n += add
	}
	return b, nil
}
