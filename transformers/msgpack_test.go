package transformers

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"testing"

	"github.com/tinylib/msgp/msgp"
	"github.com/valyala/fastjson"
)

// eventTime is Fluent Bit's EventTime extension.
func eventTime(b []byte, sec, nsec uint32) []byte {
	b = append(b, 0xd7, 0)
	b = binary.BigEndian.AppendUint32(b, sec)
	return binary.BigEndian.AppendUint32(b, nsec)
}

// TestDecodeMsgpackMatchesJSON: a record decoded from msgpack is the
// document the same content makes as JSON text, so every id and every
// details object is the same through either front door.
func TestDecodeMsgpackMatchesJSON(t *testing.T) {
	text := `{"action":"stack.create","b":"bin","n":12,"neg":-3,"f":1.5,"f32":0.25,"ok":true,"no":false,"nil":null,` +
		`"t":"1970-01-01T00:00:01.000000005Z","data":{"ID":"x","list":[1,"é",[],{}]}}`
	b := msgp.AppendMapHeader(nil, 11)
	b = msgp.AppendString(b, "action")
	b = msgp.AppendString(b, "stack.create")
	b = msgp.AppendString(b, "b")
	b = msgp.AppendBytes(b, []byte("bin"))
	b = msgp.AppendString(b, "n")
	b = msgp.AppendUint64(b, 12)
	b = msgp.AppendString(b, "neg")
	b = msgp.AppendInt64(b, -3)
	b = msgp.AppendString(b, "f")
	b = msgp.AppendFloat64(b, 1.5)
	b = msgp.AppendString(b, "f32")
	b = msgp.AppendFloat32(b, 0.25)
	b = msgp.AppendString(b, "ok")
	b = msgp.AppendBool(b, true)
	b = msgp.AppendBytes(b, []byte("no")) // a bin member name
	b = msgp.AppendBool(b, false)
	b = msgp.AppendString(b, "nil")
	b = msgp.AppendNil(b)
	b = msgp.AppendString(b, "t")
	b = eventTime(b, 1, 5)
	b = msgp.AppendString(b, "data")
	b = msgp.AppendMapHeader(b, 2)
	b = msgp.AppendString(b, "ID")
	b = msgp.AppendString(b, "x")
	b = msgp.AppendString(b, "list")
	b = msgp.AppendArrayHeader(b, 4)
	b = msgp.AppendInt(b, 1)
	b = msgp.AppendString(b, "é")
	b = msgp.AppendArrayHeader(b, 0)
	b = msgp.AppendMapHeader(b, 0)

	fromText, err := Decode(Input{Body: []byte(text)}, Limits{}, "t")
	if err != nil {
		t.Fatal(err)
	}
	defer fromText.Close()
	fromMsgpack, err := Decode(Input{Msgpack: b}, Limits{}, "t")
	if err != nil {
		t.Fatal(err)
	}
	want, err := AppendCanonical(nil, fromText.Roots[0].Node, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := AppendCanonical(nil, fromMsgpack.Roots[0].Node, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("msgpack document\n%s\nwant\n%s", got, want)
	}
	root := fromMsgpack.Roots[0].Node
	if s, _ := root.Get("data").Get("list").Index(1).OptString(); s != "é" {
		t.Errorf("$.data.list[1] = %q", s)
	}
	if n, _ := root.Get("neg").Int(); n != -3 {
		t.Errorf("$.neg = %d", n)
	}
	var names []string
	root.Members(func(k string, _ Node) { names = append(names, k) })
	if len(names) != 11 || names[0] != "action" || names[10] != "data" {
		t.Errorf("members %v, want payload order", names)
	}
	if m := (*fastjson.Value)(root.v).MarshalTo(nil); !fastjson.Exists(m, "data", "list") {
		t.Errorf("fastjson cannot read its own encoding of the tree: %s", m)
	}
	fromMsgpack.Close()
	fromMsgpack.Close() // twice is harmless
}

func TestDecodeMsgpackRejects(t *testing.T) {
	lim := Limits{MaxDepth: 2, MaxStringLength: 4}
	m := func(parts ...func([]byte) []byte) []byte {
		b := msgp.AppendMapHeader(nil, uint32(len(parts)/2))
		for _, p := range parts {
			b = p(b)
		}
		return b
	}
	key := func(k string) func([]byte) []byte { return func(b []byte) []byte { return msgp.AppendString(b, k) } }
	raw := func(r ...byte) func([]byte) []byte { return func(b []byte) []byte { return append(b, r...) } }
	tests := []struct {
		name string
		b    []byte
		kind error
		path string
	}{
		{"NaN", m(key("a"), func(b []byte) []byte { return msgp.AppendFloat64(b, math.NaN()) }), ErrValue, "$.a"},
		{"invalid utf8", m(key("a"), raw(0xa1, 0xff)), ErrInvalidUTF8, "$.a"},
		{"invalid utf8 name", m(raw(0xa1, 0xff), raw(0xc0)), ErrInvalidUTF8, "$[\"\ufffd\"]"},
		{"long string", m(key("a"), key("12345")), ErrStringTooLong, "$.a"},
		{"long name", m(key("12345"), raw(0xc0)), ErrStringTooLong, `$["12345"]`},
		{"deep", m(key("a"), raw(0x81), key("b"), raw(0x80)), ErrTooDeep, "$.a.b"},
		{"deep in array", m(key("a"), raw(0x91, 0x91, 0xc0)), ErrTooDeep, "$.a[0]"},
		{"duplicate", m(key("a"), raw(0xc0), key("a"), raw(0xc0)), ErrValue, "$.a"},
		{"non-string name", m(raw(0x01), raw(0xc0)), ErrType, "$"},
		{"other extension", m(key("a"), raw(0xd4, 0x05, 0x00)), ErrType, "$.a"},
		{"truncated", m(key("a"), raw(0xa3, 'x')), ErrSyntax, "$.a"},
		{"map header beyond the bytes", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, ErrSyntax, "$"},
		{"trailing bytes", append(m(), 0xc0), ErrSyntax, "$"},
		{"empty", nil, ErrSyntax, "$"},
	}
	for _, tt := range tests {
		if tt.b == nil {
			tt.b = []byte{}
		}
		_, err := Decode(Input{Msgpack: tt.b}, lim, "t")
		var te *Error
		if !errors.As(err, &te) || !errors.Is(err, tt.kind) || te.Path != tt.path {
			t.Errorf("%s: %v, want %v at %s", tt.name, err, tt.kind, tt.path)
		}
	}
	if _, err := Decode(Input{Msgpack: m(key("a"), key("b"))}, Limits{MaxPayloadBytes: 4}, "t"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over max_payload_bytes: %v", err)
	}
}

// TestDecodeMsgpackLargeObject covers the set that finds duplicates past a
// few dozen members, and slabs spilling into new ones.
func TestDecodeMsgpackLargeObject(t *testing.T) {
	const n = 1000
	b := msgp.AppendMapHeader(nil, n)
	for i := range n {
		b = msgp.AppendString(b, "k"+string(rune('a'+i%26))+string(rune('a'+i/26)))
		b = msgp.AppendArrayHeader(b, 1)
		b = msgp.AppendInt(b, i)
	}
	doc, err := Decode(Input{Msgpack: b}, Limits{}, "t")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := doc.Roots[0].Get("kzm").Index(0).Int(); v != 25+26*12 {
		t.Errorf("$.kzm[0] = %d", v)
	}
	doc.Close()
	dup := append(msgp.AppendMapHeader(nil, n+1), b[3:]...)
	dup = msgp.AppendString(dup, "kaa")
	dup = msgp.AppendNil(dup)
	if _, err := Decode(Input{Msgpack: dup}, Limits{}, "t"); !errors.Is(err, ErrValue) {
		t.Errorf("duplicate in a large object: %v", err)
	}
}

// FuzzDecodeMsgpack: any bytes either fail with a typed error or make a
// document whose JSON encoding is valid JSON that reads back the same.
func FuzzDecodeMsgpack(f *testing.F) {
	f.Add([]byte{0x81, 0xa1, 'a', 0x92, 0x01, 0xc3})
	f.Add(eventTime([]byte{0x81, 0xa1, 't'}, 1, 2))
	f.Add([]byte{0x82, 0xa1, 'a', 0xc0, 0xa1, 'a', 0xc0})
	// Wide ones, just over the member limit: an array of nils, and a map
	// of them under distinct names.
	n := DefaultMaxMembers + 1
	wideArray := append([]byte{0xdc, byte(n >> 8), byte(n)}, bytes.Repeat([]byte{0xc0}, n)...)
	f.Add(wideArray)
	wideMap := []byte{0xde, byte(n >> 8), byte(n)}
	for i := range n {
		k := strconv.Itoa(i)
		wideMap = append(append(append(wideMap, 0xa0|byte(len(k))), k...), 0xc0)
	}
	f.Add(wideMap)
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := Decode(Input{Msgpack: b}, Limits{}, "t")
		if err != nil {
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		defer doc.Close()
		out, err := AppendCanonical(nil, doc.Roots[0].Node, nil)
		if err != nil {
			return // numbers JSON cannot hold (uint64 beyond 2^53 and such)
		}
		if err := fastjson.ValidateBytes(out); err != nil {
			t.Fatalf("canonical encoding %q is not JSON: %v", out, err)
		}
		again, err := Decode(Input{Body: out}, Limits{}, "t")
		if err != nil {
			t.Fatalf("canonical encoding %q does not decode: %v", out, err)
		}
		defer again.Close()
		again.Roots[0].Parse() // a top-level array is built item by item otherwise
		if out2, _ := AppendCanonical(nil, again.Roots[0].Node, nil); string(out2) != string(out) {
			t.Fatalf("round trip %q != %q", out2, out)
		}
	})
}
