package webhook_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/cloudevents"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
	"github.com/auditpipe/auditpipe/outputs/webhook"
	"github.com/auditpipe/auditpipe/testenv/webhooktest"
)

const secret = "s3cret-for-tests"

func newOutput(t testing.TB, cfg webhook.Config) *webhook.Output {
	t.Helper()
	o, err := webhook.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := o.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return o
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// deadIDs returns the ids of the events dlq holds, sorted. Each letter's
// event is decoded strictly, as the sink decodes what it receives.
func deadIDs(t *testing.T, dlq *outputstest.Letters) []string {
	t.Helper()
	var ids []string
	for _, dl := range dlq.All() {
		evs, err := webhooktest.Decode("application/json", dl.Event)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, evs[0].ID)
	}
	slices.Sort(ids)
	return ids
}

func deliverer(t *testing.T, out outputs.Output, dlq outputs.DeadLetterer, maxElapsed time.Duration) *outputs.Deliverer {
	t.Helper()
	d, err := outputs.NewDeliverer(outputs.DelivererConfig{
		Name:        "siem",
		Output:      out,
		DeadLetters: dlq,
		Retry: outputs.RetryConfig{
			InitialInterval: time.Millisecond,
			MaxInterval:     5 * time.Millisecond,
			MaxElapsedTime:  maxElapsed,
			AttemptTimeout:  10 * time.Second,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// byID indexes events' JSON forms by id.
func byID(evs []auditpipe.Event) map[string]string {
	m := make(map[string]string, len(evs))
	for i := range evs {
		m[evs[i].ID] = string(eventjson.Append(nil, &evs[i]))
	}
	return m
}

func sameEvents(t *testing.T, got, want []auditpipe.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("sink holds %d events, want %d", len(got), len(want))
	}
	g, w := byID(got), byID(want)
	for id, js := range w {
		if g[id] != js {
			t.Errorf("event %s:\n got %s\nwant %s", id, g[id], js)
		}
	}
}

// wantKey is the documented batch Idempotency-Key, computed here
// independently of the output.
func wantKey(ids []string) string {
	sum := sha256.Sum256([]byte(strings.Join(ids, "\n") + "\n"))
	return hex.EncodeToString(sum[:])
}

func ndjson(evs []auditpipe.Event) []byte {
	var b []byte
	for i := range evs {
		b = append(eventjson.Append(b, &evs[i]), '\n')
	}
	return b
}

func jsonArray(evs []auditpipe.Event) []byte {
	b := []byte{'['}
	for i := range evs {
		if i > 0 {
			b = append(b, ',')
		}
		b = eventjson.Append(b, &evs[i])
	}
	return append(b, ']')
}

// TestModes sends a batch in each mode and checks at the sink the content
// type, the signature (verified by the sink), the Idempotency-Key, the
// headers and every event.
func TestModes(t *testing.T) {
	evs := outputstest.Events(10)
	for _, tc := range []struct {
		mode        webhook.Mode
		contentType string
		requests    int
		body        func(evs []auditpipe.Event) []byte // the exact body of a batch request
	}{
		{webhook.ModeEvent, "application/json", 10, nil},
		{webhook.ModeNDJSON, "application/x-ndjson", 1, ndjson},
		{webhook.ModeJSONArray, "application/json", 1, jsonArray},
		{webhook.ModeCloudEvents, "application/cloudevents+json", 10, nil},
		{webhook.ModeCloudEventsBatch, "application/cloudevents-batch+json", 1, func(evs []auditpipe.Event) []byte { return cloudevents.AppendBatch(nil, evs) }},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			sink := webhooktest.NewSinkConfig(t, webhooktest.Config{Secret: secret, BearerToken: "tok"})
			out := newOutput(t, webhook.Config{
				URL: sink.URL(), Mode: tc.mode, Secret: secret, BearerToken: "tok",
				Headers: map[string]string{"X-Team": "security", "user-agent": "custom/1"}, Version: "1.2.3",
			})
			if err := out.Write(testCtx(t), evs); err != nil {
				t.Fatal(err)
			}
			sameEvents(t, sink.Events(), evs)
			if n := len(sink.RawEvents()); n != len(evs) {
				t.Errorf("raw view holds %d events, want %d", n, len(evs))
			}
			reqs := sink.Requests()
			if len(reqs) != tc.requests {
				t.Fatalf("%d requests, want %d", len(reqs), tc.requests)
			}
			for _, r := range reqs {
				if r.Status != 200 || !r.SignatureOK {
					t.Errorf("request answered %d (%s), signature verified %v", r.Status, r.Error, r.SignatureOK)
				}
				if r.ContentType != tc.contentType {
					t.Errorf("Content-Type %q, want %q", r.ContentType, tc.contentType)
				}
				if got := r.Header.Get("X-Team"); got != "security" {
					t.Errorf("X-Team %q", got)
				}
				if got := r.Header.Get("User-Agent"); got != "custom/1" {
					t.Errorf("User-Agent %q, want the configured one", got)
				}
				wantKeyOf := r.EventIDs[0]
				if tc.mode.Batched() {
					wantKeyOf = wantKey(r.EventIDs)
					if got := r.Body; !bytes.Equal(got, tc.body(evs)) {
						t.Errorf("body:\n got %s\nwant %s", got, tc.body(evs))
					}
				} else if len(r.EventIDs) != 1 {
					t.Errorf("%d events in one request", len(r.EventIDs))
				}
				if r.IdempotencyKey != wantKeyOf {
					t.Errorf("Idempotency-Key %q, want %q", r.IdempotencyKey, wantKeyOf)
				}
			}
		})
	}
}

func TestUserAgentAndBasicAuth(t *testing.T) {
	sink := webhooktest.NewSink(t)
	out := newOutput(t, webhook.Config{URL: sink.URL(), Version: "1.2.3", BasicAuth: "alice:pa:ss"})
	if err := out.Write(testCtx(t), outputstest.Events(1)); err != nil {
		t.Fatal(err)
	}
	r := sink.Requests()[0]
	if got := r.Header.Get("User-Agent"); got != "auditpipe/1.2.3" {
		t.Errorf("User-Agent %q", got)
	}
	if got := r.Header.Get("Authorization"); got != "Basic YWxpY2U6cGE6c3M=" {
		t.Errorf("Authorization %q", got)
	}
	if got := r.Header.Get(webhooktest.SignatureHeader); got != "" {
		t.Errorf("signed without a secret: %q", got)
	}
}

// TestSplitsAtMaxBatchBytes: a batch larger than max_batch_bytes goes in
// several requests, each within the limit, every event once and in order.
func TestSplitsAtMaxBatchBytes(t *testing.T) {
	evs := outputstest.Events(20)
	one := len(cloudevents.AppendStructured(nil, &evs[0]))
	for _, tc := range []struct {
		name     string
		mode     webhook.Mode
		max      int
		requests int // 0: more than one
	}{
		{"ndjson", webhook.ModeNDJSON, 3 * one, 0},
		{"json_array", webhook.ModeJSONArray, 3 * one, 0},
		{"cloudevents_batch", webhook.ModeCloudEventsBatch, 3*one + 10, 0},
		{"oversized events go alone", webhook.ModeNDJSON, 100, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := webhooktest.NewSinkConfig(t, webhooktest.Config{Secret: secret})
			out := newOutput(t, webhook.Config{URL: sink.URL(), Mode: tc.mode, Secret: secret, MaxBatchBytes: tc.max})
			if err := out.Write(testCtx(t), evs); err != nil {
				t.Fatal(err)
			}
			reqs := sink.Requests()
			if tc.requests != 0 && len(reqs) != tc.requests || len(reqs) < 2 {
				t.Fatalf("%d requests", len(reqs))
			}
			var ids []string
			keys := map[string]bool{}
			for _, r := range reqs {
				if r.BodyBytes > tc.max && len(r.EventIDs) > 1 {
					t.Errorf("body of %d bytes with %d events, max %d", r.BodyBytes, len(r.EventIDs), tc.max)
				}
				if !r.SignatureOK || r.IdempotencyKey != wantKey(r.EventIDs) || keys[r.IdempotencyKey] {
					t.Errorf("request signature %v, key %q", r.SignatureOK, r.IdempotencyKey)
				}
				keys[r.IdempotencyKey] = true
				ids = append(ids, r.EventIDs...)
			}
			if !slices.Equal(ids, outputstest.IDs(evs)) {
				t.Errorf("events arrived as %v", ids)
			}
		})
	}
}

// TestPeerDownThenUp: the endpoint refuses connections when delivery
// starts; once it is up the Deliverer delivers everything, once.
func TestPeerDownThenUp(t *testing.T) {
	for _, mode := range []webhook.Mode{webhook.ModeNDJSON, webhook.ModeEvent} {
		t.Run(string(mode), func(t *testing.T) {
			addr := outputstest.FreeAddr(t)
			out := newOutput(t, webhook.Config{URL: "http://" + addr + "/webhook", Mode: mode, Secret: secret})
			dlq := &outputstest.Letters{}
			d := deliverer(t, out, dlq, 0)
			evs := outputstest.Events(20)
			type result struct {
				rep outputs.Report
				err error
			}
			done := make(chan result, 1)
			go func() {
				rep, err := d.Deliver(testCtx(t), evs)
				done <- result{rep, err}
			}()
			outputstest.Eventually(t, 20*time.Second, "failed attempts", func() bool { return d.Stats().FailedAttempts >= 2 })
			if err := d.Health(); err == nil || !strings.Contains(err.Error(), "refused") {
				t.Errorf("health while down: %v", err)
			}
			sink := webhooktest.NewSinkConfig(t, webhooktest.Config{Addr: addr, Secret: secret})
			res := <-done
			if res.err != nil {
				t.Fatal(res.err)
			}
			if res.rep.Delivered != len(evs) || res.rep.DeadLettered != 0 {
				t.Errorf("report %+v", res.rep)
			}
			sameEvents(t, sink.Events(), evs)
			if n := len(sink.RawEvents()); n != len(evs) {
				t.Errorf("%d events arrived, want each of %d once", n, len(evs))
			}
			if d.Health() != nil || len(deadIDs(t, dlq)) != 0 {
				t.Errorf("health %v, dead letters %v", d.Health(), deadIDs(t, dlq))
			}
		})
	}
}

// TestRetryableStatuses: 5xx, 429 and 408 are retryable, carrying the
// Retry-After the sink sent; the next attempt delivers.
func TestRetryableStatuses(t *testing.T) {
	for _, tc := range []struct {
		name       string
		mode       webhook.Mode
		events     int
		statuses   []int
		retryAfter string
		want       time.Duration
	}{
		{"503 ndjson", webhook.ModeNDJSON, 5, []int{503}, "7", 7 * time.Second},
		{"429 json_array", webhook.ModeJSONArray, 5, []int{429}, "3", 3 * time.Second},
		{"408 without Retry-After", webhook.ModeNDJSON, 5, []int{408}, "", 0},
		{"500 cloudevents_batch", webhook.ModeCloudEventsBatch, 5, []int{500}, "1", time.Second},
		{"503 event, one event", webhook.ModeEvent, 1, []int{503}, "5", 5 * time.Second},
		// One request at a time, so that the first failure stops the
		// rest: the whole Write fails alike.
		{"503 event, three events", webhook.ModeEvent, 3, []int{503}, "2", 2 * time.Second},
		{"429 cloudevents", webhook.ModeCloudEvents, 3, []int{429}, "4", 4 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := webhooktest.NewSink(t)
			out := newOutput(t, webhook.Config{URL: sink.URL(), Mode: tc.mode, MaxConcurrency: 1})
			evs := outputstest.Events(tc.events)
			sink.SetStatusSequence(tc.statuses...)
			sink.SetRetryAfter(tc.retryAfter)
			err := out.Write(testCtx(t), evs)
			if err == nil {
				t.Fatal("no error")
			}
			if outputs.IsPermanent(err) {
				t.Errorf("permanent: %v", err)
			}
			var pe *outputs.PartialError
			if errors.As(err, &pe) {
				t.Errorf("every request failed alike, yet a partial error: %v", err)
			}
			var se *outputs.StatusError
			if !errors.As(err, &se) || se.Code != tc.statuses[0] {
				t.Errorf("error %v, want status %d", err, tc.statuses[0])
			}
			if got, ok := outputs.RetryAfterOf(err); got != tc.want || ok != (tc.want > 0) {
				t.Errorf("RetryAfterOf = %s, %v; want %s", got, ok, tc.want)
			}
			if len(sink.RawEvents()) != 0 {
				t.Error("events accepted with the failure")
			}
			if err := out.Write(testCtx(t), evs); err != nil {
				t.Fatalf("second attempt: %v", err)
			}
			sameEvents(t, sink.RawEvents(), evs)
		})
	}
}

// TestStopsAfterEndpointFailure: once a request fails for a reason of the
// endpoint's (here 503), the rest of the Write is not sent: it would fail
// alike, and a throttled endpoint asked for fewer requests.
func TestStopsAfterEndpointFailure(t *testing.T) {
	evs := outputstest.Events(12)
	for _, tc := range []struct {
		name string
		cfg  webhook.Config
	}{
		{"ndjson in several requests", webhook.Config{Mode: webhook.ModeNDJSON, MaxBatchBytes: 2000}},
		{"event one at a time", webhook.Config{Mode: webhook.ModeEvent, MaxConcurrency: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := webhooktest.NewSink(t)
			cfg := tc.cfg
			cfg.URL = sink.URL()
			out := newOutput(t, cfg)
			sink.SetStatusSequence(503)
			sink.SetRetryAfter("2")
			err := out.Write(testCtx(t), evs)
			var pe *outputs.PartialError
			if err == nil || errors.As(err, &pe) || outputs.IsPermanent(err) {
				t.Fatalf("Write: %v, want one retryable batch error", err)
			}
			if ra, _ := outputs.RetryAfterOf(err); ra != 2*time.Second {
				t.Errorf("Retry-After %s", ra)
			}
			if n := sink.Stats().Requests; n != 1 {
				t.Errorf("%d requests after the endpoint failed, want 1", n)
			}
			if err := out.Write(testCtx(t), evs); err != nil {
				t.Fatal(err)
			}
			sameEvents(t, sink.RawEvents(), evs)
		})
	}

	// After some events are delivered, the rest fail as a partial error.
	sink := webhooktest.NewSink(t)
	out := newOutput(t, webhook.Config{URL: sink.URL(), MaxBatchBytes: 2000})
	sink.SetStatusSequence(200, 429)
	err := out.Write(testCtx(t), evs)
	var pe *outputs.PartialError
	if !errors.As(err, &pe) {
		t.Fatalf("Write: %v, want a partial error", err)
	}
	delivered := len(sink.RawEvents())
	if delivered == 0 || len(pe.Failures) != len(evs)-delivered || sink.Stats().Requests != 2 {
		t.Errorf("%d delivered, %d failed, %d requests", delivered, len(pe.Failures), sink.Stats().Requests)
	}
	for _, f := range pe.Failures {
		if outputs.IsPermanent(f.Err) || f.Index < delivered {
			t.Errorf("failure %d: %v", f.Index, f.Err)
		}
	}
}

// TestRejectedEvents: a 4xx rejection fails only the events of the
// rejected request; the Deliverer dead-letters them and delivers the rest
// once.
func TestRejectedEvents(t *testing.T) {
	evs := outputstest.Events(12)
	oneLine := len(eventjson.Append(nil, &evs[0])) + 1
	for _, tc := range []struct {
		name   string
		mode   webhook.Mode
		max    int
		status int
		reject []int
	}{
		{"event 400", webhook.ModeEvent, 0, 400, []int{2, 5}},
		{"event 422", webhook.ModeEvent, 0, 422, []int{0, 11}},
		{"cloudevents 400", webhook.ModeCloudEvents, 0, 400, []int{7}},
		// Batches of about three events: the rejected event takes its
		// request's companions along.
		{"ndjson 400", webhook.ModeNDJSON, 3*oneLine + 10, 400, []int{4}},
		{"json_array 413", webhook.ModeJSONArray, 3*oneLine + 10, 413, []int{9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := webhooktest.NewSink(t)
			out := newOutput(t, webhook.Config{URL: sink.URL(), Mode: tc.mode, MaxBatchBytes: tc.max})
			var rejected []string
			for _, i := range tc.reject {
				rejected = append(rejected, evs[i].ID)
			}
			sink.Reject(tc.status, rejected...)
			dlq := &outputstest.Letters{}
			rep, err := deliverer(t, out, dlq, 0).Deliver(testCtx(t), evs)
			if err != nil {
				t.Fatal(err)
			}

			// The events the sink refused: the rejected ones, or in batch
			// modes everything in the requests holding them.
			var refused []string
			for _, r := range sink.Requests() {
				if r.Status == tc.status {
					refused = append(refused, r.EventIDs...)
				}
			}
			slices.Sort(refused)
			if !tc.mode.Batched() {
				slices.Sort(rejected)
				if !slices.Equal(refused, rejected) {
					t.Errorf("refused %v, want %v", refused, rejected)
				}
			} else if len(refused) < 2 {
				t.Errorf("batch mode refused only %v", refused)
			}
			if got := deadIDs(t, dlq); !slices.Equal(got, refused) {
				t.Errorf("dead-lettered %v, want %v", got, refused)
			}
			for _, l := range dlq.All() {
				if !strings.Contains(l.Error, fmt.Sprintf("HTTP %d", tc.status)) || l.Output != "siem" {
					t.Errorf("dead letter %+v", l)
				}
			}
			var rest []auditpipe.Event
			for i := range evs {
				if !slices.Contains(refused, evs[i].ID) {
					rest = append(rest, evs[i])
				}
			}
			sameEvents(t, sink.RawEvents(), rest) // each once: nothing re-sent
			if rep.Delivered != len(rest) || rep.DeadLettered != len(refused) || rep.Attempts != 1 {
				t.Errorf("report %+v", rep)
			}
		})
	}
}

// TestCredentialsRejected: a wrong secret or token is a retryable error
// that says what is wrong; the Deliverer keeps the data, and a fixed
// configuration delivers it.
func TestCredentialsRejected(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  webhook.Config
	}{
		{"wrong secret", webhook.Config{Secret: "wrong", BearerToken: "tok"}},
		{"no secret", webhook.Config{BearerToken: "tok"}},
		{"wrong token", webhook.Config{Secret: secret, BearerToken: "wrong"}},
		{"no token", webhook.Config{Secret: secret}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := webhooktest.NewSinkConfig(t, webhooktest.Config{Secret: secret, BearerToken: "tok"})
			cfg := tc.cfg
			cfg.URL = sink.URL()
			out := newOutput(t, cfg)
			evs := outputstest.Events(5)

			err := out.Write(testCtx(t), evs)
			var se *outputs.StatusError
			if err == nil || outputs.IsPermanent(err) || !errors.As(err, &se) || se.Code != 401 ||
				!strings.Contains(err.Error(), "credentials rejected") {
				t.Fatalf("Write: %v, want a retryable credentials error with status 401", err)
			}

			dlq := &outputstest.Letters{}
			d := deliverer(t, out, dlq, 50*time.Millisecond)
			_, err = d.Deliver(testCtx(t), evs)
			var ue *outputs.UndeliveredError
			if !errors.As(err, &ue) || ue.Permanent || len(ue.Events) != len(evs) {
				t.Fatalf("Deliver: %v, want every event handed back", err)
			}
			if d.Health() == nil || len(deadIDs(t, dlq)) != 0 || len(sink.RawEvents()) != 0 {
				t.Errorf("health %v, dead letters %v, events at sink %d", d.Health(), deadIDs(t, dlq), len(sink.RawEvents()))
			}
			for _, r := range sink.Requests() {
				if r.Status != 401 {
					t.Errorf("sink answered %d", r.Status)
				}
			}

			fixed := newOutput(t, webhook.Config{URL: sink.URL(), Secret: secret, BearerToken: "tok"})
			if _, err := deliverer(t, fixed, dlq, 0).Deliver(testCtx(t), ue.Events); err != nil {
				t.Fatal(err)
			}
			sameEvents(t, sink.Events(), evs)
		})
	}
}

// TestSlowPeer: a peer slower than timeout fails the attempt, retryably,
// with an error naming the timeout, and leaves no goroutine behind.
func TestSlowPeer(t *testing.T) {
	for _, mode := range []webhook.Mode{webhook.ModeNDJSON, webhook.ModeEvent, webhook.ModeCloudEventsBatch} {
		t.Run(string(mode), func(t *testing.T) {
			sink := webhooktest.NewSink(t)
			sink.SetDelay(time.Hour)
			baseline := runtime.NumGoroutine()
			out, err := webhook.New(context.Background(), webhook.Config{URL: sink.URL(), Mode: mode, Timeout: 50 * time.Millisecond}, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = out.Write(testCtx(t), outputstest.Events(6))
			if err == nil || outputs.IsPermanent(err) || !errors.Is(err, context.DeadlineExceeded) ||
				!strings.Contains(err.Error(), "no answer within timeout 50ms") {
				t.Errorf("Write: %v, want a retryable timeout", err)
			}
			if err := out.Close(context.Background()); err != nil {
				t.Error(err)
			}
			// The sink still runs: its handlers, released by the closed
			// connections, count too.
			outputstest.CheckNoLeak(t, 10*time.Second, baseline)
			if n := len(sink.RawEvents()); n != 0 {
				t.Errorf("%d events accepted after the client gave up", n)
			}
		})
	}
}

// TestCloseCancelsWhenItMustStop: Close waits for a Write in progress, and
// when its context ends first it cancels the request instead of leaving it
// running.
func TestCloseCancelsWhenItMustStop(t *testing.T) {
	baseline := runtime.NumGoroutine()
	sink, err := webhooktest.Start(webhooktest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sink.SetDelay(time.Hour)
	out, err := webhook.New(context.Background(), webhook.Config{URL: sink.URL(), Mode: webhook.ModeEvent, Timeout: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeErr := make(chan error, 1)
	go func() { writeErr <- out.Write(context.Background(), outputstest.Events(3)) }()
	if err := sink.WaitStats(testCtx(t), func(s webhooktest.Stats) bool { return s.InFlight == 3 }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := out.Close(ctx); err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Errorf("Close: %v, want it to report cancelled requests", err)
	}
	if err := <-writeErr; err == nil || outputs.IsPermanent(err) || !strings.Contains(err.Error(), "output closing") {
		t.Errorf("Write: %v, want a retryable error saying the output closes", err)
	}
	if err := out.Write(context.Background(), outputstest.Events(1)); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Write after Close: %v", err)
	}
	if err := out.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := sink.Close(); err != nil {
		t.Error(err)
	}
	outputstest.CheckNoLeak(t, 10*time.Second, baseline)
}

// TestNoLeakAfterUse: every mode over TLS (HTTP/2) and plain HTTP leaves
// no goroutine behind once output and sink are closed.
func TestNoLeakAfterUse(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			sink := webhooktest.NewSinkConfig(t, webhooktest.Config{TLS: useTLS, Secret: secret})
			// Counted with the sink running, so that connections the
			// output left open (and the sink's goroutines serving them)
			// show.
			baseline := runtime.NumGoroutine()
			var tlsCfg outputs.TLSConfig
			if useTLS {
				tlsCfg.CAFile = sink.CAFile()
			}
			for _, mode := range webhook.Modes() {
				out, err := webhook.New(context.Background(), webhook.Config{URL: sink.URL(), Mode: mode, Secret: secret, TLS: tlsCfg}, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := out.Write(testCtx(t), outputstest.Events(10)); err != nil {
					t.Error(err)
				}
				if err := out.Close(context.Background()); err != nil {
					t.Error(err)
				}
			}
			if n := len(sink.Events()); n != 10 {
				t.Errorf("%d events", n)
			}
			outputstest.CheckNoLeak(t, 10*time.Second, baseline)
		})
	}
}

// TestSameBatchTwice: a re-sent batch carries the same Idempotency-Keys,
// so the receiver (here the sink's de-duplicated view) keeps one copy.
func TestSameBatchTwice(t *testing.T) {
	for _, mode := range webhook.Modes() {
		t.Run(string(mode), func(t *testing.T) {
			sink := webhooktest.NewSink(t)
			out := newOutput(t, webhook.Config{URL: sink.URL(), Mode: mode, MaxBatchBytes: 4000})
			evs := outputstest.Events(9)
			var keys [2][]string
			for i := range keys {
				if err := out.Write(testCtx(t), evs); err != nil {
					t.Fatal(err)
				}
				for _, r := range sink.Requests() {
					keys[i] = append(keys[i], r.IdempotencyKey)
				}
				sink.Reset()
			}
			slices.Sort(keys[0])
			slices.Sort(keys[1])
			if !slices.Equal(keys[0], keys[1]) || len(keys[0]) == 0 || keys[0][0] == "" {
				t.Errorf("keys differ:\n%v\n%v", keys[0], keys[1])
			}
		})
	}
	sink := webhooktest.NewSink(t)
	out := newOutput(t, webhook.Config{URL: sink.URL()})
	evs := outputstest.Events(9)
	for range 2 {
		if err := out.Write(testCtx(t), evs); err != nil {
			t.Fatal(err)
		}
	}
	sameEvents(t, sink.Events(), evs)
	if n := len(sink.RawEvents()); n != 2*len(evs) {
		t.Errorf("raw view: %d events, want %d", n, 2*len(evs))
	}
}

func TestTLS(t *testing.T) {
	sink := webhooktest.NewSinkConfig(t, webhooktest.Config{TLS: true, Secret: secret})
	evs := outputstest.Events(3)
	for _, tc := range []struct {
		name string
		tls  outputs.TLSConfig
		err  string
	}{
		{"ca_file", outputs.TLSConfig{CAFile: sink.CAFile()}, ""},
		{"ca_file and TLS 1.3", outputs.TLSConfig{CAFile: sink.CAFile(), MinVersion: "1.3"}, ""},
		{"insecure_skip_verify", outputs.TLSConfig{InsecureSkipVerify: true}, ""},
		{"system roots", outputs.TLSConfig{}, "certificate"},
		{"wrong server_name", outputs.TLSConfig{CAFile: sink.CAFile(), ServerName: "siem.example.com"}, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink.Reset()
			out := newOutput(t, webhook.Config{URL: sink.URL(), Secret: secret, TLS: tc.tls})
			err := out.Write(testCtx(t), evs)
			if tc.err != "" {
				if err == nil || outputs.IsPermanent(err) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Write: %v, want a retryable error about the %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sameEvents(t, sink.Events(), evs)
		})
	}
}

// TestMaxConcurrency: the event modes never have more requests in flight
// than max_concurrency, even across concurrent Writes.
func TestMaxConcurrency(t *testing.T) {
	sink := webhooktest.NewSink(t)
	sink.SetDelay(5 * time.Millisecond)
	out := newOutput(t, webhook.Config{URL: sink.URL(), Mode: webhook.ModeEvent, MaxConcurrency: 2})
	evs := outputstest.Events(24)
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			if err := out.Write(testCtx(t), evs[w*8:(w+1)*8]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if peak := sink.Stats().PeakInFlight; peak > 2 {
		t.Errorf("%d requests in flight at once, max_concurrency 2", peak)
	}
	sameEvents(t, sink.Events(), evs)
}

func TestConcurrentWrites(t *testing.T) {
	sink := webhooktest.NewSinkConfig(t, webhooktest.Config{Secret: secret})
	out := newOutput(t, webhook.Config{URL: sink.URL(), Secret: secret, MaxBatchBytes: 8 << 10})
	evs := outputstest.Events(200)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			if err := out.Write(testCtx(t), evs[w*25:(w+1)*25]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	sameEvents(t, sink.Events(), evs)
	if n := len(sink.RawEvents()); n != len(evs) {
		t.Errorf("%d events arrived, want %d", n, len(evs))
	}
	for _, r := range sink.Requests() {
		if !r.SignatureOK {
			t.Error("a request's signature did not verify")
		}
	}
}

// TestRedirectNotFollowed: a redirect is a retryable configuration error,
// not a reason to POST elsewhere or to drop the data.
func TestRedirectNotFollowed(t *testing.T) {
	for _, code := range []int{301, 302, 307, 308} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			sink := webhooktest.NewSink(t)
			out := newOutput(t, webhook.Config{URL: sink.URL()})
			sink.SetStatusSequence(code)
			err := out.Write(testCtx(t), outputstest.Events(2))
			if err == nil || outputs.IsPermanent(err) || !strings.Contains(err.Error(), "redirects are not followed") {
				t.Errorf("Write: %v", err)
			}
			if n := sink.Stats().Requests; n != 1 {
				t.Errorf("%d requests", n)
			}
		})
	}
}

// TestErrorsHideTheURLPath: collectors often put their token in the path
// or query; errors show scheme and host only.
func TestErrorsHideTheURLPath(t *testing.T) {
	sink := webhooktest.NewSink(t)
	down := outputstest.FreeAddr(t)
	for _, tc := range []struct {
		name, url string
		status    int
	}{
		{"refused", "http://" + down + "/services/TOKEN-abc?key=TOKEN-def", 0},
		{"503", sink.URL() + "/TOKEN-abc?key=TOKEN-def", 503},
		{"400", sink.URL() + "/TOKEN-abc?key=TOKEN-def", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := newOutput(t, webhook.Config{URL: tc.url})
			if tc.status != 0 {
				sink.SetStatusSequence(tc.status)
			}
			err := out.Write(testCtx(t), outputstest.Events(1))
			if err == nil || strings.Contains(err.Error(), "TOKEN") {
				t.Errorf("Write: %v", err)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  webhook.Config
		err  string // "" means valid
	}{
		{"minimal", webhook.Config{URL: "https://siem.example.com/in"}, ""},
		{"everything", webhook.Config{URL: "https://siem.example.com/in", Mode: webhook.ModeCloudEvents, Secret: "s",
			BearerToken: "t", Headers: map[string]string{"X-A": "b", "User-Agent": "me"}, Timeout: time.Second,
			MaxBatchBytes: 1000, MaxConcurrency: 9, TLS: outputs.TLSConfig{MinVersion: "1.3"}}, ""},
		{"no url", webhook.Config{}, "url: required"},
		{"bad scheme", webhook.Config{URL: "ftp://x"}, "url: scheme"},
		{"no host", webhook.Config{URL: "http:///path"}, "url: no host"},
		{"bad url hides itself", webhook.Config{URL: "http://x/%zzTOKEN"}, "url: not a valid URL"},
		{"credentials in url", webhook.Config{URL: "https://u:p@x/"}, "url: credentials"},
		{"mode", webhook.Config{URL: "http://x", Mode: "xml"}, "mode:"},
		{"both auths", webhook.Config{URL: "http://x", BearerToken: "t", BasicAuth: "u:p"}, "bearer_token, basic_auth"},
		{"basic_auth without colon", webhook.Config{URL: "http://x", BasicAuth: "u"}, "basic_auth: want user:password"},
		{"own header", webhook.Config{URL: "http://x", Headers: map[string]string{"idempotency-key": "k"}}, "headers: Idempotency-Key is set by the output"},
		{"signature header", webhook.Config{URL: "http://x", Headers: map[string]string{"X-Signature-256": "k"}}, "headers: X-Signature-256"},
		{"authorization twice", webhook.Config{URL: "http://x", BearerToken: "t", Headers: map[string]string{"Authorization": "x"}}, "headers: Authorization"},
		{"bad header name", webhook.Config{URL: "http://x", Headers: map[string]string{"X A": "b"}}, "headers:"},
		{"header injection", webhook.Config{URL: "http://x", Headers: map[string]string{"X-A": "b\r\nX-B: c"}}, "line break"},
		{"tls over http", webhook.Config{URL: "http://x", TLS: outputs.TLSConfig{CAFile: "ca.pem"}}, "tls: set, but url is http://"},
		{"tls half a key pair", webhook.Config{URL: "https://x", TLS: outputs.TLSConfig{CertFile: "c.pem"}}, "tls.cert_file"},
		{"timeout", webhook.Config{URL: "http://x", Timeout: -1}, "timeout:"},
		{"max_batch_bytes", webhook.Config{URL: "http://x", MaxBatchBytes: -1}, "max_batch_bytes:"},
		{"max_concurrency", webhook.Config{URL: "http://x", MaxConcurrency: -1}, "max_concurrency:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				o, err := webhook.New(context.Background(), tc.cfg, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := o.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) && !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Validate: %v, want %q", err, tc.err)
			}
			if strings.Contains(err.Error(), "TOKEN") {
				t.Errorf("error shows the URL: %v", err)
			}
			if _, err := webhook.New(context.Background(), tc.cfg, nil); err == nil || !strings.HasPrefix(err.Error(), "webhook: ") {
				t.Errorf("New: %v", err)
			}
		})
	}

	got := webhook.Config{URL: "http://x"}.WithDefaults()
	want := webhook.Config{URL: "http://x", Mode: webhook.ModeNDJSON, Timeout: 10 * time.Second,
		MaxBatchBytes: 1 << 20, MaxConcurrency: 4, Version: "dev"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("WithDefaults:\n got %+v\nwant %+v", got, want)
	}
	if _, err := webhook.New(context.Background(), webhook.Config{URL: "https://x", TLS: outputs.TLSConfig{CAFile: "/nonexistent.pem"}}, nil); err == nil ||
		!strings.Contains(err.Error(), "tls.ca_file") {
		t.Errorf("New with a missing CA file: %v", err)
	}
}

// BenchmarkWrite posts batches of 100 events to the sink in each mode.
func BenchmarkWrite(b *testing.B) {
	const batch = 100
	evs := outputstest.Events(batch)
	for _, mode := range webhook.Modes() {
		b.Run(string(mode), func(b *testing.B) {
			sink := webhooktest.NewSinkConfig(b, webhooktest.Config{Secret: secret, CountOnly: true})
			out := newOutput(b, webhook.Config{URL: sink.URL(), Mode: mode, Secret: secret})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := out.Write(ctx, evs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
			if st := sink.Stats(); st.Accepted != st.Requests {
				b.Fatalf("sink accepted %d of %d requests", st.Accepted, st.Requests)
			}
		})
	}
}
