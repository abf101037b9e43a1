package external

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/external/proto"
)

// TestKinds: every sentinel crosses the wire as itself.
func TestKinds(t *testing.T) {
	for _, k := range kinds {
		e := errorFromProto(errorToProto(&transformers.Error{Item: 2, Line: 3, Path: "$.a", Kind: k.err, Expected: "x", Got: "y", Detail: "d"}))
		if e.Kind != k.err || e.Item != 2 || e.Line != 3 || e.Path != "$.a" || e.Expected != "x" || e.Got != "y" || e.Detail != "d" || e.Format != Format {
			t.Errorf("%v came back as %+v", k.err, e)
		}
	}
	if got := kindFromProto(proto.Kind(999)); got != transformers.ErrValue {
		t.Errorf("unknown wire kind = %v, want ErrValue", got)
	}
	if got := kindToProto(errors.New("other")); got != proto.Kind_KIND_VALUE {
		t.Errorf("foreign kind = %v, want KIND_VALUE", got)
	}
	if !errors.Is(ErrPanic, transformers.ErrValue) {
		t.Error("ErrPanic does not wrap ErrValue")
	}
}

// TestSplitErrors: what a transform function's error means.
func TestSplitErrors(t *testing.T) {
	item := func(i int) error { return &transformers.Error{Item: i, Path: "$", Kind: transformers.ErrMissing} }
	payloadErr := &transformers.Error{Format: "mine", Item: -1, Path: "$", Kind: transformers.ErrSyntax}
	tests := []struct {
		name  string
		err   error
		items int
		whole error // kind of the payload error, nil for none
	}{
		{"one item", item(1), 1, nil},
		{"joined items", errors.Join(item(0), item(2)), 2, nil},
		{"nested joins", errors.Join(errors.Join(item(0), item(1)), item(2)), 3, nil},
		{"wrapped item", fmt.Errorf("ctx: %w", item(1)), 1, nil},
		{"plain error", errors.New("boom"), 0, transformers.ErrValue},
		{"payload-level transformers error", payloadErr, 0, transformers.ErrSyntax},
		{"items and a plain error", errors.Join(item(0), errors.New("boom")), 0, transformers.ErrValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, whole := splitErrors(tt.err)
			if len(items) != tt.items {
				t.Errorf("%d items, want %d", len(items), tt.items)
			}
			for _, e := range items {
				if e.Format != Format {
					t.Errorf("item format %q, want %q", e.Format, Format)
				}
			}
			switch {
			case tt.whole == nil && whole != nil:
				t.Errorf("payload error %v, want none", whole)
			case tt.whole != nil && (whole == nil || !errors.Is(whole, tt.whole) || whole.Item != -1):
				t.Errorf("payload error %v, want kind %v at item -1", whole, tt.whole)
			}
		})
	}
	if _, whole := splitErrors(payloadErr); whole.Format != "mine" {
		t.Errorf("the function's own format was replaced: %q", whole.Format)
	}
}

// TestServerTransform runs the plugin side in-process: the SDK finishes
// events, validates them and isolates a panic to its payload.
func TestServerTransform(t *testing.T) {
	var logs bytes.Buffer
	s := &server{log: slog.New(slog.NewTextHandler(&logs, nil)), fn: func(_ context.Context, in Payload) ([]auditpipe.Event, error) {
		switch string(in.Body) {
		case "panic":
			var none []byte
			_ = none[len(in.Body)] // a runtime panic: index out of range
		case "fail":
			return []auditpipe.Event{{ID: "dropped"}}, errors.New("bad payload")
		}
		return []auditpipe.Event{
			{ID: "ok", Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("X", 3600)), Source: auditpipe.Source{Type: "t"},
				Action: "a", Operation: auditpipe.OperationOther, Outcome: auditpipe.OutcomeSuccess, Actor: auditpipe.Actor{Type: auditpipe.ActorUnknown}},
			{ID: "bad", Details: json.RawMessage(`[1]`)},
		}, nil
	}}
	at := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	req := &proto.TransformRequest{Payloads: []*proto.Payload{
		{Body: []byte("x"), SourceName: "src", ReceivedAtUnixNano: at.UnixNano(), Headers: []*proto.Header{{Name: "X-A", Values: []string{"1", "2"}}}},
		{Body: []byte("panic")},
		{Body: []byte("fail")},
	}}
	resp, err := s.Transform(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	r := resp.Results[0]
	if len(r.Events) != 1 || len(r.Errors) != 1 {
		t.Fatalf("result 0: %d events, errors %v", len(r.Events), r.Errors)
	}
	var ev auditpipe.Event
	if err := eventjson.Decode(r.Events[0], &ev); err != nil {
		t.Fatal(err)
	}
	if ev.SchemaVersion != auditpipe.SchemaVersion || !ev.ObservedTime.Equal(at) || ev.Source.Name != "src" ||
		ev.RawSHA256 != auditpipe.RawSHA256([]byte("x")) || ev.Time.Location() != time.UTC {
		t.Errorf("not finished: %s", r.Events[0])
	}
	if e := r.Errors[0]; e.Kind != proto.Kind_KIND_INVALID_EVENT || e.Item != 1 || !strings.Contains(e.Message, "details: must be a JSON object") {
		t.Errorf("invalid event error %+v", e)
	}
	if pe := resp.Results[1].PayloadError; pe == nil || pe.Kind != proto.Kind_KIND_PANIC || !strings.Contains(pe.Message, "index out of range") {
		t.Errorf("panic: payload error %+v", pe)
	}
	if !strings.Contains(logs.String(), "transform function panicked") {
		t.Errorf("panic not logged: %s", logs.String())
	}
	if r := resp.Results[2]; r.PayloadError == nil || len(r.Events) != 0 || r.PayloadError.Message != "bad payload" {
		t.Errorf("failed payload: %+v", r)
	}

	// A cancelled call stops between payloads and returns no results.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if resp, err := s.Transform(ctx, req); err == nil || resp != nil {
		t.Errorf("cancelled call = %v, %v", resp, err)
	}
}

// TestPluginLogHandler: the plugin's slog lines are what go-plugin's host
// parses as hclog JSON (@level, @message, @timestamp).
func TestPluginLogHandler(t *testing.T) {
	var b bytes.Buffer
	l := slog.New(newPluginLogHandler(&b))
	l.Warn("careful", "n", 1)
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m["@level"] != "warn" || m["@message"] != "careful" || m["n"] != 1.0 {
		t.Errorf("log line %s", b.String())
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000000Z07:00", m["@timestamp"].(string)); err != nil {
		t.Errorf("@timestamp: %v", err)
	}
	if hclog.LevelFromString(m["@level"].(string)) != hclog.Warn {
		t.Error("hclog does not read the level")
	}
}

// TestHCLogAdapter: go-plugin's hclog calls reach slog at the right level,
// with names and implied arguments.
func TestHCLogAdapter(t *testing.T) {
	var b bytes.Buffer
	a := newHCLogAdapter(slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if a.IsDebug() || !a.IsInfo() || a.GetLevel() != hclog.Info {
		t.Errorf("levels: debug %v info %v level %v", a.IsDebug(), a.IsInfo(), a.GetLevel())
	}
	a.Debug("hidden")
	a.Named("plugin").With("pid", 7).Error("exited", "code", 2)
	w := a.StandardWriter(nil)
	fmt.Fprint(w, "first ")
	fmt.Fprint(w, "line\nsecond\n")
	out := b.String()
	for _, s := range []string{"level=ERROR msg=exited", "pid=7", "code=2", "logger=plugin", `msg="first line"`, "msg=second"} {
		if !strings.Contains(out, s) {
			t.Errorf("missing %q in:\n%s", s, out)
		}
	}
	if strings.Contains(out, "hidden") {
		t.Errorf("debug line logged at info:\n%s", out)
	}
}
