package outputs_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
)

// scripted is an Output whose answers are given per attempt, as a function
// of the batch it receives. It records every batch (by ids) so tests can
// check that only failed events are re-sent.
type scripted struct {
	mu       sync.Mutex
	attempts [][]string
	answer   func(attempt int, batch []auditpipe.Event) error
	closed   bool
}

func (s *scripted) Write(_ context.Context, batch []auditpipe.Event) error {
	s.mu.Lock()
	n := len(s.attempts)
	s.attempts = append(s.attempts, outputstest.IDs(batch))
	s.mu.Unlock()
	return s.answer(n, batch)
}

func (s *scripted) Close(context.Context) error { s.closed = true; return nil }

func fast() outputs.RetryConfig {
	return outputs.RetryConfig{InitialInterval: time.Microsecond, MaxInterval: time.Millisecond, AttemptTimeout: time.Second}
}

func newDeliverer(t *testing.T, out outputs.Output, dl outputs.DeadLetterer, rc outputs.RetryConfig) *outputs.Deliverer {
	t.Helper()
	d, err := outputs.NewDeliverer(outputs.DelivererConfig{Name: "test", Output: out, Retry: rc, DeadLetters: dl,
		Now: func() time.Time { return outputstest.Base }})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDeliverRetriesOnlyFailedEvents(t *testing.T) {
	evs := outputstest.Events(6)
	out := &scripted{answer: func(attempt int, batch []auditpipe.Event) error {
		switch attempt {
		case 0: // events 1 and 4 throttled, event 2 rejected for good
			return &outputs.PartialError{Failures: []outputs.Failure{
				{Index: 1, Err: errors.New("429")},
				{Index: 2, Err: outputs.Permanent(errors.New("mapping"))},
				{Index: 4, Err: errors.New("503")},
			}}
		case 1: // of the two re-sent, the second fails again
			return &outputs.PartialError{Failures: []outputs.Failure{{Index: 1, Err: errors.New("503")}}}
		default:
			return nil
		}
	}}
	dl := &outputstest.Letters{}
	d := newDeliverer(t, out, dl, fast())
	rep, err := d.Deliver(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	ids := outputstest.IDs(evs)
	want := [][]string{ids, {ids[1], ids[4]}, {ids[4]}}
	if !slices.EqualFunc(out.attempts, want, slices.Equal) {
		t.Errorf("attempts:\n got %v\nwant %v", out.attempts, want)
	}
	if rep != (outputs.Report{Delivered: 5, DeadLettered: 1, Attempts: 3, Retried: 3}) {
		t.Errorf("report = %+v", rep)
	}
	got := dl.All()
	if len(got) != 1 || got[0].Output != "test" || got[0].Error != "mapping" || !got[0].Time.Equal(outputstest.Base) {
		t.Fatalf("dead letters = %+v", got)
	}
	if want := eventjson.Append(nil, &evs[2]); string(got[0].Event) != string(want) {
		t.Errorf("dead letter event = %s, want %s", got[0].Event, want)
	}
	if s := d.Stats(); s != (outputs.Stats{Delivered: 5, Retried: 3, DeadLettered: 1, FailedAttempts: 2}) {
		t.Errorf("stats = %+v", s)
	}
}

func TestDeliverClassifiesWholeBatchErrors(t *testing.T) {
	for _, tc := range []struct {
		name             string
		err              error
		wantDead, wantOK int
	}{
		{"permanent", outputs.Permanent(errors.New("400")), 3, 0},
		{"retryable then ok", errors.New("connection refused"), 0, 3},
		{"http 400", outputs.ClassifyHTTP(400, nil, "bad"), 3, 0},
		{"http 401 is retryable", outputs.ClassifyHTTP(401, nil, ""), 0, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := &scripted{answer: func(attempt int, _ []auditpipe.Event) error {
				if attempt == 0 {
					return tc.err
				}
				return nil
			}}
			dl := &outputstest.Letters{}
			rep, err := newDeliverer(t, out, dl, fast()).Deliver(context.Background(), outputstest.Events(3))
			if err != nil {
				t.Fatal(err)
			}
			if rep.DeadLettered != tc.wantDead || rep.Delivered != tc.wantOK || len(dl.All()) != tc.wantDead {
				t.Errorf("report %+v, %d letters; want %d dead, %d delivered", rep, len(dl.All()), tc.wantDead, tc.wantOK)
			}
		})
	}
}

func TestDeliverHealthFollowsWholeBatchFailures(t *testing.T) {
	down := errors.New("dial tcp: connection refused")
	release := make(chan struct{})
	out := &scripted{answer: func(attempt int, _ []auditpipe.Event) error {
		if attempt == 0 {
			return down
		}
		<-release
		return nil
	}}
	d := newDeliverer(t, out, &outputstest.Letters{}, fast())
	done := make(chan error)
	go func() { _, err := d.Deliver(context.Background(), outputstest.Events(2)); done <- err }()
	// The second attempt blocks on release, so health is observed between
	// the failed first attempt and the successful second.
	deadline := time.Now().Add(5 * time.Second)
	for !errors.Is(d.Health(), down) {
		if time.Now().After(deadline) {
			t.Fatalf("Health() = %v, want %v", d.Health(), down)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := d.Health(); err != nil {
		t.Errorf("Health() after success = %v", err)
	}
}

func TestDeliverGivesBackWhatIsLeft(t *testing.T) {
	evs := outputstest.Events(4)
	// The last event of every batch fails: at first evs[3], then, re-sent
	// alone, evs[3] again.
	partial := func(_ int, b []auditpipe.Event) error {
		return &outputs.PartialError{Failures: []outputs.Failure{{Index: len(b) - 1, Err: errors.New("503")}}}
	}
	t.Run("max elapsed time", func(t *testing.T) {
		rc := fast()
		rc.MaxElapsedTime = 20 * time.Millisecond
		rep, err := newDeliverer(t, &scripted{answer: partial}, &outputstest.Letters{}, rc).Deliver(context.Background(), evs)
		var ue *outputs.UndeliveredError
		if !errors.As(err, &ue) || ue.Permanent {
			t.Fatalf("err = %v, want a retryable *UndeliveredError", err)
		}
		if got := outputstest.IDs(ue.Events); !slices.Equal(got, []string{evs[3].ID}) {
			t.Errorf("left = %v, want [%s]", got, evs[3].ID)
		}
		if rep.Delivered != 3 {
			t.Errorf("delivered = %d, want 3", rep.Delivered)
		}
	})
	t.Run("context ends", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		rc := fast()
		rc.InitialInterval, rc.MaxInterval = time.Hour, time.Hour
		out := &scripted{answer: func(a int, b []auditpipe.Event) error { cancel(); return partial(a, b) }}
		_, err := newDeliverer(t, out, &outputstest.Letters{}, rc).Deliver(ctx, evs)
		var ue *outputs.UndeliveredError
		if !errors.As(err, &ue) || len(ue.Events) != 1 || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want *UndeliveredError with 1 event wrapping context.Canceled", err)
		}
	})
	t.Run("no dead-letter store", func(t *testing.T) {
		out := &scripted{answer: func(int, []auditpipe.Event) error {
			return &outputs.PartialError{Failures: []outputs.Failure{
				{Index: 0, Err: outputs.Permanent(errors.New("400"))}, {Index: 1, Err: errors.New("503")}}}
		}}
		_, err := newDeliverer(t, out, nil, fast()).Deliver(context.Background(), evs)
		var ue *outputs.UndeliveredError
		if !errors.As(err, &ue) || !ue.Permanent {
			t.Fatalf("err = %v, want permanent *UndeliveredError", err)
		}
		if got := outputstest.IDs(ue.Events); !slices.Equal(got, []string{evs[0].ID, evs[1].ID}) {
			t.Errorf("left = %v", got)
		}
	})
	t.Run("dead-letter store fails", func(t *testing.T) {
		out := &scripted{answer: func(int, []auditpipe.Event) error { return outputs.Permanent(errors.New("400")) }}
		_, err := newDeliverer(t, out, &outputstest.Letters{Err: errors.New("disk full")}, fast()).Deliver(context.Background(), evs)
		var ue *outputs.UndeliveredError
		if !errors.As(err, &ue) || len(ue.Events) != 4 {
			t.Fatalf("err = %v, want all 4 events handed back", err)
		}
	})
}

func TestDeliverHonoursRetryAfter(t *testing.T) {
	// MaxElapsedTime is far shorter than the Retry-After: if the wait
	// honoured it, the context (which ends at 50ms) ends first; if it were
	// ignored, the tiny back-off would retry and deliver.
	out := &scripted{answer: func(attempt int, _ []auditpipe.Event) error {
		if attempt == 0 {
			return outputs.RetryAfter(errors.New("429"), time.Hour)
		}
		return nil
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := newDeliverer(t, out, &outputstest.Letters{}, fast()).Deliver(ctx, outputstest.Events(1))
	if !errors.Is(err, context.DeadlineExceeded) || len(out.attempts) != 1 {
		t.Fatalf("err = %v after %d attempts; want the hour-long Retry-After to outlast the context", err, len(out.attempts))
	}
}

func TestDeliverIgnoresBogusFailureIndexes(t *testing.T) {
	out := &scripted{answer: func(attempt int, _ []auditpipe.Event) error {
		if attempt == 0 {
			return &outputs.PartialError{Failures: []outputs.Failure{{Index: -1, Err: errors.New("x")}, {Index: 7, Err: errors.New("x")},
				{Index: 0, Err: errors.New("x")}, {Index: 0, Err: errors.New("dup")}}}
		}
		return nil
	}}
	rep, err := newDeliverer(t, out, &outputstest.Letters{}, fast()).Deliver(context.Background(), outputstest.Events(2))
	if err != nil || rep.Delivered != 2 || rep.Retried != 1 {
		t.Fatalf("rep %+v err %v; want 2 delivered with 1 retry", rep, err)
	}
}

func TestRetryConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		c    outputs.RetryConfig
		want string
	}{
		{outputs.RetryConfig{}, ""},
		{outputs.RetryConfig{InitialInterval: -1}, "initial_interval"},
		{outputs.RetryConfig{InitialInterval: time.Minute, MaxInterval: time.Second}, "initial_interval"},
		{outputs.RetryConfig{Multiplier: 0.5}, "multiplier"},
		{outputs.RetryConfig{Jitter: 1}, "jitter"},
		{outputs.RetryConfig{MaxElapsedTime: -time.Second}, "max_elapsed_time"},
		{outputs.RetryConfig{AttemptTimeout: -time.Second}, "attempt_timeout"},
	} {
		err := tc.c.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: err = %v, want mention of %q", tc.c, err, tc.want)
		}
	}
}

func TestPartialErrorMessage(t *testing.T) {
	err := &outputs.PartialError{Failures: []outputs.Failure{{Index: 2, Err: outputs.Permanent(errors.New("bad"))}, {Index: 3, Err: errors.New("slow")}}}
	if got, want := err.Error(), "2 events failed (1 permanently), first: event 2: bad"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
