package transformers

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/tinylib/msgp/msgp"
	"github.com/valyala/fastjson"
)

// decodeMsgpack builds a document from one msgpack value (a Fluent Bit
// record) straight into the tree: no Go maps, JSON text or copies in
// between, which is most of what a record used to cost. The tree's strings
// point into b, which the caller never changes (Input.Msgpack), so events
// may keep them (Document.Strings). The limits apply as they do to JSON; a duplicate
// member name is an error, because a map that says two things about one
// name cannot be read one way by every reader.
func decodeMsgpack(b []byte, lim Limits, format string) (*Document, error) {
	whole := func(kind error) *Error { return &Error{Format: format, Item: -1, Path: "$", Kind: kind} }
	if len(b) > lim.MaxPayloadBytes {
		e := whole(ErrTooLarge)
		e.Expected, e.Got = fmt.Sprintf("at most %d bytes", lim.MaxPayloadBytes), fmt.Sprintf("%d bytes", len(b))
		return nil, e
	}
	d := newDocument()
	d.tree = treePool.Get().(*tree)
	d.scratch = bufPool.Get().(*[]byte)
	m := mpDecoder{t: d.tree, lim: lim, buf: (*d.scratch)[:0]}
	root := &d.tree.vals.take(1)[0]
	rest, err := m.value(root, b, 1)
	// The scratch buffer is the document's while the tree points into it;
	// a grown copy replaces it (the old array stays alive while referenced).
	*d.scratch = m.buf
	if err == nil && len(rest) > 0 {
		err = &mpError{e: &Error{Kind: ErrSyntax, Expected: "one msgpack value", Got: fmt.Sprintf("%d trailing bytes", len(rest))}}
	}
	if err != nil {
		d.Close()
		return nil, err.locate(NewNode(format, nil))
	}
	d.kept = b
	d.Roots = append(d.Roots, Root{Node: NewNode(format, (*fastjson.Value)(unsafe.Pointer(root)))})
	return d, nil
}

// mpError is a decoding error and the path steps to it, collected while
// the recursion unwinds so that the happy path builds no path at all.
type mpError struct {
	e    *Error
	segs []pathSeg
}

func (m *mpError) at(seg pathSeg) *mpError { m.segs = append(m.segs, seg); return m }

func (m *mpError) locate(root Node) *Error {
	m.e.Format, m.e.Item, m.e.Path = root.format, int(root.item), appendStepsReversed(root.Path(), m.segs)
	return m.e
}

func mpErr(kind error, expected, got string) *mpError {
	return &mpError{e: &Error{Kind: kind, Expected: expected, Got: got}}
}

type mpDecoder struct {
	t   *tree
	lim Limits
	// buf holds the spellings of numbers; the tree's numbers point into
	// it.
	buf []byte
}

// str views b as a string: the tree's strings point into the record
// itself, which outlives the document (Input.Msgpack).
func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// keep copies b into buf, as a string that lives as long as the document.
func (m *mpDecoder) keep(b []byte) string {
	if cap(m.buf)-len(m.buf) < len(b) {
		// Never grow in place: strings already made point into the
		// current array.
		m.buf = make([]byte, 0, max(2*cap(m.buf), 1024))
	}
	start := len(m.buf)
	m.buf = append(m.buf, b...)
	return str(m.buf[start:])
}

// number sets dst to a number of that spelling.
func (m *mpDecoder) number(dst *treeValue, spelling []byte) {
	*dst = treeValue{t: fastjson.TypeNumber, s: m.keep(spelling)}
}

// value decodes the value at the start of b into dst and returns what
// follows it. The common lead bytes (fixmap, fixarray, fixstr, str8,
// positive fixint, nil, booleans) are read here; msgp reads the rest.
func (m *mpDecoder) value(dst *treeValue, b []byte, depth int) ([]byte, *mpError) {
	if depth > m.lim.MaxDepth {
		return b, mpErr(ErrTooDeep, fmt.Sprintf("at most %d levels of nesting", m.lim.MaxDepth), "")
	}
	if len(b) == 0 {
		return b, mpSyntax(msgp.ErrShortBytes)
	}
	switch c := b[0]; {
	case c <= 0x7f: // positive fixint
		var tmp [4]byte
		m.number(dst, strconv.AppendUint(tmp[:0], uint64(c), 10))
		return b[1:], nil
	case c >= 0xa0 && c <= 0xbf: // fixstr
		return m.str(dst, b, 1, int(c&0x1f))
	case c == 0xd9: // str8
		if len(b) < 2 {
			return b, mpSyntax(msgp.ErrShortBytes)
		}
		return m.str(dst, b, 2, int(b[1]))
	case c == 0xc0:
		*dst = treeValue{t: fastjson.TypeNull}
		return b[1:], nil
	case c == 0xc2:
		*dst = treeValue{t: fastjson.TypeFalse}
		return b[1:], nil
	case c == 0xc3:
		*dst = treeValue{t: fastjson.TypeTrue}
		return b[1:], nil
	}
	switch t := msgp.NextType(b); t {
	case msgp.MapType:
		return m.object(dst, b, depth)
	case msgp.ArrayType:
		n, o, err := msgp.ReadArrayHeaderBytes(b)
		if err != nil {
			return b, mpSyntax(err)
		}
		if int(n) > len(o) {
			return b, mpSyntax(msgp.ErrShortBytes)
		}
		if int(n) > m.lim.MaxMembers {
			return b, mpErr(ErrTooManyMembers, tooManyMembers(m.lim.MaxMembers, false), "")
		}
		items := m.t.vals.take(int(n))
		ptrs := m.t.ptrs.take(int(n))
		*dst = treeValue{t: fastjson.TypeArray, a: ptrs}
		for i := range items {
			var e *mpError
			if o, e = m.value(&items[i], o, depth+1); e != nil {
				return b, e.at(pathSeg{idx: i})
			}
			ptrs[i] = (*fastjson.Value)(unsafe.Pointer(&items[i]))
		}
		return o, nil
	case msgp.StrType, msgp.BinType:
		var s, o []byte
		var err error
		if t == msgp.StrType {
			s, o, err = msgp.ReadStringZC(b)
		} else {
			s, o, err = msgp.ReadBytesZC(b)
		}
		if err != nil {
			return b, mpSyntax(err)
		}
		return m.str(dst, b, len(b)-len(o)-len(s), len(s))
	case msgp.IntType:
		i, o, err := msgp.ReadInt64Bytes(b)
		if err != nil {
			return b, mpSyntax(err)
		}
		var tmp [24]byte
		m.number(dst, strconv.AppendInt(tmp[:0], i, 10))
		return o, nil
	case msgp.UintType:
		u, o, err := msgp.ReadUint64Bytes(b)
		if err != nil {
			return b, mpSyntax(err)
		}
		var tmp [24]byte
		m.number(dst, strconv.AppendUint(tmp[:0], u, 10))
		return o, nil
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
			return b, mpSyntax(err)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return b, mpErr(ErrValue, "a finite number", "number")
		}
		var tmp [32]byte
		m.number(dst, AppendES6Number(tmp[:0], f))
		return o, nil
	case msgp.ExtensionType:
		// Fluent Bit's EventTime (type 0) is the one extension records
		// hold; it reads as the RFC 3339 time it stands for.
		ts, o, err := MsgpackTime(b)
		if err != nil {
			return b, mpErr(ErrType, "a JSON-compatible value", err.Error())
		}
		var tmp [40]byte
		*dst = treeValue{t: fastjson.TypeString, s: m.keep(ts.AppendFormat(tmp[:0], time.RFC3339Nano))}
		return o, nil
	default:
		return b, mpErr(ErrType, "a JSON-compatible value", "msgpack "+t.String())
	}
}

// str sets dst to the string of n bytes after a header of h bytes.
func (m *mpDecoder) str(dst *treeValue, b []byte, h, n int) ([]byte, *mpError) {
	if len(b) < h+n {
		return b, mpSyntax(msgp.ErrShortBytes)
	}
	s := b[h : h+n]
	if n > m.lim.MaxStringLength {
		return b, mpErr(ErrStringTooLong, fmt.Sprintf("at most %d bytes", m.lim.MaxStringLength), fmt.Sprintf("%d bytes", n))
	}
	if !validUTF8(s) {
		return b, mpErr(ErrInvalidUTF8, "UTF-8 string", "string")
	}
	*dst = treeValue{t: fastjson.TypeString, s: str(s)}
	return b[h+n:], nil
}

func (m *mpDecoder) object(dst *treeValue, b []byte, depth int) ([]byte, *mpError) {
	n, o, err := msgp.ReadMapHeaderBytes(b)
	if err != nil {
		return b, mpSyntax(err)
	}
	if int(n) > len(o)/2 {
		return b, mpSyntax(msgp.ErrShortBytes)
	}
	if int(n) > m.lim.MaxMembers {
		return b, mpErr(ErrTooManyMembers, tooManyMembers(m.lim.MaxMembers, true), "")
	}
	kvs := m.t.kvs.take(int(n))
	vals := m.t.vals.take(int(n))
	*dst = treeValue{t: fastjson.TypeObject, o: treeObject{kvs: kvs, keysUnescaped: true}}
	var nameBuf [32][]byte
	names := nameSet{names: nameBuf[:0]}
	for i := range kvs {
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
				return b, mpErr(ErrType, "string member names", "a msgpack "+msgp.NextType(o).String()+" member name")
			}
			if err != nil {
				return b, mpSyntax(err)
			}
		}
		switch {
		case len(kb) > m.lim.MaxStringLength:
			return b, mpErr(ErrStringTooLong, fmt.Sprintf("member names of at most %d bytes", m.lim.MaxStringLength), "").at(keySeg(kb))
		case !validUTF8(kb):
			return b, mpErr(ErrInvalidUTF8, "UTF-8 member name", "").at(keySeg(kb))
		}
		if names.add(kb) {
			return b, mpErr(ErrValue, "unique member names", "a duplicate name").at(keySeg(kb))
		}
		var e *mpError
		if o, e = m.value(&vals[i], o, depth+1); e != nil {
			return b, e.at(keySeg(kb))
		}
		kvs[i] = treeKV{k: str(kb), v: (*fastjson.Value)(unsafe.Pointer(&vals[i]))}
	}
	return o, nil
}

// keySeg is the path step of a member name, cut to a length a message can
// show; built only for an error.
func keySeg(k []byte) pathSeg {
	return pathSeg{key: strings.ToValidUTF8(string(k[:min(len(k), 256)]), "\uFFFD"), idx: -1}
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

func mpSyntax(err error) *mpError {
	return mpErr(ErrSyntax, "a msgpack value", err.Error())
}

// MsgpackTime reads Fluent Bit's timestamps: EventTime (extension type 0:
// big-endian uint32 seconds, uint32 nanoseconds), integer seconds or float
// seconds.
func MsgpackTime(b []byte) (time.Time, []byte, error) {
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
