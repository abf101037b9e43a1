package jsonw

import (
	"bytes"
	"encoding/json"
	"math/bits"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

func reference(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"b\\", "\x00\x1f\t\n\r\b\f", "\u2028\u2029", "\xff\xfe", "é<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := AppendString(nil, s), reference(s); !bytes.Equal(got, want) {
			t.Errorf("AppendString(%q) = %s, want %s", s, got, want)
		}
		if got, want := append(AppendEscaped([]byte(`x"`), s), '"'), AppendString([]byte("x"), s); !bytes.Equal(got, want) {
			t.Errorf("AppendEscaped(%q) quoted = %s, want %s", s, got, want)
		}
	})
}

func TestAppendTime(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 11, 21, 9, 30, 0, 0, time.UTC),
		time.Date(2026, 11, 21, 9, 30, 0, 123456000, time.FixedZone("x", 3600)),
		{},
	} {
		if got, want := AppendTime(nil, tm), reference(tm); !bytes.Equal(got, want) {
			t.Errorf("AppendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

// TestSpecial8: the word test agrees with the byte test for every byte
// value at every position, beside plain and beside special neighbours (a
// borrow from one byte must not hide or invent another), and its lowest
// mark is the first special byte.
func TestSpecial8(t *testing.T) {
	special := func(c byte) bool { return c < 0x20 || c >= 0x80 || c == '"' || c == '\\' }
	for _, fill := range []byte{'a', ' ', 0x7f, 0x00, '"'} {
		for pos := range 8 {
			for c := range 256 {
				w := bytes.Repeat([]byte{fill}, 8)
				w[pos] = byte(c)
				first := -1
				for i, b := range w {
					if special(b) {
						first = i
						break
					}
				}
				m := Special8(load64(string(w), 0))
				if got := bits.TrailingZeros64(m) >> 3; (m == 0) != (first < 0) || m != 0 && got != first {
					t.Fatalf("Special8(%q) = %#x (first mark at %d), want first special byte at %d", w, m, got, first)
				}
			}
		}
	}
}

// FuzzAppendCanonicalString holds the JCS string writer to jsontext's
// canonicalization of what encoding/json writes for the same string.
func FuzzAppendCanonicalString(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c\n\t\x01\x1f\x7f", "\u2028\u2029<>&", "é😀", "bad\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := json.Marshal(s)
		if err != nil {
			t.Skip()
		}
		v := jsontext.Value(b)
		if err := v.Canonicalize(); err != nil {
			t.Fatal(err)
		}
		if got := AppendCanonicalString(nil, s); !bytes.Equal(got, v) {
			t.Fatalf("%q: got %s, want %s", s, got, v)
		}
	})
}
