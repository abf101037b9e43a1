package kafka

import (
	"context"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/outputs/outputstest"
	"github.com/auditpipe/auditpipe/testenv/kafkatest"
)

func TestTemplateLiterals(t *testing.T) {
	for tmpl, want := range map[string][]string{
		"audit":                 {"audit"},
		"audit.{source}":        {"audit.", ""},
		"{source}":              {"", ""},
		"a.{source}.{yyyy}-x":   {"a.", ".", "-x"},
		"{label:team}{outcome}": {"", "", ""},
	} {
		if got := templateLiterals(tmpl); !slices.Equal(got, want) {
			t.Errorf("templateLiterals(%q) = %q, want %q", tmpl, got, want)
		}
	}
	for _, tc := range []struct {
		tmpl, name string
		match      bool
	}{
		{"audit", "audit", true},
		{"audit", "audit.x", false},
		{"audit.{source}", "audit.app", true},
		{"audit.{source}", "audit.", true}, // an empty source renders so
		{"audit.{source}", "audit", false},
		{"audit.{source}", "xaudit.app", false},
		{"a.{source}.{yyyy}-x", "a.app.2026-x", true},
		{"a.{source}.{yyyy}-x", "a.app-x", false},
		{"a.{source}.{yyyy}-x", "a..-x", true},
		{"a.{source}.{yyyy}-x", "a.-x", false},
		{"{source}", "anything", true},
		{"x{source}x", "x", false},
		{"x{source}x", "xx", true},
	} {
		if got := matchLiterals(templateLiterals(tc.tmpl), tc.name); got != tc.match {
			t.Errorf("template %q, topic %q: match %v, want %v", tc.tmpl, tc.name, got, tc.match)
		}
	}
}

// TestReadBackSmallFetches reads with fetches of at most one byte, so
// that every response holds one record batch (a broker sends the first
// batch whole whatever the limit) and a partition takes many fetches.
func TestReadBackSmallFetches(t *testing.T) {
	b, err := kafkatest.Start(kafkatest.Config{Topics: []string{"audit"}, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o, err := New(ctx, Config{Brokers: b.Addrs(), Topic: "audit"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close(context.Background())
	batches, pub := outputstest.Sealed(t, "kafka/small", 60, 3)
	for _, bt := range batches {
		if err := o.Write(ctx, bt); err != nil {
			t.Fatal(err)
		}
	}
	rep, _ := outputstest.VerifyReadBack(t, ctx, oneByteFetches{o}, pub)
	if !rep.OK || rep.Verified != 60 || rep.Entries != 60 {
		t.Fatalf("report: ok %v, %d verified of %d entries, want 60: %+v", rep.OK, rep.Verified, rep.Entries, rep)
	}
}

type oneByteFetches struct{ o *Output }

func (f oneByteFetches) ReadBack(ctx context.Context, fn func(string, io.Reader) error) error {
	return f.o.readBack(ctx, 1, fn)
}
