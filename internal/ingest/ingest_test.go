package ingest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/transformers"
)

// fake is a transformer that returns what it is told to.
type fake struct {
	events  []auditpipe.Event
	errs    []*transformers.Error
	skipped map[string]int
	err     error
}

func (f *fake) Transform(_ context.Context, _ transformers.Input, res *transformers.Result) error {
	res.Format = "fake"
	res.Events = append(res.Events, f.events...)
	res.Errors = append(res.Errors, f.errs...)
	for reason, n := range f.skipped {
		for range n {
			res.Skip(reason)
		}
	}
	return f.err
}

func newStage(t *testing.T, cfg Config) *Stage {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func in() *transformers.Input {
	return &transformers.Input{Meta: transformers.Meta{SourceName: "src"}}
}

func TestNewNeedsATransformer(t *testing.T) {
	if _, err := New(Config{}); err == nil || err.Error() != "ingest: Transformer: required" {
		t.Fatalf("New(Config{}) = %v, want the Transformer named", err)
	}
}

func TestLabelPrecedence(t *testing.T) {
	tr := &fake{events: []auditpipe.Event{
		{ID: "plain"},
		{ID: "own", Labels: map[string]string{"security_signal": "true", "env": "own", "tag": "own"}},
		{ID: "plain2"},
	}}
	s := newStage(t, Config{Transformer: tr, Labels: map[string]string{"env": "prod", "cluster": "c1"}})
	var from Origin
	from.Add("tag", "audit.x")
	from.Add("env", "origin")
	var res transformers.Result
	o, err := s.Ingest(context.Background(), in(), &from, &res)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"plain":  {"env": "origin", "cluster": "c1", "tag": "audit.x"},
		"own":    {"env": "own", "cluster": "c1", "tag": "own", "security_signal": "true"},
		"plain2": {"env": "origin", "cluster": "c1", "tag": "audit.x"},
	}
	for _, ev := range o.Events {
		if !maps.Equal(ev.Labels, want[ev.ID]) {
			t.Errorf("%s: labels %v, want %v", ev.ID, ev.Labels, want[ev.ID])
		}
	}
	if reflect.ValueOf(o.Events[0].Labels).UnsafePointer() != reflect.ValueOf(o.Events[2].Labels).UnsafePointer() {
		t.Error("events without labels of their own do not share one set")
	}
	// A second payload of the same origin shares the same set still.
	if _, err := s.Ingest(context.Background(), in(), &from, &res); err != nil {
		t.Fatal(err)
	}
	if reflect.ValueOf(res.Events[3].Labels).UnsafePointer() != reflect.ValueOf(o.Events[0].Labels).UnsafePointer() {
		t.Error("the origin's set was built again for the next payload")
	}
	// A change to the origin makes a new set.
	from.Add("extra", "1")
	o, _ = s.Ingest(context.Background(), in(), &from, &res)
	if o.Events[0].Labels["extra"] != "1" {
		t.Errorf("labels after Add: %v", o.Events[0].Labels)
	}
}

func TestLabelsWithoutOrigin(t *testing.T) {
	static := map[string]string{"cluster": "c1"}
	tr := &fake{events: []auditpipe.Event{{ID: "a"}, {ID: "b", Labels: map[string]string{"cluster": "own"}}}}
	s := newStage(t, Config{Transformer: tr, Labels: static})
	static["cluster"] = "changed later" // the stage keeps a copy
	var res transformers.Result
	o, _ := s.Ingest(context.Background(), in(), nil, &res)
	if o.Events[0].Labels["cluster"] != "c1" || o.Events[1].Labels["cluster"] != "own" {
		t.Errorf("labels %v, %v", o.Events[0].Labels, o.Events[1].Labels)
	}

	// No labels configured and none from the origin: events keep theirs,
	// nil included.
	s = newStage(t, Config{Transformer: tr})
	res = transformers.Result{}
	tr.events[0].Labels = nil
	o, _ = s.Ingest(context.Background(), in(), &Origin{}, &res)
	if o.Events[0].Labels != nil || o.Events[1].Labels["cluster"] != "own" {
		t.Errorf("labels %v, %v", o.Events[0].Labels, o.Events[1].Labels)
	}
}

func TestIngestAppendsToTheCallersResult(t *testing.T) {
	tr := &fake{events: []auditpipe.Event{{ID: "x"}}, skipped: map[string]int{"resolved": 1}}
	s := newStage(t, Config{Transformer: tr})
	res := transformers.Result{Events: []auditpipe.Event{{ID: "earlier"}}, Errors: []*transformers.Error{{}}}
	o, err := s.Ingest(context.Background(), in(), nil, &res)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 2 || res.Events[0].ID != "earlier" || len(o.Events) != 1 || o.Events[0].ID != "x" {
		t.Fatalf("res.Events %v, outcome %v", res.Events, o.Events)
	}
	if len(o.Errors) != 0 || o.Malformed() {
		t.Errorf("errors of an earlier payload leaked into this one: %v", o.Errors)
	}
}

func TestErrorsFolded(t *testing.T) {
	items := []*transformers.Error{
		{Format: "fake", Item: 1, Path: "$[1]", Kind: transformers.ErrMissing},
		{Format: "fake", Item: 2, Path: "$[2]", Kind: transformers.ErrMissing},
	}
	tr := &fake{events: []auditpipe.Event{{ID: "good"}}, errs: items, err: errors.New("whole payload")}
	s := newStage(t, Config{Transformer: tr})
	var res transformers.Result
	o, err := s.Ingest(context.Background(), in(), nil, &res)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Errors) != 3 || o.Errors[1] != items[0] || o.Errors[0].Detail != "whole payload" {
		t.Fatalf("errors %v: want the payload's first, then the items'", o.Errors)
	}
	want := "fake: $: invalid value (whole payload) (and 2 more errors)"
	if got := o.Reason(); got != want {
		t.Errorf("Reason = %q, want %q", got, want)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	l := o.Letter(at, []byte("body"))
	if l.Source != "src" || l.Error != want || string(l.Payload) != "body" || l.Time != at.UTC() {
		t.Errorf("letter %+v", l)
	}
	if Summary(items[:1]) != items[0].Error() || Summary(nil) != "" {
		t.Error("Summary of one error or of none")
	}
}

func TestEmptyPayload(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tr     *fake
		empty  bool
		reason string
	}{
		{"nothing", &fake{}, true, "fake: $: missing field: expected at least one item (the payload holds no items)"},
		{"only skipped", &fake{skipped: map[string]int{"resolved": 2}}, false, ""},
		{"an event", &fake{events: []auditpipe.Event{{}}}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var res transformers.Result
			o, err := newStage(t, Config{Transformer: tc.tr}).Ingest(context.Background(), in(), nil, &res)
			if err != nil {
				t.Fatal(err)
			}
			if o.Empty != tc.empty || o.Malformed() != tc.empty || o.Reason() != tc.reason {
				t.Errorf("Empty %v, Malformed %v, Reason %q", o.Empty, o.Malformed(), o.Reason())
			}
			if tc.empty && !errors.Is(o.Errors[0], transformers.ErrMissing) {
				t.Errorf("the error of an empty payload is %v", o.Errors[0])
			}
		})
	}
	var res transformers.Result
	o, _ := newStage(t, Config{Transformer: &fake{}, Empty: "the record holds no audit event"}).Ingest(context.Background(), in(), nil, &res)
	if o.Reason() != "the record holds no audit event" || len(o.Errors) != 1 {
		t.Errorf("with Config.Empty: Reason %q, errors %v", o.Reason(), o.Errors)
	}
}

func TestUnavailableIsNotAnOutcome(t *testing.T) {
	tr := &fake{events: []auditpipe.Event{{ID: "half-made"}}, skipped: map[string]int{"x": 1},
		err: fmt.Errorf("%w: plugin crashed", transformers.ErrUnavailable)}
	var skips int
	s := newStage(t, Config{Transformer: tr, OnSkip: func(string, int) { skips++ }})
	res := transformers.Result{Events: []auditpipe.Event{{ID: "earlier"}}}
	_, err := s.Ingest(context.Background(), in(), nil, &res)
	if !errors.Is(err, transformers.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if len(res.Events) != 1 || res.Events[0].ID != "earlier" {
		t.Errorf("res.Events = %v, want only the earlier payload's", res.Events)
	}
	if skips != 0 {
		t.Error("a payload to be sent again had its skips counted")
	}
}

func TestSkipsCountedByReason(t *testing.T) {
	got := map[string]int{}
	tr := &fake{skipped: map[string]int{"resolved": 2, "alertname": 1}}
	s := newStage(t, Config{Transformer: tr, OnSkip: func(reason string, n int) { got[reason] += n }})
	var res transformers.Result
	o, err := s.Ingest(context.Background(), in(), nil, &res)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, tr.skipped) || !maps.Equal(o.Skipped, tr.skipped) {
		t.Errorf("OnSkip saw %v, Outcome.Skipped %v; want %v", got, o.Skipped, tr.skipped)
	}
}

func TestOriginReset(t *testing.T) {
	s := newStage(t, Config{Transformer: &fake{events: []auditpipe.Event{{}}}})
	var from Origin
	from.Add("a", "1")
	var res transformers.Result
	o, _ := s.Ingest(context.Background(), in(), &from, &res)
	if o.Events[0].Labels["a"] != "1" {
		t.Fatalf("labels %v", o.Events[0].Labels)
	}
	from.Reset()
	from.Add("b", "2")
	o, _ = s.Ingest(context.Background(), in(), &from, &res)
	if !maps.Equal(o.Events[0].Labels, map[string]string{"b": "2"}) {
		t.Errorf("labels after Reset: %v", o.Events[0].Labels)
	}
}

// Take makes of a result transformed elsewhere (a batch) what Ingest
// makes of the same result: events appended and labelled, errors, skips,
// an empty payload refused.
func TestTakeIsIngestOfABatchResult(t *testing.T) {
	tr := &fake{events: []auditpipe.Event{{ID: "a"}, {ID: "b", Labels: map[string]string{"own": "1"}}},
		errs: []*transformers.Error{{Format: "fake", Item: 2, Path: "$[2]", Kind: transformers.ErrMissing}}, skipped: map[string]int{"resolved": 1}}
	var skips []string
	cfg := Config{Transformer: tr, Labels: map[string]string{"env": "prod"}, OnSkip: func(r string, n int) { skips = append(skips, fmt.Sprint(r, n)) }}
	s := newStage(t, cfg)
	var from Origin
	from.Add("tag", "t")
	var want transformers.Result
	wo, err := s.Ingest(context.Background(), in(), &from, &want)
	if err != nil {
		t.Fatal(err)
	}
	var got transformers.Result
	if err := tr.Transform(context.Background(), *in(), &got); err != nil {
		t.Fatal(err)
	}
	res := transformers.Result{Events: []auditpipe.Event{{ID: "earlier"}}}
	o := s.Take(in(), &from, &got, &res)
	if len(res.Events) != 3 || res.Events[0].ID != "earlier" || !reflect.DeepEqual(o.Events, wo.Events) {
		t.Fatalf("res.Events %v, outcome %v; Ingest's %v", res.Events, o.Events, wo.Events)
	}
	if o.Reason() != wo.Reason() || !reflect.DeepEqual(o.Skipped, wo.Skipped) || o.Empty || !o.Malformed() {
		t.Errorf("outcome %+v, Ingest's %+v", o, wo)
	}
	if len(skips) != 2 {
		t.Errorf("skips told %v, want once by Ingest and once by Take", skips)
	}
	empty := s.Take(in(), nil, &transformers.Result{Format: "fake"}, &res)
	if !empty.Empty || !empty.Malformed() || len(res.Events) != 3 {
		t.Errorf("empty result: %+v, events %v", empty, res.Events)
	}
}
