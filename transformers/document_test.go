package transformers

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
	"unsafe"
)

func TestDecodeLimitsAndBadInput(t *testing.T) {
	lim := Limits{MaxPayloadBytes: 200, MaxDepth: 3, MaxItems: 2, MaxStringLength: 8}
	tests := []struct {
		name, body string
		kind       error
		path       string
	}{
		{"too large", `{"a":"` + strings.Repeat("x", 300) + `"}`, ErrTooLarge, "$"},
		{"too deep", `{"a":{"b":{"c":{"d":1}}}}`, ErrTooDeep, "$.a.b.c"},
		{"string too long", `{"a":["ok","123456789"]}`, ErrStringTooLong, "$.a[1]"},
		{"invalid utf8", "{\"a\":\"\xff\"}", ErrInvalidUTF8, "$"},
		{"malformed", `{"a":`, ErrSyntax, "$"},
		{"NaN", `{"a":NaN}`, ErrSyntax, "$.a"},
		{"raw control character", "{\"a\":\"x\x01\"}", ErrSyntax, "$.a"},
		{"bad escape in a name", `{"a\q":1}`, ErrSyntax, "$"},
		{"empty", "  \n", ErrSyntax, "$"},
		{"too many NDJSON lines", "{}\n{}\n{}\n", ErrTooManyItems, "$"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Decode(Input{Body: []byte(tt.body)}, lim, "test")
			if err == nil {
				doc.Close()
				t.Fatalf("Decode(%q) succeeded, want %v", tt.body, tt.kind)
			}
			var te *Error
			if !errors.As(err, &te) || !errors.Is(err, tt.kind) || te.Path != tt.path || te.Format != "test" {
				t.Fatalf("Decode(%q) = %v (path %q), want kind %v at %s", tt.body, err, te.Path, tt.kind, tt.path)
			}
		})
	}
}

func TestDecodeNDJSONKeepsGoodLines(t *testing.T) {
	doc, err := Decode(Input{Body: []byte("{\"a\":1}\n{\"a\":\n\n{\"a\":NaN}\n{\"a\":3}\n")}, Limits{}, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer doc.Close()
	if !doc.NDJSON || len(doc.Roots) != 2 || len(doc.Errors) != 2 {
		t.Fatalf("NDJSON=%v roots=%d errors=%d, want true 2 2", doc.NDJSON, len(doc.Roots), len(doc.Errors))
	}
	if doc.Errors[0].Line != 2 || doc.Errors[1].Line != 4 || doc.Errors[1].Path != "$.a" {
		t.Errorf("errors %v %v: want lines 2 and 4, the second at $.a", doc.Errors[0], doc.Errors[1])
	}
}

// TestDecodeValueMatchesBytes: the Fluent Bit plugin hands over msgpack
// maps (map[any]any, []byte strings, int64); the document, and so every
// id, must be the one the same event gets as JSON text.
func TestDecodeValueMatchesBytes(t *testing.T) {
	text := `{"action":"stack.create","n":12,"neg":-3,"f":1.5,"ok":true,"nil":null,"data":{"ID":"x","list":[1,"é"]}}`
	value := map[any]any{
		"action": []byte("stack.create"), "n": uint64(12), "neg": int64(-3), "f": 1.5, "ok": true, "nil": nil,
		"data": map[string]any{"ID": "x", "list": []any{int8(1), []byte("é")}},
	}
	fromText, err := Decode(Input{Body: []byte(text)}, Limits{}, "t")
	if err != nil {
		t.Fatal(err)
	}
	defer fromText.Close()
	fromValue, err := Decode(Input{Value: value}, Limits{}, "t")
	if err != nil {
		t.Fatal(err)
	}
	defer fromValue.Close()
	a, _ := CanonicalID(fromText.Roots[0].Node)
	b, _ := CanonicalID(fromValue.Roots[0].Node)
	if a == "" || a != b {
		t.Errorf("id from text %q != id from decoded value %q", a, b)
	}
	if fromValue.Roots[0].RawSHA256() != "" {
		t.Error("a decoded value has no raw bytes to hash")
	}
}

func TestDecodeValueRejects(t *testing.T) {
	lim := Limits{MaxDepth: 2, MaxStringLength: 4}
	tests := []struct {
		name string
		v    any
		kind error
		path string
	}{
		{"NaN", map[string]any{"a": math.NaN()}, ErrValue, "$.a"},
		{"invalid utf8", map[string]any{"a": []byte{0xff}}, ErrInvalidUTF8, "$.a"},
		{"long string", map[string]any{"a": "12345"}, ErrStringTooLong, "$.a"},
		{"deep", map[string]any{"a": map[string]any{"b": map[string]any{}}}, ErrTooDeep, "$.a.b"},
		{"non-string key", map[any]any{1: "x"}, ErrType, "$"},
		{"unsupported type", map[string]any{"a": make(chan int)}, ErrType, "$.a"},
	}
	for _, tt := range tests {
		_, err := Decode(Input{Value: tt.v}, lim, "t")
		var te *Error
		if !errors.As(err, &te) || !errors.Is(err, tt.kind) || te.Path != tt.path {
			t.Errorf("%s: %v, want %v at %s", tt.name, err, tt.kind, tt.path)
		}
	}
	// Times (msgpack EventTime) become RFC 3339 strings.
	doc, err := Decode(Input{Value: map[string]any{"t": time.Unix(1, 5).UTC(), "n": json.Number("7")}}, Limits{}, "t")
	if err != nil {
		t.Fatal(err)
	}
	defer doc.Close()
	if s, _ := doc.Roots[0].Get("t").OptString(); s != "1970-01-01T00:00:01.000000005Z" {
		t.Errorf("time converted to %q", s)
	}
}

// Documents are pooled: closing one twice must not hand it to two users,
// and a reused one must hold nothing of its last payload.
func TestDocumentCloseTwice(t *testing.T) {
	for _, in := range []Input{
		{Body: []byte(`{"a":"first"}`)},
		{Msgpack: []byte("\x81\xa1a\xa5first")},
		{Value: map[string]any{"a": "first"}},
	} {
		d, err := Decode(in, Limits{}, "test")
		if err != nil {
			t.Fatal(err)
		}
		d.Close()
		d.Close()
		a, err := Decode(Input{Body: []byte(`{"b":"second"}`)}, Limits{}, "test")
		if err != nil {
			t.Fatal(err)
		}
		b, err := Decode(Input{Msgpack: []byte("\x81\xa1b\xa5third")}, Limits{}, "test")
		if err != nil {
			t.Fatal(err)
		}
		if a == b {
			t.Fatal("two open documents are one: a document closed twice went back to the pool twice")
		}
		if got, _ := a.Roots[0].Get("b").String(); got != "second" || len(a.Roots) != 1 || a.Roots[0].Get("a").Exists() {
			t.Errorf("reused document: roots %d, $.b %q", len(a.Roots), got)
		}
		if got, _ := b.Roots[0].Get("b").String(); got != "third" || len(b.Roots) != 1 {
			t.Errorf("reused document: roots %d, $.b %q", len(b.Roots), got)
		}
		a.Close()
		b.Close()
	}
}

// TestDocumentStrings: strings an event keeps are views into a msgpack
// input (which the caller never changes) and copies of everything else:
// numbers spelled into pooled scratch memory, JSON text.
func TestDocumentStrings(t *testing.T) {
	in := []byte("\x82\xa1s\xa5label\xa1n\xcd\x01\x00") // {"s":"label","n":256}
	d, err := Decode(Input{Msgpack: in}, Limits{}, "test")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := d.Roots[0].Get("s").StringBytes()
	var num []byte
	num, _ = d.Roots[0].Get("n").AppendText(num)
	var numView []byte // an empty string
	var gotS, gotN, gotEmpty string
	d.Strings([]*string{&gotS, &gotN, &gotEmpty}, [][]byte{s, num, numView})
	d.Close()
	if gotS != "label" || unsafe.StringData(gotS) != &in[4] {
		t.Errorf("msgpack string %q: want a view into the input", gotS)
	}
	if gotN != "256" || gotEmpty != "" {
		t.Errorf("number %q, empty %q", gotN, gotEmpty)
	}
	body := []byte(`{"s":"label"}`)
	d, err = Decode(Input{Body: body}, Limits{}, "test")
	if err != nil {
		t.Fatal(err)
	}
	s, _ = d.Roots[0].Get("s").StringBytes()
	d.Strings([]*string{&gotS}, [][]byte{s})
	d.Close()
	if p := uintptr(unsafe.Pointer(unsafe.StringData(gotS))); gotS != "label" ||
		p >= uintptr(unsafe.Pointer(&body[0])) && p < uintptr(unsafe.Pointer(&body[0]))+uintptr(len(body)) {
		t.Errorf("JSON string %q: want a copy", gotS)
	}
}
