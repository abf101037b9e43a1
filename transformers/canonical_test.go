package transformers

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/transformers/internal/jsontree"
)

func TestAppendCanonicalMatchesReference(t *testing.T) {
	tests := []string{
		`{"b":1,"a":[1.0,2.50,-0,1e3,0.000001,1e-7,1e21,123456789012345678],"c":{"z":null,"y":true,"x":false}}`,
		`{"\u20ac":"euro","\ud83d\ude00":"emoji","\ufb33":"hebrew","a\u0000b":"ctl \u001f \" \\ \/ \b\f\n\r\t"}`,
		`"<>&\u2028"`,
		`{"peach":1,"péché":2,"pêche":3,"sin":4}`,
		`{"1":1,"10":2,"2":3,"":4}`,
		`{"a":{"password":"x"},"b":{"n":[1,2,{"c":true}]},"c":{"name":"DB_PASSWORD","value":"y"},"d":"é"}`,
		"{\"a\":1,\"b\":2}\n",
		`[9007199254740993, 4.35, 0.1, 100, 1e+2, -1.5e-10]`,
	}
	for _, in := range tests {
		checkCanonical(t, []byte(in))
	}
}

// checkCanonical compares AppendCanonical with auditpipe.Canonicalize (the
// go-json-experiment JCS implementation) on one input.
func checkCanonical(t *testing.T, in []byte) {
	t.Helper()
	want, werr := auditpipe.Canonicalize(in)
	red, _ := NewRedactor(RedactConfig{})
	doc, derr := decodeBytes(in, Limits{}.WithDefaults(), red, "test", false)
	if derr != nil {
		if werr == nil && !strings.Contains(derr.Error(), "nesting") && !strings.Contains(derr.Error(), "NDJSON") &&
			!errors.Is(derr, ErrTooManyMembers) {
			t.Fatalf("decode(%q) failed but reference accepts it: %v", in, derr)
		}
		return
	}
	defer doc.Close()
	if doc.NDJSON {
		return
	}
	doc.Roots[0].Parse() // a top-level array is built item by item otherwise
	got, gerr := AppendCanonical(nil, doc.Roots[0].Node, nil)
	if werr != nil {
		if gerr == nil {
			// The reference rejects what we accept only for numbers out of
			// double range and invalid escapes fastjson unescapes; both are
			// caught by the decode checks above, so this is a bug.
			t.Fatalf("canonical(%q) = %s, reference rejects it: %v", in, got, werr)
		}
		return
	}
	if gerr != nil {
		if te, ok := gerr.(*Error); ok && te.Kind == ErrValue {
			// Deliberate divergence: the reference clamps numbers beyond
			// the double range to ±MaxFloat64; an audit id must not be
			// built on a silently altered value, so we refuse them.
			return
		}
		t.Fatalf("canonical(%q): %v, reference gives %s", in, gerr, want)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("canonical(%q)\n got %s\nwant %s", in, got, want)
	}
	// The fast path: a payload prescan calls canonical must be its own
	// canonical form, and every member it calls clean must read the same
	// as that member redacted.
	root := &doc.Roots[0]
	c, cerr := root.Canonical(root.Node, red)
	if cerr != nil {
		t.Fatalf("Root.Canonical(%q): %v", in, cerr)
	}
	if !bytes.Equal(c.Bytes(), want) {
		t.Fatalf("Root.Canonical(%q) = %s, want %s (fast path %v)", in, c.Bytes(), want, root.scan.Canonical)
	}
	for _, cl := range c.clean {
		red1, _ := jsontree.AppendCanonical(nil, cl.V, red.matcher())
		if !bytes.Equal(red1, cl.B) {
			t.Fatalf("clean member of %q: span %s, redacted encoding %s", in, cl.B, red1)
		}
	}
	c.Release()
}

func FuzzCanonical(f *testing.F) {
	f.Add([]byte(`{"b":[1,2.5e3,"x\u00e9"],"a":{"\ud83d\ude00":null}}`))
	f.Add([]byte(`[0.1,1e21,1e-7,-0,true,false]`))
	// Wide ones, at the member limit and just over it.
	f.Add([]byte(wideObject(DefaultMaxMembers)))
	f.Add([]byte(`{"a":` + wideArray(DefaultMaxMembers+1) + `}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		if !json.Valid(in) {
			// Whatever we make of invalid JSON must be an error, never a
			// document.
			if doc, err := decodeBytes(in, Limits{}.WithDefaults(), nil, "fuzz", false); err == nil && !doc.NDJSON {
				t.Fatalf("decoded invalid JSON %q", in)
			}
			return
		}
		checkCanonical(t, in)
	})
}

func TestRedactor(t *testing.T) {
	r, err := NewRedactor(RedactConfig{AddKeys: []string{"ssn"}})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]bool{
		"password": true, "DB_PASSWORD": true, "apiKey": true, "X-Api-Key": true, "Authorization": true,
		"client_secret": true, "refreshToken": true, "user_ssn": true, "name": false, "action": false, "author": false,
		"authorization.k8s.io/decision": false, "example.com/api-token": true,
	} {
		if got := r.Secret([]byte(key)); got != want {
			t.Errorf("Secret(%q) = %v, want %v", key, got, want)
		}
	}
	if _, err := NewRedactor(RedactConfig{Keys: []string{"_-"}}); err == nil || !strings.Contains(err.Error(), "redact.keys[0]") {
		t.Errorf("empty pattern: error %v must name redact.keys[0]", err)
	}
	var nilR *Redactor
	if nilR.Secret([]byte("password")) {
		t.Error("nil redactor must redact nothing")
	}
}

func TestRedactNameValuePairs(t *testing.T) {
	red, _ := NewRedactor(RedactConfig{})
	v := mustDecode(t, `{"env":[{"name":"DB_PASSWORD","value":"hunter2"},{"name":"MODE","value":"prod"}]}`)
	got, err := AppendCanonical(nil, v, red)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"env":[{"name":"DB_PASSWORD","value":"[REDACTED]"},{"name":"MODE","value":"prod"}]}`
	if string(got) != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func TestDuplicateKeysRejected(t *testing.T) {
	v := mustDecode(t, `{"a":1,"a":2}`)
	if _, err := AppendCanonical(nil, v, nil); err == nil {
		t.Error("duplicate member names must be an error")
	}
}

func TestOutOfRangeNumberRejected(t *testing.T) {
	v := mustDecode(t, `[1E400]`)
	if _, err := AppendCanonical(nil, v, nil); err == nil {
		t.Error("a number beyond the double range must be an error, not a clamped value")
	}
}

// FuzzRedactor holds the automaton to the plain definition: the last
// '/'-segment of the name, case-folded without separators, contains a
// pattern.
func FuzzRedactor(f *testing.F) {
	for _, s := range []string{"password", "X-Api-Key", "tok_en", "authorization.k8s.io/decision", "passwordsecret", "pasword", "ssecret"} {
		f.Add(s)
	}
	patterns := []string{"password", "secret", "token", "api_key", "se_cr", "aaab"}
	r, err := NewRedactor(RedactConfig{Keys: patterns})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, key string) {
		name := key
		if i := strings.LastIndexByte(name, '/'); i >= 0 {
			name = name[i+1:]
		}
		n := normalizeKey(name)
		want := false
		for _, p := range patterns {
			if strings.Contains(n, normalizeKey(p)) {
				want = true
			}
		}
		if got := r.Secret([]byte(key)); got != want {
			t.Fatalf("Secret(%q) = %v, want %v", key, got, want)
		}
	})
}

// normalizeKey is a member name as patterns match it: lowercased, without
// separators.
func normalizeKey(k string) string {
	var b strings.Builder
	for _, c := range []byte(k) {
		switch {
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		case c == '_' || c == '-' || c == '.' || c == ' ':
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// mustDecode is the whole tree of one JSON document.
func mustDecode(t testing.TB, text string) Node {
	t.Helper()
	doc, err := Decode(Input{Body: []byte(text)}, Limits{}, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(doc.Close)
	doc.Roots[0].Parse()
	return doc.Roots[0].Node
}

// wideObject is an object of n members; wideArray an array of n elements.
func wideObject(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k` + strconv.Itoa(i) + `":` + strconv.Itoa(i))
	}
	return b.String() + "}"
}

func wideArray(n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat("1,", n), ",") + "]"
}
