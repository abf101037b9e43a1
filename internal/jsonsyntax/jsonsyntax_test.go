package jsonsyntax

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// strict is the oracle for what encoding/json lets through on purpose
// (invalid UTF-8, lone surrogates): jsontext refuses both by default.
func strict(b []byte) bool {
	return jsontext.Value(b).IsValid(jsontext.AllowDuplicateNames(true))
}

func TestNumber(t *testing.T) {
	for _, tt := range []struct {
		in string
		n  int
		p  Problem
	}{
		{"0", 1, None}, {"-0", 2, None}, {"12", 2, None}, {"1.5e-3", 6, None}, {"1E+9", 4, None},
		{"01", 1, None}, {"1.5.2", 3, None}, {"7,", 1, None}, {"-1e5x", 4, None},
		{"", 0, WantNumber}, {"-", 1, WantNumber}, {"+1", 0, WantNumber}, {"-a", 1, WantNumber}, {".5", 0, WantNumber},
		{"1.", 2, WantDigit}, {"1.e5", 2, WantDigit}, {"1e", 2, WantDigit}, {"1e+", 3, WantDigit}, {"NaN", 0, WantNumber},
	} {
		if n, p := Number([]byte(tt.in)); n != tt.n || p != tt.p {
			t.Errorf("Number(%q) = %d, %v; want %d, %v", tt.in, n, p, tt.n, tt.p)
		}
		if got, want := ValidNumber([]byte(tt.in)), tt.p == None && tt.n == len(tt.in); got != want {
			t.Errorf("ValidNumber(%q) = %v", tt.in, got)
		}
	}
}

// FuzzNumber holds Number to encoding/json's decoder: the same numbers,
// ending at the same byte.
func FuzzNumber(f *testing.F) {
	for _, s := range []string{"0", "-12.5e+07", "01", "1.", "-", "1e", "2.x", "9007199254740993", "1 2"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, p := Number(b)
		if len(b) == 0 || b[0] != '-' && (b[0] < '0' || b[0] > '9') {
			if n != 0 || p != WantNumber {
				t.Fatalf("Number(%q) = %d, %v for no number", b, n, p)
			}
			return
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		err := dec.Decode(&v)
		if (err == nil) != (p == None) {
			t.Fatalf("Number(%q) = %d, %v; encoding/json: %v", b, n, p, err)
		}
		if p != None {
			if n < 0 || n > len(b) {
				t.Fatalf("Number(%q): offset %d out of range", b, n)
			}
			return
		}
		if got := v.(json.Number); string(got) != string(b[:n]) || dec.InputOffset() != int64(n) {
			t.Fatalf("Number(%q) = %d; encoding/json read %s up to %d", b, n, got, dec.InputOffset())
		}
		if want := json.Valid(b) && !isSpace(b[len(b)-1]); ValidNumber(b) != want {
			t.Fatalf("ValidNumber(%q) = %v", b, !want)
		}
	})
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func TestEscape(t *testing.T) {
	for _, tt := range []struct {
		in string
		r  rune
		n  int
		p  Problem
	}{
		{`\n`, '\n', 2, None}, {`\/x`, '/', 2, None}, {`\"`, '"', 2, None}, {`\u00e9`, 'é', 6, None},
		{`\uD83D\uDE00`, '😀', 12, None}, {`\ud83d\ude00`, '😀', 12, None}, {`\uFFFF`, 0xFFFF, 6, None},
		{`\`, 0, 0, Unterminated}, {`\x`, 0, 0, BadEscape}, {`\U00e9`, 0, 0, BadEscape},
		{`\u00g9`, 0, 2, BadHex}, {`\u12`, 0, 2, BadHex},
		{`\ud83d`, 0, 6, LoneSurrogate}, {`\ud83dx`, 0, 6, LoneSurrogate}, {`\ud83d\n`, 0, 6, LoneSurrogate},
		{`\ud83d\u12`, 0, 8, LoneSurrogate}, {`\ud83d\u0041`, 0, 12, LoneSurrogate},
		{`\ude00`, 0, 6, LoneSurrogate}, {`\ude00\ud83d`, 0, 12, LoneSurrogate},
	} {
		r, n, p := Escape([]byte(tt.in))
		if r != tt.r || n != tt.n || p != tt.p {
			t.Errorf("Escape(%q) = %q, %d, %v; want %q, %d, %v", tt.in, r, n, p, tt.r, tt.n, tt.p)
		}
		if p == None && EscapeLen([]byte(tt.in)) != n {
			t.Errorf("EscapeLen(%q) = %d, want %d", tt.in, EscapeLen([]byte(tt.in)), n)
		}
	}
}

// FuzzEscape holds Escape and Hex4 to encoding/json: an escape accepted
// stands for the rune encoding/json reads from it; one refused is refused
// by encoding/json or, for surrogates, by a strict decoder.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{`n`, `u00e9`, `ud83d\ude00`, `ud83d`, `ude00\ud83d`, `u12`, `x`, `uD83D\uDBFF`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		b := append([]byte{'\\'}, in...)
		r, n, p := Escape(b)
		if len(b) >= 6 && b[1] == 'u' {
			want, err := strconv.ParseUint(string(b[2:6]), 16, 32)
			if got, ok := Hex4(b[2:]); ok != (err == nil && !strings.ContainsAny(string(b[2:6]), "+-_xX")) || ok && got != rune(want) {
				t.Fatalf("Hex4(%q) = %x, %v", b[2:6], got, ok)
			}
		}
		lit := func(n int) []byte { return append(append([]byte{'"'}, b[:n]...), '"') }
		switch p {
		case None:
			var s string
			if err := json.Unmarshal(lit(n), &s); err != nil || s != string(r) || !strict(lit(n)) {
				t.Fatalf("Escape(%q) = %q, %d; encoding/json: %q, %v", b, r, n, s, err)
			}
			if EscapeLen(b) != n {
				t.Fatalf("EscapeLen(%q) = %d, want %d", b, EscapeLen(b), n)
			}
		case LoneSurrogate:
			if strict(lit(n)) {
				t.Fatalf("Escape(%q) = %v, but a strict decoder accepts %s", b, p, lit(n))
			}
		default:
			if json.Valid(lit(min(len(b), 6))) {
				t.Fatalf("Escape(%q) = %v, but encoding/json accepts %s", b, p, lit(min(len(b), 6)))
			}
		}
	})
}

func TestString(t *testing.T) {
	for _, tt := range []struct {
		in      string
		n       int
		escaped bool
		p       Problem
		value   string
	}{
		{`"`, 0, false, None, ""},
		{`plain text"rest`, 10, false, None, "plain text"},
		{`a longer plain run past eight bytes"`, 35, false, None, "a longer plain run past eight bytes"},
		{"é ✓ 😀\u2028\"", 14, false, None, "é ✓ 😀\u2028"},
		{`tab\there \"q\" \\ \/ \u00e9\ud83d\ude00 end"`, 44, true, None, "tab\there \"q\" \\ / é😀 end"},
		{`abc`, 3, false, Unterminated, ""},
		{`abc\`, 3, false, Unterminated, ""},
		{"ab\x01\"", 2, false, ControlChar, ""},
		{"a\\nb\x1f\"", 4, true, ControlChar, ""},
		{"ab\xff\"", 0, false, BadUTF8, ""},
		{"a\\n\xe2\x82\"", 0, true, BadUTF8, ""},
		{`a\qb"`, 1, false, BadEscape, ""},
		{`a\u00zz"`, 3, false, BadHex, ""},
		{`a\n\ud800"`, 9, true, LoneSurrogate, ""},
	} {
		n, escaped, p := String([]byte(tt.in))
		if n != tt.n || escaped != tt.escaped || p != tt.p {
			t.Errorf("String(%q) = %d, %v, %v; want %d, %v, %v", tt.in, n, escaped, p, tt.n, tt.escaped, tt.p)
			continue
		}
		if p != None {
			continue
		}
		raw := []byte(tt.in[:n])
		if got := string(AppendUnescaped([]byte("x"), raw)); got != "x"+tt.value {
			t.Errorf("AppendUnescaped(%q) = %q, want %q", raw, got[1:], tt.value)
		}
		if got := UnescapedLen(raw); got != len(tt.value) {
			t.Errorf("UnescapedLen(%q) = %d, want %d", raw, got, len(tt.value))
		}
	}
}

// TestPlain: the word-at-a-time scan stops where the byte-at-a-time one
// does, for every byte value at every position of a word, after a
// plain, a non-ASCII or no prefix, and tells ASCII runs apart.
func TestPlain(t *testing.T) {
	stop := func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 }
	for _, prefix := range []string{"", "abc", "é"} {
		for _, fill := range []byte{'a', 0xc3, '"', 0x7f} {
			for pos := range 17 {
				for c := range 256 {
					b := append([]byte(prefix), bytes.Repeat([]byte{fill}, 17)...)
					b[len(prefix)+pos] = byte(c)
					want, ascii := len(b), true
					for i, x := range b {
						if stop(x) {
							want = i
							break
						}
						ascii = ascii && x < utf8.RuneSelf
					}
					if n, a := Plain(b); n != want || a != ascii {
						t.Fatalf("Plain(%q) = %d, %v; want %d, %v", b, n, a, want, ascii)
					}
				}
			}
		}
	}
}

// FuzzString holds String, AppendUnescaped, UnescapedLen, EscapeLen and
// Plain to encoding/json: a string literal accepted is one encoding/json
// reads up to the same quote and to the same value; one refused is refused
// by encoding/json or, for bad UTF-8 and surrogates, by a strict decoder.
func FuzzString(f *testing.F) {
	for _, s := range []string{`abc"`, `a\"b\\c\/\b\f\n\r\t\u00e9\ud83d\ude00"x`, "é\xff\"", `\ud800"`, "a\x01\"", `abc`, `a\q"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, escaped, p := String(b)
		if n < 0 || n > len(b) {
			t.Fatalf("String(%q): offset %d out of range", b, n)
		}
		lit := append([]byte{'"'}, b...)
		dec := json.NewDecoder(bytes.NewReader(lit))
		var s string
		err := dec.Decode(&s)
		if p != None {
			if err == nil && (p != BadUTF8 && p != LoneSurrogate || strict(lit[:dec.InputOffset()])) {
				t.Fatalf("String(%q) = %d, %v; encoding/json reads %q", b, n, p, s)
			}
			return
		}
		raw := b[:n]
		if err != nil || dec.InputOffset() != int64(n+2) || !strict(lit[:n+2]) {
			t.Fatalf("String(%q) = %d; encoding/json: %v at %d", b, n, err, dec.InputOffset())
		}
		if escaped != bytes.Contains(raw, []byte{'\\'}) {
			t.Fatalf("String(%q): escaped = %v", b, escaped)
		}
		if got := AppendUnescaped(nil, raw); string(got) != s {
			t.Fatalf("AppendUnescaped(%q) = %q, encoding/json %q", raw, got, s)
		}
		if got := UnescapedLen(raw); got != len(s) {
			t.Fatalf("UnescapedLen(%q) = %d, want %d", raw, got, len(s))
		}
		for i := 0; i < len(raw); i++ {
			if raw[i] == '\\' {
				_, m, _ := Escape(raw[i:])
				if EscapeLen(raw[i:]) != m {
					t.Fatalf("EscapeLen(%q) = %d, want %d", raw[i:], EscapeLen(raw[i:]), m)
				}
				i += m - 1
			}
		}
		for i := range min(len(b), 9) {
			want := bytes.IndexFunc(b[i:], func(r rune) bool { return r == '"' || r == '\\' || r < 0x20 })
			if want < 0 {
				want = len(b) - i
			}
			if k, ascii := Plain(b[i:]); k != want || ascii != (bytes.IndexFunc(b[i:i+k], func(r rune) bool { return r >= utf8.RuneSelf }) < 0) {
				t.Fatalf("Plain(%q) = %d, %v; want %d", b[i:], k, ascii, want)
			}
		}
	})
}

func TestSkip(t *testing.T) {
	for _, tt := range []struct {
		in string
		n  int
		p  Problem
	}{
		{`{}`, 2, None}, {`[]x`, 2, None}, {`"s" `, 3, None}, {`-1.5e3,`, 6, None}, {`true`, 4, None}, {`null]`, 4, None},
		{`{ "a" : [ 1 , { "b" : null } ] , "c" : "\u00e9" } `, 49, None},
		{``, 0, WantValue}, {`]`, 0, WantValue}, {`x`, 0, WantValue}, {`tru`, 0, WantTrue}, {`fals`, 0, WantFalse}, {`nul`, 0, WantNull},
		{`{"a"}`, 4, WantColon}, {`{"a":1,}`, 7, WantString}, {`{1:2}`, 1, WantString}, {`{"a":1 "b"}`, 7, WantObjectNext},
		{`[1,]`, 3, WantValue}, {`[1 2]`, 3, WantArrayNext}, {`[1`, 2, WantArrayNext}, {`{"a":1.}`, 7, WantDigit},
		{`["a` + "\x01" + `"]`, 3, ControlChar}, {"[\"\xff\"]", 2, BadUTF8}, {`{"\ud800":1}`, 8, LoneSurrogate},
		{`[[[1]]]`, 7, None}, {`[[[[1]]]]`, 3, TooDeep}, {`{"a":{"b":{"c":{}}}}`, 15, TooDeep},
	} {
		if n, p := Skip([]byte(tt.in), 3); n != tt.n || p != tt.p {
			t.Errorf("Skip(%q) = %d, %v; want %d, %v", tt.in, n, p, tt.n, tt.p)
		}
	}
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	if !Valid([]byte(deep), 10000) || Valid([]byte("["+deep+"]"), 10000) {
		t.Error("the depth limit is not encoding/json's at 10000")
	}
}

// FuzzValid holds Valid and Skip to json.Valid: the same verdict on every
// input but those only a strict decoder refuses, and Skip ends where
// encoding/json's decoder does.
func FuzzValid(f *testing.F) {
	for _, s := range []string{
		`{"a":[1,-2.5e3,true,false,null,{"b":"c\u00e9\n"}]}`, ` [ ] `, `"x"`, `{"a":1,}`, `[1 2]`, `{"a" 1}`,
		"[\"\xff\"]", `["\udc00"]`, `01`, `{"a":{"b":[{}]}} x`, `[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		valid, std := Valid(b, 10000), json.Valid(b)
		if valid && (!std || !strict(b)) || std && !valid && strict(b) {
			t.Fatalf("Valid(%q) = %v, json.Valid %v", b, valid, std)
		}
		i := space(b, 0)
		n, p := Skip(b[i:], 10000)
		if n < 0 || i+n > len(b) {
			t.Fatalf("Skip(%q): offset %d out of range", b, n)
		}
		if p != None {
			if valid {
				t.Fatalf("Skip(%q) = %d, %v, but Valid", b, n, p)
			}
			return
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil || string(raw) != string(b[i:i+n]) || !Valid(b[i:i+n], 10000) {
			t.Fatalf("Skip(%q) = %d; encoding/json read %s, %v", b, n, raw, err)
		}
	})
}

// TestNoAllocations: the scanners run on every event; they must cost no
// garbage.
func TestNoAllocations(t *testing.T) {
	doc := []byte(`{"a":[1,-2.5e3,true,null,{"b":"c\u00e9\ud83d\ude00\n"}],"s":"` + strings.Repeat("x", 40) + `"}`)
	buf := make([]byte, 0, 64)
	str := []byte(`tab\there \u00e9\ud83d\ude00"`)
	if n := testing.AllocsPerRun(100, func() {
		Valid(doc, 100)
		Number([]byte("-12.5e3"))
		n, _, _ := String(str)
		AppendUnescaped(buf[:0], str[:n])
		UnescapedLen(str[:n])
	}); n != 0 {
		t.Errorf("%v allocations per run", n)
	}
}

func TestProblemString(t *testing.T) {
	for p := None; p <= TooDeep; p++ {
		if s := p.String(); s == "" || s == "unknown problem" {
			t.Errorf("Problem %d has no words", p)
		}
	}
}
