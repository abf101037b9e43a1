package yamlconf

import (
	"errors"
	"strings"
	"testing"
)

// envOf returns an env function over a fixed map.
func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func testLookups(env map[string]string, files map[string]string) Lookups {
	return Lookups{
		Env: envOf(env),
		ReadFile: func(p string) ([]byte, error) {
			if v, ok := files[p]; ok {
				return []byte(v), nil
			}
			return nil, errors.New("no such file")
		},
	}
}

func TestExpand(t *testing.T) {
	lk := testLookups(
		map[string]string{"A": "alpha", "EMPTY": "", "REF": "${A}", "DOLLARS": "$$"},
		map[string]string{"/s": "file\n", "/crlf": "x\r\n", "/two": "y\n\n", "/none": "z", "/cr": "w\r"},
	)
	tests := []struct {
		in, want    string
		substituted bool
		err         string
	}{
		{"plain", "plain", false, ""},
		{"", "", false, ""},
		{"${A}", "alpha", true, ""},
		{"x${A}y${A}z", "xalphayalphaz", true, ""},
		{"${EMPTY}", "", true, ""},
		{"${UNSET:-def}", "def", true, ""},
		{"${EMPTY:-def}", "def", true, ""},
		{"${A:-def}", "alpha", true, ""},
		{"${UNSET:-}", "", true, ""},
		{"${UNSET:-a:-b $$ {}", "a:-b $$ {", true, ""}, // the default is literal up to the first '}'
		{"${REF}", "${A}", true, ""},                   // values are not expanded again
		{"${DOLLARS}", "$$", true, ""},
		{"$$", "$", false, ""},
		{"$$$$", "$$", false, ""},
		{"$${A}", "${A}", false, ""},
		{"$$${A}", "$alpha", true, ""},
		{"a$b $ $5 $", "a$b $ $5 $", false, ""},
		{"${file:/s}", "file", true, ""},
		{"${file:/crlf}", "x", true, ""},
		{"${file:/two}", "y\n", true, ""},
		{"${file:/none}", "z", true, ""},
		{"${file:/cr}", "w\r", true, ""},
		{"${UNSET}", "", true, "${UNSET}: environment variable UNSET is not set (use ${UNSET:-default} for a default)"},
		{"${A B}", "", true, "${A B}: not a variable name"},
		{"${9}", "", true, "${9}: not a variable name"},
		{"${-x:-secret}", "", true, "${-x}: not a variable name"},
		{"${A", "", false, "${: unterminated reference"},
		{"${file:/missing}", "", true, "${file:/missing}: cannot read the file: no such file"},
	}
	for _, tt := range tests {
		got, substituted, err := expand(tt.in, lk)
		if tt.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("expand(%q): error %v, want %q", tt.in, err, tt.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("expand(%q): error %q shows the default", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want || substituted != tt.substituted {
			t.Errorf("expand(%q) = %q, %v, %v; want %q, %v", tt.in, got, substituted, err, tt.want, tt.substituted)
		}
	}
}

// FuzzExpand checks expansion's invariants on arbitrary text and values:
// no panic; text without '$' is unchanged; escaping every '$' as "$$"
// gives the text back; a substituted value is inserted verbatim, never
// expanded again; errors never show a value.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{"", "plain", "${A}", "$$", "${A:-d}", "${file:/f}", "${", "$", "${}", "x${A}y$$z${B:-}", "${A:-${B}}", "$${A}"} {
		f.Add(s, "value", "s3cr3t-${A}-$$")
	}
	f.Fuzz(func(t *testing.T, s, a, secret string) {
		lk := testLookups(map[string]string{"A": a, "SECRET": secret}, map[string]string{"/f": a})
		out, _, err := expand(s, lk)
		if !strings.Contains(s, "$") && (out != s || err != nil) {
			t.Fatalf("expand(%q) = %q, %v; want it unchanged", s, out, err)
		}
		escaped := strings.ReplaceAll(s, "$", "$$")
		if out, _, err := expand(escaped, lk); out != s || err != nil {
			t.Fatalf("expand(%q) = %q, %v; want %q", escaped, out, err, s)
		}
		if out, _, err := expand("<${A}>", lk); out != "<"+a+">" || err != nil {
			t.Fatalf("expand(${A}) with A=%q: %q, %v", a, out, err)
		}
		if err != nil && len(secret) >= 4 && !strings.Contains(s, secret) && strings.Contains(err.Error(), secret) {
			t.Fatalf("error %q shows the value of SECRET", err)
		}
		if _, _, err := expand(s+"${SECRET}${UNSET_"+"}", lk); err != nil && len(secret) >= 4 && !strings.Contains(s, secret) &&
			!strings.Contains("${UNSET_}: environment variable UNSET_ is not set (use ${UNSET_:-default} for a default)", secret) &&
			strings.Contains(err.Error(), secret) {
			t.Fatalf("error %q shows the value of SECRET", err)
		}
	})
}
