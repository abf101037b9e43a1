package msgpack

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/auditpipe/auditpipe/transformers/internal/jsonscan"
	"github.com/auditpipe/auditpipe/transformers/internal/jsontree"
	"github.com/tinylib/msgp/msgp"
)

// Decode decodes the msgpack value b into t and returns its root. Numbers
// are spelt into buf, which it returns grown: the tree points into it, so
// it must live as long as the tree (a grown copy replaces it, and the old
// array stays alive while referenced). A failure's steps lead to where
// decoding stopped.
func Decode(b []byte, lim jsonscan.Limits, t *jsontree.Tree, buf []byte) (*jsontree.Value, []byte, *jsonscan.Failure) {
	m := decoder{t: t, lim: lim, buf: buf}
	root, rest, err := m.value(b, 1)
	if err == nil && len(rest) > 0 {
		err = &jsonscan.Failure{Fault: jsonscan.Syntax, Expected: "one msgpack value", Got: fmt.Sprintf("%d trailing bytes", len(rest))}
	}
	return root, m.buf, err
}

func mpErr(kind jsonscan.Fault, expected, got string) *jsonscan.Failure {
	return &jsonscan.Failure{Fault: kind, Expected: expected, Got: got}
}

type decoder struct {
	t   *jsontree.Tree
	lim jsonscan.Limits
	// buf holds the spellings of numbers; the tree's numbers point into
	// it.
	buf []byte
}

// str views b as a string: the tree's strings point into the record
// itself, which outlives the document (Input.Msgpack).
func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// keep copies b into buf, as a string that lives as long as the document.
func (m *decoder) keep(b []byte) string {
	if cap(m.buf)-len(m.buf) < len(b) {
		// Never grow in place: strings already made point into the
		// current array.
		m.buf = make([]byte, 0, max(2*cap(m.buf), 1024))
	}
	start := len(m.buf)
	m.buf = append(m.buf, b...)
	return str(m.buf[start:])
}

// number is a number of that spelling.
func (m *decoder) number(spelling []byte) *jsontree.Value {
	return m.t.Number(m.keep(spelling))
}

// value decodes the value at the start of b and returns it and what
// follows it. The common lead bytes (fixmap, fixarray, fixstr, str8,
// positive fixint, nil, booleans) are read here; msgp reads the rest.
func (m *decoder) value(b []byte, depth int) (*jsontree.Value, []byte, *jsonscan.Failure) {
	if depth > m.lim.MaxDepth {
		return nil, b, mpErr(jsonscan.TooDeep, fmt.Sprintf("at most %d levels of nesting", m.lim.MaxDepth), "")
	}
	if len(b) == 0 {
		return nil, b, mpSyntax(msgp.ErrShortBytes)
	}
	switch c := b[0]; {
	case c <= 0x7f: // positive fixint
		var tmp [4]byte
		return m.number(strconv.AppendUint(tmp[:0], uint64(c), 10)), b[1:], nil
	case c >= 0xa0 && c <= 0xbf: // fixstr
		return m.str(b, 1, int(c&0x1f))
	case c == 0xd9: // str8
		if len(b) < 2 {
			return nil, b, mpSyntax(msgp.ErrShortBytes)
		}
		return m.str(b, 2, int(b[1]))
	case c == 0xc0:
		return m.t.Literal(jsontree.Null), b[1:], nil
	case c == 0xc2:
		return m.t.Literal(jsontree.False), b[1:], nil
	case c == 0xc3:
		return m.t.Literal(jsontree.True), b[1:], nil
	}
	switch t := msgp.NextType(b); t {
	case msgp.MapType:
		return m.object(b, depth)
	case msgp.ArrayType:
		return m.array(b, depth)
	case msgp.StrType, msgp.BinType:
		var s, o []byte
		var err error
		if t == msgp.StrType {
			s, o, err = msgp.ReadStringZC(b)
		} else {
			s, o, err = msgp.ReadBytesZC(b)
		}
		if err != nil {
			return nil, b, mpSyntax(err)
		}
		return m.str(b, len(b)-len(o)-len(s), len(s))
	case msgp.IntType:
		i, o, err := msgp.ReadInt64Bytes(b)
		if err != nil {
			return nil, b, mpSyntax(err)
		}
		var tmp [24]byte
		return m.number(strconv.AppendInt(tmp[:0], i, 10)), o, nil
	case msgp.UintType:
		u, o, err := msgp.ReadUint64Bytes(b)
		if err != nil {
			return nil, b, mpSyntax(err)
		}
		var tmp [24]byte
		return m.number(strconv.AppendUint(tmp[:0], u, 10)), o, nil
	case msgp.Float32Type, msgp.Float64Type:
		var f float64
		var o []byte
		var err error
		if t == msgp.Float32Type {
			var f32 float32
			f32, o, err = msgp.ReadFloat32Bytes(b)
			f = float64(f32)
		} else {
			f, o, err = msgp.ReadFloat64Bytes(b)
		}
		if err != nil {
			return nil, b, mpSyntax(err)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, b, mpErr(jsonscan.Value, "a finite number", "number")
		}
		var tmp [32]byte
		return m.number(jsontree.AppendES6Number(tmp[:0], f)), o, nil
	case msgp.ExtensionType:
		// Fluent Bit's EventTime (type 0) is the one extension records
		// hold; it reads as the RFC 3339 time it stands for.
		ts, o, err := Time(b)
		if err != nil {
			return nil, b, mpErr(jsonscan.Type, "a JSON-compatible value", err.Error())
		}
		var tmp [40]byte
		return m.t.String(m.keep(ts.AppendFormat(tmp[:0], time.RFC3339Nano))), o, nil
	default:
		return nil, b, mpErr(jsonscan.Type, "a JSON-compatible value", "msgpack "+t.String())
	}
}

// array decodes the array at the start of b.
func (m *decoder) array(b []byte, depth int) (*jsontree.Value, []byte, *jsonscan.Failure) {
	n, o, err := msgp.ReadArrayHeaderBytes(b)
	if err != nil {
		return nil, b, mpSyntax(err)
	}
	if int(n) > len(o) {
		return nil, b, mpSyntax(msgp.ErrShortBytes)
	}
	if int(n) > m.lim.MaxMembers {
		return nil, b, mpErr(jsonscan.TooManyMembers, jsonscan.MembersExpected(m.lim.MaxMembers, false), "")
	}
	arr := m.t.Array(int(n))
	for i := range int(n) {
		var v *jsontree.Value
		var e *jsonscan.Failure
		if v, o, e = m.value(o, depth+1); e != nil {
			return nil, b, e.At(jsonscan.Step{Idx: i})
		}
		m.t.SetElement(arr, i, v)
	}
	return arr, o, nil
}

// str is the string of n bytes after a header of h bytes.
func (m *decoder) str(b []byte, h, n int) (*jsontree.Value, []byte, *jsonscan.Failure) {
	if len(b) < h+n {
		return nil, b, mpSyntax(msgp.ErrShortBytes)
	}
	s := b[h : h+n]
	if n > m.lim.MaxStringLength {
		return nil, b, mpErr(jsonscan.StringTooLong, fmt.Sprintf("at most %d bytes", m.lim.MaxStringLength), fmt.Sprintf("%d bytes", n))
	}
	if !validUTF8(s) {
		return nil, b, mpErr(jsonscan.InvalidUTF8, "UTF-8 string", "string")
	}
	return m.t.String(str(s)), b[h+n:], nil
}

// object decodes the map at the start of b.
func (m *decoder) object(b []byte, depth int) (*jsontree.Value, []byte, *jsonscan.Failure) {
	n, o, err := msgp.ReadMapHeaderBytes(b)
	if err != nil {
		return nil, b, mpSyntax(err)
	}
	if int(n) > len(o)/2 {
		return nil, b, mpSyntax(msgp.ErrShortBytes)
	}
	if int(n) > m.lim.MaxMembers {
		return nil, b, mpErr(jsonscan.TooManyMembers, jsonscan.MembersExpected(m.lim.MaxMembers, true), "")
	}
	obj := m.t.Object(int(n))
	var nameBuf [32][]byte
	names := jsonscan.NewNameSet(nameBuf[:])
	for i := range int(n) {
		var kb []byte
		if len(o) > 0 && o[0] >= 0xa0 && o[0] <= 0xbf && len(o) > int(o[0]&0x1f) { // fixstr
			c := o[0]
			kb, o = o[1:1+int(c&0x1f)], o[1+int(c&0x1f):]
		} else {
			switch msgp.NextType(o) {
			case msgp.StrType:
				kb, o, err = msgp.ReadStringZC(o)
			case msgp.BinType:
				kb, o, err = msgp.ReadBytesZC(o)
			default:
				return nil, b, mpErr(jsonscan.Type, "string member names", "a msgpack "+msgp.NextType(o).String()+" member name")
			}
			if err != nil {
				return nil, b, mpSyntax(err)
			}
		}
		switch {
		case len(kb) > m.lim.MaxStringLength:
			return nil, b, mpErr(jsonscan.StringTooLong, fmt.Sprintf("member names of at most %d bytes", m.lim.MaxStringLength), "").At(keyStep(kb))
		case !validUTF8(kb):
			return nil, b, mpErr(jsonscan.InvalidUTF8, "UTF-8 member name", "").At(keyStep(kb))
		}
		if names.Add(kb) {
			return nil, b, mpErr(jsonscan.Value, "unique member names", "a duplicate name").At(keyStep(kb))
		}
		var v *jsontree.Value
		var e *jsonscan.Failure
		if v, o, e = m.value(o, depth+1); e != nil {
			return nil, b, e.At(keyStep(kb))
		}
		m.t.SetMember(obj, i, str(kb), v)
	}
	return obj, o, nil
}

// keyStep is the path step of a member name, cut to a length a message
// can show; built only for an error.
func keyStep(k []byte) jsonscan.Step {
	return jsonscan.Step{Key: strings.ToValidUTF8(string(k[:min(len(k), 256)]), "\uFFFD"), Idx: -1}
}

// validUTF8 is utf8.Valid with a quicker answer for the ASCII strings
// records are made of: eight bytes at a time, and utf8.Valid from the
// first word that is not all ASCII (a character boundary, as everything
// before it is ASCII).
func validUTF8(b []byte) bool {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:])&0x8080808080808080 != 0 {
			return utf8.Valid(b[i:])
		}
	}
	for ; i < len(b); i++ {
		if b[i] >= utf8.RuneSelf {
			return utf8.Valid(b[i:])
		}
	}
	return true
}

func mpSyntax(err error) *jsonscan.Failure {
	return mpErr(jsonscan.Syntax, "a msgpack value", err.Error())
}

// Time reads Fluent Bit's timestamps: EventTime (extension type 0:
// big-endian uint32 seconds, uint32 nanoseconds), integer seconds or float
// seconds.
func Time(b []byte) (time.Time, []byte, error) {
	switch msgp.NextType(b) {
	case msgp.ExtensionType:
		if len(b) >= 10 && b[0] == 0xd7 && b[1] == 0 { // fixext 8, type 0: every EventTime
			s, ns := binary.BigEndian.Uint32(b[2:]), binary.BigEndian.Uint32(b[6:])
			return time.Unix(int64(s), int64(ns)).UTC(), b[10:], nil
		}
		if t := extType(b); t != 0 {
			return time.Time{}, b, fmt.Errorf("msgpack extension type %d is not EventTime (0)", t)
		}
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
		if err == nil && s > math.MaxInt64 {
			return time.Time{}, b, fmt.Errorf("timestamp: %d is out of range", s)
		}
		return time.Unix(int64(s), 0).UTC(), o, err
	case msgp.Float64Type, msgp.Float32Type:
		f, o, err := msgp.ReadFloat64Bytes(b)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1<<62/1e9 {
			return time.Time{}, b, fmt.Errorf("timestamp: not a finite number of seconds")
		}
		sec := math.Floor(f)
		// A float64 holds about a microsecond of precision at today's
		// epoch seconds: more digits would be noise.
		return time.Unix(int64(sec), int64(math.Round((f-sec)*1e6))*1e3).UTC(), o, nil
	}
	return time.Time{}, b, fmt.Errorf("timestamp: EventTime, integer or float, got %s", msgp.NextType(b))
}

// extType is the type byte of the extension b starts with, or -1.
func extType(b []byte) int8 {
	if len(b) < 2 {
		return -1
	}
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
