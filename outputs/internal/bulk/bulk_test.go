package bulk

import "testing"

func TestWithoutPreview(t *testing.T) {
	for in, want := range map[string]string{
		"failed to parse field [n] of type [long] in document with id 'x'. Preview of field's value: 'secret'": "failed to parse field [n] of type [long] in document with id 'x'.",
		"plain reason": "plain reason",
	} {
		if got := WithoutPreview(in); got != want {
			t.Errorf("WithoutPreview(%q) = %q", in, got)
		}
	}
}

func TestIndexPattern(t *testing.T) {
	for in, want := range map[string]string{
		"audit-{source}-{yyyy.MM.dd}": "audit-*-*",
		"Audit-{source}":              "audit-*",
		"fixed":                       "fixed",
	} {
		if got := IndexPattern(in); got != want {
			t.Errorf("IndexPattern(%q) = %q, want %q", in, got, want)
		}
	}
}
