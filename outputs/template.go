package outputs

import (
	"errors"
	"fmt"
	"strings"

	"github.com/auditpipe/auditpipe"
)

// Template is a name built from an event: a Kafka topic, an Elasticsearch
// index, an S3 key prefix. Placeholders in braces are replaced:
//
//	{source}        source.type (spacelift, alertmanager, app, k8s)
//	{source_name}   source.name
//	{format}        source.format, with "/" as "-"
//	{outcome}       outcome
//	{label:NAME}    the label NAME ("" when absent)
//	{yyyy.MM.dd}    the event time in UTC, in any layout built from yyyy,
//	                MM, dd and HH joined by ".", "-", "/" or "_"
//
// so "audit-{source}-{yyyy.MM.dd}" gives "audit-spacelift-2026.11.21".
// Text outside braces is copied as it is.
type Template struct {
	raw   string
	parts []part
}

type part struct {
	lit   string
	field func(dst []byte, ev *auditpipe.Event) []byte
}

// ParseTemplate parses s, naming the first bad placeholder.
func ParseTemplate(s string) (Template, error) {
	t := Template{raw: s}
	rest := s
	for rest != "" {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			if strings.IndexByte(rest, '}') >= 0 {
				return Template{}, fmt.Errorf("template %q: unmatched '}'", s)
			}
			t.parts = append(t.parts, part{lit: rest})
			break
		}
		if strings.IndexByte(rest[:i], '}') >= 0 {
			return Template{}, fmt.Errorf("template %q: unmatched '}'", s)
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return Template{}, fmt.Errorf("template %q: unclosed '{'", s)
		}
		name := rest[i+1 : i+j]
		f, err := placeholder(name)
		if err != nil {
			return Template{}, fmt.Errorf("template %q: {%s}: %w", s, name, err)
		}
		t.parts = append(t.parts, part{field: f})
		rest = rest[i+j+1:]
	}
	return t, nil
}

// MustParseTemplate is ParseTemplate for constants known to be good.
func MustParseTemplate(s string) Template {
	t, err := ParseTemplate(s)
	if err != nil {
		panic(err)
	}
	return t
}

// String returns the template as written.
func (t Template) String() string { return t.raw }

// IsZero reports whether the template is empty.
func (t Template) IsZero() bool { return t.raw == "" }

// IsConstant reports whether the template has no placeholders.
func (t Template) IsConstant() bool {
	for _, p := range t.parts {
		if p.field != nil {
			return false
		}
	}
	return true
}

// Append appends the name for ev to dst.
func (t Template) Append(dst []byte, ev *auditpipe.Event) []byte {
	for _, p := range t.parts {
		if p.field != nil {
			dst = p.field(dst, ev)
		} else {
			dst = append(dst, p.lit...)
		}
	}
	return dst
}

// Execute returns the name for ev.
func (t Template) Execute(ev *auditpipe.Event) string {
	if len(t.parts) == 1 && t.parts[0].field == nil {
		return t.parts[0].lit
	}
	return string(t.Append(make([]byte, 0, 64), ev))
}

func placeholder(name string) (func([]byte, *auditpipe.Event) []byte, error) {
	switch name {
	case "source":
		return func(d []byte, ev *auditpipe.Event) []byte { return append(d, ev.Source.Type...) }, nil
	case "source_name":
		return func(d []byte, ev *auditpipe.Event) []byte { return append(d, ev.Source.Name...) }, nil
	case "format":
		return func(d []byte, ev *auditpipe.Event) []byte {
			return append(d, strings.ReplaceAll(ev.Source.Format, "/", "-")...)
		}, nil
	case "outcome":
		return func(d []byte, ev *auditpipe.Event) []byte { return append(d, ev.Outcome...) }, nil
	}
	if l, ok := strings.CutPrefix(name, "label:"); ok {
		if l == "" {
			return nil, errors.New("label name missing")
		}
		return func(d []byte, ev *auditpipe.Event) []byte { return append(d, ev.Labels[l]...) }, nil
	}
	layout, err := dateLayout(name)
	if err != nil {
		return nil, err
	}
	return func(d []byte, ev *auditpipe.Event) []byte { return ev.Time.UTC().AppendFormat(d, layout) }, nil
}

// dateLayout turns yyyy.MM.dd-style patterns into a Go time layout.
func dateLayout(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty placeholder")
	}
	var b strings.Builder
	for p != "" {
		switch {
		case strings.HasPrefix(p, "yyyy"):
			b.WriteString("2006")
			p = p[4:]
		case strings.HasPrefix(p, "MM"):
			b.WriteString("01")
			p = p[2:]
		case strings.HasPrefix(p, "dd"):
			b.WriteString("02")
			p = p[2:]
		case strings.HasPrefix(p, "HH"):
			b.WriteString("15")
			p = p[2:]
		case strings.IndexByte(".-/_", p[0]) >= 0:
			b.WriteByte(p[0])
			p = p[1:]
		default:
			return "", errors.New("unknown placeholder (want source, source_name, format, outcome, label:NAME, or a date such as yyyy.MM.dd)")
		}
	}
	return b.String(), nil
}
