package transformers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/auditpipe/auditpipe/transformers/internal/jsontree"
	"github.com/valyala/fastjson"
)

func TestDecodeLimitsAndBadInput(t *testing.T) {
	lim := Limits{MaxPayloadBytes: 200, MaxDepth: 3, MaxItems: 2, MaxStringLength: 8, MaxMembers: 3}
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
		// The name as sent: its escape is what is wrong with it.
		{"bad escape in a name", `{"a\q":1}`, ErrSyntax, `$["a\\q"]`},
		{"long name", `{"a":{"123456789":1}}`, ErrStringTooLong, `$.a["123456789"]`},
		{"control character in a name", "{\"a\":{\"b\x01\":1}}", ErrSyntax, `$.a["b\x01"]`},
		{"too many members", `{"a":[{"b":1,"c":2,"d":3,"e":4}]}`, ErrTooManyMembers, "$.a[0]"},
		{"too many elements", `{"a":[1,2,3,4]}`, ErrTooManyMembers, "$.a"},
		{"too many elements at the top", `[1,2,3,4]`, ErrTooManyMembers, "$"},
		{"missing comma", `{"a":1 "b":2}`, ErrSyntax, "$"},
		{"missing comma inside", `{"a":[1 2]}`, ErrSyntax, "$.a"},
		{"ends too soon", `{"a":[1,2]`, ErrSyntax, "$"},
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
	if gotS != "label" || jsontree.WritesViews && unsafe.StringData(gotS) != &in[4] {
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

// nested is JSON nested depth levels deep: objects ({"a":...}), arrays
// ([...]) or both in turn.
func nested(shape string, depth int) string {
	var open, close strings.Builder
	for i := range depth {
		if shape == "arrays" || shape == "mixed" && i%2 == 1 {
			open.WriteString("[")
			close.WriteString("]")
		} else {
			open.WriteString(`{"a":`)
			close.WriteString("}")
		}
	}
	c := close.String()
	return open.String() + "1" + c
}

// nestedMsgpack is nested as msgpack.
func nestedMsgpack(shape string, depth int) []byte {
	var b []byte
	for i := range depth {
		if shape == "arrays" || shape == "mixed" && i%2 == 1 {
			b = append(b, 0x91) // an array of one
		} else {
			b = append(b, 0x81, 0xa1, 'a') // {"a": ...}
		}
	}
	return append(b, 0x01)
}

// TestDeepNesting: however deep, wherever it is, nesting beyond the limit
// is ErrTooDeep with the same short message, which quotes nothing of the
// payload but its path (shortened).
func TestDeepNesting(t *testing.T) {
	for _, depth := range []int{65, 1000, 100000, 1000000} {
		for _, shape := range []string{"objects", "arrays", "mixed"} {
			deep := nested(shape, depth)
			for _, in := range []struct {
				where  string
				in     Input
				ndjson bool
			}{
				{"top level", Input{Body: []byte(deep)}, false},
				{"NDJSON line", Input{Body: []byte("{\"ok\":1}\n" + deep + "\n{\"ok\":2}\n")}, true},
				{"array item", Input{Body: []byte(`[{"ok":1},` + deep + `]`)}, false},
				{"member", Input{Body: []byte(`{"data":` + deep + `}`)}, false},
				{"msgpack", Input{Msgpack: nestedMsgpack(shape, depth)}, false},
			} {
				name := fmt.Sprintf("%s/%s/%d", in.where, shape, depth)
				doc, err := Decode(in.in, Limits{}, "test")
				if in.ndjson && err == nil {
					if len(doc.Errors) != 1 || len(doc.Roots) != 2 {
						t.Errorf("%s: %d errors, %d lines; want the deep line alone refused", name, len(doc.Errors), len(doc.Roots))
						doc.Close()
						continue
					}
					err = doc.Errors[0]
					doc.Close()
				}
				var te *Error
				if !errors.As(err, &te) || !errors.Is(err, ErrTooDeep) {
					t.Errorf("%s: %v, want ErrTooDeep", name, err)
					continue
				}
				if msg := te.Error(); len(msg) >= 200 || !strings.Contains(msg, "nesting too deep: expected at most 64 levels of nesting") {
					t.Errorf("%s: message of %d bytes, want under 200 and clean: %.300s", name, len(msg), msg)
				}
			}
		}
	}
}

// TestErrorsQuoteLittle: whatever a payload holds, an error quotes at most
// a short excerpt of it, in its path as elsewhere.
func TestErrorsQuoteLittle(t *testing.T) {
	long := strings.Repeat("k", 100000)
	lim := Limits{MaxStringLength: 200000}
	for _, c := range []struct {
		name string
		in   Input
	}{
		{"long name, bad number", Input{Body: []byte(`{"` + long + `":{"` + long + `":NaN}}`)}},
		{"long name, control character", Input{Body: []byte("{\"" + long + "\":\"x\x01\"}")}},
		{"long name, bad escape", Input{Body: []byte(`{"` + long + `\q":1}`)}},
		{"long name, missing comma", Input{Body: []byte(`{"` + long + `":[1 2]}`)}},
		{"long name, too many members", Input{Body: []byte(`{"` + long + `":[` + strings.Repeat("1,", DefaultMaxMembers) + `1]}`)}},
		{"long name in a line", Input{Body: []byte("{}\n{\"" + long + "\":tru}\n")}},
		{"long value in a line", Input{Body: []byte("{}\n{\"a\":\"" + long + "\x01\"}\n")}},
		{"long msgpack name", Input{Msgpack: append(append([]byte{0x82, 0xda, 0x03, 0xe8}, strings.Repeat("k", 1000)...), append([]byte{0xc0, 0xda, 0x03, 0xe8}, strings.Repeat("k", 1000)+"\xc0"...)...)}},
		{"long decoded name", Input{Value: map[string]any{long: map[string]any{long: math.NaN()}}}},
	} {
		doc, err := Decode(c.in, lim, "test")
		if err == nil && len(doc.Errors) > 0 {
			err = doc.Errors[0]
		}
		if doc != nil {
			doc.Close()
		}
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, strings.Repeat("k", MaxExcerpt+1)) || len(msg) > 300 {
			t.Errorf("%s: the message quotes too much (%d bytes): %.400s", c.name, len(msg), msg)
		}
	}
}

// FuzzItems holds the items Items builds one at a time (NDJSON lines,
// the elements of a top-level array) to the same items out of fastjson
// trees of the whole payload or line.
func FuzzItems(f *testing.F) {
	f.Add([]byte(`[{"a":1},{"b":[2,3]},"x",4]`))
	f.Add([]byte("{\"a\":1}\n[{\"b\":2},3]\n{\"c\":\n\n{\"d\":\"\\u00e9\"}\n"))
	f.Add([]byte(` { "a" : [ 1 , 2 ] } `))
	f.Add([]byte(wideArray(fuzzMembers + 1)))
	f.Add([]byte("[]\n[" + wideObject(fuzzMembers) + "]\n"))
	lim := Limits{MaxMembers: fuzzMembers}.WithDefaults()
	f.Fuzz(func(t *testing.T, in []byte) {
		doc, err := decodeBytes(in, lim, nil, "fuzz", false)
		if err != nil {
			return
		}
		defer doc.Close()
		var got [][]byte
		if ierr := doc.Items(lim, func(item Node, _ *Root) { got = append(got, dumpTree(nil, (*fastjson.Value)(item.v))) }); ierr != nil {
			return
		}
		var want [][]byte
		add := func(text []byte) {
			var p fastjson.Parser
			v, err := p.ParseBytes(text)
			if err != nil {
				t.Fatalf("fastjson refuses %q, which decoded", text)
			}
			if a, err := v.Array(); err == nil {
				for _, e := range a {
					want = append(want, dumpTree(nil, e))
				}
				return
			}
			want = append(want, dumpTree(nil, v))
		}
		if !doc.NDJSON {
			add(in)
		} else {
			for _, r := range doc.Roots {
				add(r.Raw)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d items, want %d", in, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%q: item %d is %s, want %s", in, i, got[i], want[i])
			}
		}
	})
}

// dumpTree writes v as fastjson reads it: strings unescaped, members in
// order; two trees that read the same dump the same.
func dumpTree(dst []byte, v *fastjson.Value) []byte {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		dst = append(dst, '{')
		o.Visit(func(k []byte, c *fastjson.Value) {
			dst = strconv.AppendQuote(dst, string(k))
			dst = append(dst, ':')
			dst = append(dumpTree(dst, c), ',')
		})
		return append(dst, '}')
	case fastjson.TypeArray:
		a, _ := v.Array()
		dst = append(dst, '[')
		for _, c := range a {
			dst = append(dumpTree(dst, c), ',')
		}
		return append(dst, ']')
	case fastjson.TypeString:
		s, _ := v.StringBytes()
		return strconv.AppendQuote(dst, string(s))
	}
	return v.MarshalTo(dst)
}

// TestMembersKind: too many members is a kind of its own, within too many
// items (as the external protocol carries it).
func TestMembersKind(t *testing.T) {
	_, err := Decode(Input{Body: []byte(`{"a":[1,2,3]}`)}, Limits{MaxMembers: 2}, "test")
	var te *Error
	if !errors.As(err, &te) || !errors.Is(err, ErrTooManyMembers) || !errors.Is(err, ErrTooManyItems) || errors.Is(err, ErrTooDeep) {
		t.Fatalf("%v: want ErrTooManyMembers, within ErrTooManyItems", err)
	}
	if want := "test: $.a: too many members: expected at most 2 elements in one array"; te.Error() != want {
		t.Errorf("message %q, want %q", te.Error(), want)
	}
	if err := (Limits{MaxMembers: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "limits.max_members") {
		t.Errorf("a negative max_members: %v, want an error naming limits.max_members", err)
	}
}

// TestBlankLinesCostNothing: the roots of an NDJSON stream are sized to
// its lines that hold something, not to its line breaks.
func TestBlankLinesCostNothing(t *testing.T) {
	body := []byte("{}\n" + strings.Repeat("\n", 1<<20) + "{}\n")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	doc, err := Decode(Input{Body: body}, Limits{MaxItems: 1 << 30, MaxPayloadBytes: 2 << 20}, "test")
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	defer doc.Close()
	if len(doc.Roots) != 2 {
		t.Fatalf("%d roots, want 2", len(doc.Roots))
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Errorf("decoding two lines among a million blank ones allocated %d bytes", n)
	}
}

// TestMaxValues: limits.max_values bounds the values of one tree, the sum
// that max_members does not: a document over it is refused before a tree
// is built, while a batch array or an NDJSON stream counts each item on
// its own.
func TestMaxValues(t *testing.T) {
	lim := Limits{MaxValues: 6}
	for _, tc := range []struct {
		name, body string
		refused    bool
	}{
		{"nested arrays over the sum", `{"a":[[1,1],[1,1],[1,1]]}`, true},
		{"one object's members over the sum", `{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8}`, true},
		{"deep within the sum", `{"a":[[[1]]]}`, false},
		{"a batch of items each within", `[{"a":[1,1,1]},{"a":[1,1,1]},{"a":[1,1,1]}]`, false},
		{"a batch with one item over", `[{"a":[1,1]},{"a":[1,1,1,1,1,1,1,1]}]`, true},
		{"NDJSON lines each within", "{\"a\":[1,1,1]}\n{\"a\":[1,1,1]}\n{\"a\":[1,1,1]}\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := Decode(Input{Body: []byte(tc.body)}, lim, "test")
			if doc != nil {
				defer doc.Close()
			}
			if !tc.refused {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if len(doc.Errors) > 0 {
					t.Fatalf("line errors: %v", doc.Errors)
				}
				return
			}
			if !errors.Is(err, ErrTooManyMembers) || !strings.Contains(err.Error(), "at most 6 values in one document (limits.max_values)") {
				t.Fatalf("%v: want too many values", err)
			}
		})
	}
	if err := (Limits{MaxValues: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "limits.max_values") {
		t.Errorf("a negative max_values: %v", err)
	}
}

// fuzzMembers is the member limit of the fuzz targets: low, so that small
// inputs reach it.
const fuzzMembers = 8
