package pull_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
	"github.com/auditpipe/auditpipe/sidecar/pull"
	"github.com/auditpipe/auditpipe/transformers"
)

// syncBuffer is a log sink the poller may write to from Run's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// rig is a poller wired to a fake yoq, a recording queue, a state
// directory, a registry and a log buffer.
type rig struct {
	t    *testing.T
	y    *yoq
	q    *queue
	dir  string
	reg  *prometheus.Registry
	m    *pull.Metrics
	logs *syncBuffer
	cfg  pull.Config
	opts pull.Options
}

func newRig(t *testing.T) *rig {
	r := &rig{t: t, y: newYoq(t, false), q: &queue{}, dir: t.TempDir(), reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	r.m = pull.NewMetrics(r.reg)
	r.cfg = pull.Config{URL: r.y.url(), Limit: 10, Interval: time.Hour, BearerToken: token, Timeout: 5 * time.Second}
	r.opts = pull.Options{
		Source:      "yoq",
		Transformer: yoqTransformer(t),
		Enqueue:     r.q.enqueue,
		StateDir:    r.dir,
		Logger:      slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:     r.m,
		Now:         fixedNow,
	}
	t.Cleanup(func() {
		if strings.Contains(r.logs.String(), token) {
			t.Errorf("the bearer token appears in the logs:\n%s", r.logs)
		}
	})
	return r
}

// poller builds a Poller from the rig's current cfg and opts: building a
// second one is a restart.
func (r *rig) poller() *pull.Poller {
	r.t.Helper()
	p, err := pull.New(r.cfg, r.opts)
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

func (r *rig) poll(p *pull.Poller) pull.Result {
	r.t.Helper()
	res, err := p.Poll(context.Background())
	if err != nil {
		r.t.Fatalf("poll: %v", err)
	}
	return res
}

func (r *rig) metric(c *prometheus.CounterVec, labels ...string) float64 {
	return testutil.ToFloat64(c.WithLabelValues(labels...))
}

func targetsOf(es []yoqEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, *e.Target)
	}
	return out
}

func checkResult(t *testing.T, got, want pull.Result) {
	t.Helper()
	if got.Fetched != want.Fetched || got.New != want.New || got.Queued != want.Queued || got.Gap != want.Gap || len(got.Errors) != len(want.Errors) {
		t.Fatalf("result = %+v, want %+v", got, want)
	}
}

func TestPollQueuesOnlyNewEntriesOldestFirst(t *testing.T) {
	r := newRig(t)
	r.cfg.URL += "?node=leader" // kept, limit added
	r.cfg.Headers = map[string]string{"X-Yoq-Node": "leader"}
	p := r.poller()

	first := seq(1767312000, 5)
	r.y.append(first...)
	checkResult(t, r.poll(p), pull.Result{Fetched: 5, New: 5, Queued: 5})
	if got, want := r.q.targets(), targetsOf(first); !slices.Equal(got, want) {
		t.Fatalf("queued %v, want %v (oldest first)", got, want)
	}
	req := r.y.lastRequest()
	if got := req.URL.Query(); got.Get("limit") != "10" || got.Get("node") != "leader" || len(got["limit"]) != 1 {
		t.Errorf("query = %v, want limit=10 and node=leader", got)
	}
	if req.Header.Get("X-Yoq-Node") != "leader" || req.Header.Get("Authorization") != "Bearer "+token {
		t.Errorf("headers = %v", req.Header)
	}

	// Content, checked at the queue.
	ev := r.q.all()[0]
	if ev.Action != "secret_set" || ev.Source.Name != "yoq" || ev.Source.Format != "app/yoq" || ev.Actor.Type != auditpipe.ActorToken ||
		ev.Outcome != auditpipe.OutcomeSuccess || !ev.Time.Equal(time.Unix(1767312000, 0)) || !ev.ObservedTime.Equal(fixedNow()) {
		t.Errorf("first event = %+v", ev)
	}

	calls := r.q.calls
	checkResult(t, r.poll(p), pull.Result{Fetched: 5})
	if r.q.calls != calls {
		t.Error("Enqueue was called for a poll with nothing new")
	}

	more := seq(1767312005, 3)
	r.y.append(more...)
	checkResult(t, r.poll(p), pull.Result{Fetched: 8, New: 3, Queued: 3})
	if got, want := r.q.targets(), targetsOf(append(first, more...)); !slices.Equal(got, want) {
		t.Fatalf("queued %v, want %v", got, want)
	}
	if got := r.metric(r.m.Events, "yoq"); got != 8 {
		t.Errorf("events metric = %v, want 8", got)
	}
	if got := r.metric(r.m.Polls, "yoq", "ok"); got != 3 {
		t.Errorf("ok polls = %v, want 3", got)
	}
	if got := testutil.ToFloat64(r.m.LastSuccess.WithLabelValues("yoq")); got != float64(fixedNow().Unix()) {
		t.Errorf("last success = %v, want %v", got, fixedNow().Unix())
	}
}

func TestRestartNeitherDuplicatesNorSkips(t *testing.T) {
	r := newRig(t)
	all := seq(1767312000, 12)
	r.y.append(all[:4]...)
	r.poll(r.poller())
	r.y.append(all[4:7]...)
	// The process restarts: a new Poller reads the watermark.
	checkResult(t, r.poll(r.poller()), pull.Result{Fetched: 7, New: 3, Queued: 3})
	r.y.append(all[7:]...)
	p := r.poller()
	r.poll(p)
	r.poll(p)
	if got, want := r.q.targets(), targetsOf(all); !slices.Equal(got, want) {
		t.Fatalf("queued %v, want %v", got, want)
	}
	checkUniqueIDs(t, r.q.all())
}

func checkUniqueIDs(t *testing.T, events []auditpipe.Event) {
	t.Helper()
	seen := map[string]bool{}
	for _, ev := range events {
		if seen[ev.ID] {
			t.Fatalf("id %s queued twice", ev.ID)
		}
		seen[ev.ID] = true
	}
}

func TestEnqueueFailureLeavesWatermark(t *testing.T) {
	r := newRig(t)
	p := r.poller()
	r.y.append(seq(1767312000, 2)...)
	r.poll(p)
	r.y.append(seq(1767312002, 3)...)

	r.q.setFail(errors.New("queue full"))
	res, err := p.Poll(context.Background())
	if err == nil || !strings.Contains(err.Error(), "queue full") {
		t.Fatalf("poll error = %v, want the queue's", err)
	}
	if res.New != 3 {
		t.Errorf("new = %d, want 3", res.New)
	}
	if got := r.metric(r.m.Polls, "yoq", "error"); got != 1 {
		t.Errorf("error polls = %v, want 1", got)
	}
	// A restart now must still see the three as new: nothing was persisted.
	r.q.setFail(nil)
	checkResult(t, r.poll(r.poller()), pull.Result{Fetched: 5, New: 3, Queued: 3})
	if got, want := r.q.targets(), targetsOf(seq(1767312000, 5)); !slices.Equal(got, want) {
		t.Fatalf("queued %v, want %v", got, want)
	}
	if got := r.metric(r.m.Events, "yoq"); got != 5 {
		t.Errorf("events metric = %v, want 5 (failed attempts do not count)", got)
	}
}

// A crash after Enqueue returned but before the watermark was persisted
// queues the same entries again, with the same ids, so a deduplicating
// destination keeps one copy.
func TestCrashBeforePersistRequeuesSameIDs(t *testing.T) {
	r := newRig(t)
	path := filepath.Join(r.dir, "yoq.json")
	a := entry(1767312000, "secret_set", "db-password")
	r.y.append(a, a, entry(1767312000, "app_apply", "web"))
	r.poll(r.poller())
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r.y.append(a, entry(1767312001, "agent_drain", "node-1"))
	r.poll(r.poller())
	queued := r.q.all()[3:]

	// Undo the watermark's advance, as if the process died before saving.
	if err := os.WriteFile(path, before, 0o600); err != nil {
		t.Fatal(err)
	}
	checkResult(t, r.poll(r.poller()), pull.Result{Fetched: 5, New: 2, Queued: 2})
	again := r.q.all()[5:]
	for i := range queued {
		if queued[i].ID != again[i].ID {
			t.Errorf("re-queued event %d has id %s, first time %s", i, again[i].ID, queued[i].ID)
		}
	}
}

func TestGap(t *testing.T) {
	a := entry(1767312100, "secret_set", "db-password")
	tests := []struct {
		name    string
		limit   int
		initial []yoqEntry
		later   []yoqEntry
		want    pull.Result
	}{
		{"more new entries than the limit", 4, seq(1767312000, 2), seq(1767312002, 6), pull.Result{Fetched: 4, New: 4, Queued: 4, Gap: true}},
		{"exactly the limit: cannot be told from more", 4, seq(1767312000, 2), seq(1767312002, 4), pull.Result{Fetched: 4, New: 4, Queued: 4, Gap: true}},
		{"page reaches back to the newest entry seen", 4, seq(1767312000, 2), seq(1767312002, 3), pull.Result{Fetched: 4, New: 3, Queued: 3}},
		{"page reaches an older second", 4, seq(1767312000, 2), seq(1767312002, 2), pull.Result{Fetched: 4, New: 2, Queued: 2}},
		{"full page, nothing new", 2, seq(1767312000, 2), nil, pull.Result{Fetched: 2}},
		{"page not full", 10, seq(1767312000, 2), seq(1767312002, 6), pull.Result{Fetched: 8, New: 6, Queued: 6}},
		// Three copies of a, two seen; two more written: the page shows
		// three, so only one is recognised as new, and the oldest copy on
		// the page is also the content of a new one: flagged.
		{"identical entries pushed off the bottom", 3, []yoqEntry{a, a}, []yoqEntry{a, a}, pull.Result{Fetched: 3, New: 1, Queued: 1, Gap: true}},
		{"identical entries fully on the page", 5, []yoqEntry{a, a}, []yoqEntry{a, a}, pull.Result{Fetched: 4, New: 2, Queued: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			r.cfg.Limit = tc.limit
			p := r.poller()
			r.y.append(tc.initial...)
			r.poll(p)
			r.y.append(tc.later...)
			checkResult(t, r.poll(p), tc.want)
			wantGaps := 0.0
			if tc.want.Gap {
				wantGaps = 1
			}
			if got := r.metric(r.m.Gaps, "yoq"); got != wantGaps {
				t.Errorf("gaps metric = %v, want %v", got, wantGaps)
			}
			if tc.want.Gap && !strings.Contains(r.logs.String(), "entries may have been missed") {
				t.Errorf("no gap warning in the logs:\n%s", r.logs)
			}
		})
	}
}

func TestFirstFullPageIsNotAGap(t *testing.T) {
	r := newRig(t)
	r.cfg.Limit = 3
	r.y.append(seq(1767312000, 5)...)
	checkResult(t, r.poll(r.poller()), pull.Result{Fetched: 3, New: 3, Queued: 3})
	if got, want := r.q.targets(), targetsOf(seq(1767312002, 3)); !slices.Equal(got, want) {
		t.Fatalf("queued %v, want the newest three %v", got, want)
	}
}

// Identical entries in the same second are distinct operations (two
// secret_set calls): each is queued once, with its own id, however the
// polls split them, and the n-th copy ever written gets the same id
// whichever poll found it.
func TestIdenticalEntriesSameSecond(t *testing.T) {
	r := newRig(t)
	r.cfg.Limit = 5
	a := entry(1767312200, "secret_set", "db-password")
	raw, _ := json.Marshal(a)
	c, err := auditpipe.Canonicalize(raw)
	if err != nil {
		t.Fatal(err)
	}
	base := auditpipe.IDFromCanonical(c)
	nth := func(n int) string { return auditpipe.NthDuplicateID(base, n) }

	steps := []struct {
		write   []yoqEntry
		wantNew int
	}{
		{[]yoqEntry{a, a}, 2},
		{nil, 0},
		{[]yoqEntry{a}, 1},
		{[]yoqEntry{entry(1767312200, "secret_set", "api-key"), a}, 2},
		{[]yoqEntry{entry(1767312201, "app_apply", "web")}, 1},
	}
	for i, s := range steps {
		r.y.append(s.write...)
		// A restart between every poll.
		if res := r.poll(r.poller()); res.New != s.wantNew {
			t.Fatalf("step %d: new = %d, want %d", i, res.New, s.wantNew)
		}
	}
	var got []string
	for _, ev := range r.q.all() {
		if ev.Resource.Name == "db-password" {
			got = append(got, ev.ID)
		}
	}
	if want := []string{nth(0), nth(1), nth(2), nth(3)}; !slices.Equal(got, want) {
		t.Fatalf("ids of the copies = %v, want %v", got, want)
	}
	checkUniqueIDs(t, r.q.all())
	if n := len(r.q.all()); n != 6 {
		t.Fatalf("queued %d events, want 6", n)
	}
}

// An entry written after another but recorded with an earlier time (two
// concurrent writers, a clock step) is still new: the rule looks at
// content, not only at the newest time seen.
func TestEntryOlderThanNewestTimeSeen(t *testing.T) {
	r := newRig(t)
	p := r.poller()
	r.y.append(entry(1767312100, "secret_set", "x"), entry(1767312101, "secret_set", "b"))
	r.poll(p)
	r.y.append(entry(1767312100, "secret_set", "a"), entry(1767312099, "policy_add", "c"))
	checkResult(t, r.poll(p), pull.Result{Fetched: 4, New: 2, Queued: 2})
	if got, want := r.q.targets(), []string{"x", "b", "a", "c"}; !slices.Equal(got, want) {
		t.Fatalf("queued %v, want %v", got, want)
	}
}

// Raising the limit makes the next page reach further back than the last
// one; those older entries were either queued long ago or never meant to
// be (before the first poll), and are not queued now.
func TestRaisedLimitDoesNotRequeueHistory(t *testing.T) {
	r := newRig(t)
	r.cfg.Limit = 2
	r.y.append(seq(1767312000, 5)...)
	checkResult(t, r.poll(r.poller()), pull.Result{Fetched: 2, New: 2, Queued: 2})
	r.cfg.Limit = 10
	checkResult(t, r.poll(r.poller()), pull.Result{Fetched: 5})
	r.y.append(seq(1767312005, 1)...)
	checkResult(t, r.poll(r.poller()), pull.Result{Fetched: 6, New: 1, Queued: 1})
}

func TestUnmappableEntriesAreRejectedOnce(t *testing.T) {
	r := newRig(t)
	var mu sync.Mutex
	var rejected []string
	var rejectErr error
	r.opts.Reject = func(_ context.Context, raw []byte, errs []*transformers.Error) error {
		mu.Lock()
		defer mu.Unlock()
		if rejectErr != nil {
			return rejectErr
		}
		if len(errs) == 0 || errs[0].Path == "" || !strings.HasPrefix(errs[0].Path, "$") || strings.HasPrefix(errs[0].Path, "$[") {
			t.Errorf("errors given to Reject = %v, want paths relative to the entry", errs)
		}
		rejected = append(rejected, string(raw))
		return nil
	}
	p := r.poller()
	r.y.append(entry(1767312000, "secret_set", "ok-1"))
	r.y.appendRaw(`{"actor":"api-token","action":"secret_set","target":"no-time","outcome":"ok"}`)
	r.y.append(entry(1767312001, "secret_set", "ok-2"))

	mu.Lock()
	rejectErr = errors.New("dead-letter store down")
	mu.Unlock()
	if _, err := p.Poll(context.Background()); err == nil || !strings.Contains(err.Error(), "dead-letter store down") {
		t.Fatalf("poll error = %v, want Reject's", err)
	}
	mu.Lock()
	rejectErr = nil
	mu.Unlock()

	res := r.poll(p)
	if res.New != 3 || res.Queued != 2 || len(res.Errors) != 1 {
		t.Fatalf("result = %+v, want 3 new, 2 queued, 1 error", res)
	}
	if e := res.Errors[0]; e.Item != 1 || !strings.HasPrefix(e.Path, "$[1]") || !errors.Is(e.Kind, transformers.ErrMissing) {
		t.Errorf("error = %+v (%v), want item 1, path $[1]..., missing field", e, e)
	}
	r.poll(p)
	if len(rejected) != 1 || !strings.Contains(rejected[0], "no-time") {
		t.Fatalf("rejected = %q, want the one bad entry once", rejected)
	}
	if got := r.metric(r.m.ItemErrors, "yoq"); got != 1 {
		t.Errorf("item errors metric = %v, want 1", got)
	}
	// The events were queued by the failed attempt too: at least once.
	if got := r.q.targets(); !slices.Equal(got, []string{"ok-1", "ok-2", "ok-1", "ok-2"}) {
		t.Errorf("queued %v", got)
	}
}

func TestServerFailuresAreCountedAndRetried(t *testing.T) {
	tests := []struct {
		name       string
		breakIt    func(r *rig)
		fixIt      func(r *rig)
		sameConfig bool // the fix is on the server's side
		wantErr    string
	}{
		{"server error", func(r *rig) { r.y.setStatus(500) }, func(r *rig) { r.y.setStatus(0) }, true, "500 Internal Server Error"},
		{"not JSON", func(r *rig) { r.y.setBody("<html>maintenance</html>") }, func(r *rig) { r.y.setBody("") }, true, "response body"},
		{"slow server", func(r *rig) { r.cfg.Timeout = 50 * time.Millisecond; r.y.setHang(true) }, func(r *rig) { r.y.setHang(false) }, true, "deadline exceeded"},
		{"bad token", func(r *rig) { r.cfg.BearerToken = "wrong" }, func(r *rig) { r.cfg.BearerToken = token }, false, "check bearer_token"},
		{"no token", func(r *rig) { r.cfg.BearerToken = "" }, func(r *rig) { r.cfg.BearerToken = token }, false, "401"},
		{"wrong path", func(r *rig) { r.cfg.URL = r.y.srv.URL + "/v1/audits" }, func(r *rig) { r.cfg.URL = r.y.url() }, false, "404"},
		{"server down", func(r *rig) { r.cfg.URL = "http://" + outputstest.FreeAddr(r.t) + "/v1/audit" }, func(r *rig) { r.cfg.URL = r.y.url() }, false, "connect"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			baseline := runtime.NumGoroutine()
			r := newRig(t)
			r.y.append(seq(1767312000, 3)...)
			tc.breakIt(r)
			p := r.poller()
			for range 2 {
				_, err := p.Poll(context.Background())
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("poll error = %v, want one mentioning %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), token) || (r.cfg.BearerToken != "" && strings.Contains(err.Error(), r.cfg.BearerToken)) {
					t.Fatalf("the error reveals the token: %v", err)
				}
			}
			if got := r.metric(r.m.Polls, "yoq", "error"); got != 2 {
				t.Errorf("error polls = %v, want 2", got)
			}
			if n := len(r.q.all()); n != 0 {
				t.Fatalf("queued %d events from a failed poll", n)
			}
			if n := strings.Count(r.logs.String(), `level=WARN msg="pull: poll failed`); n != 1 {
				t.Errorf("%d warnings for one outage, want 1:\n%s", n, r.logs)
			}
			tc.fixIt(r)
			r.cfg.Timeout = 5 * time.Second
			// A server that recovers is polled again by the same poller; a
			// fixed configuration takes a new one (a restart).
			if !tc.sameConfig {
				p = r.poller()
			}
			checkResult(t, r.poll(p), pull.Result{Fetched: 3, New: 3, Queued: 3})
			if tc.sameConfig && !strings.Contains(r.logs.String(), "polling again") {
				t.Errorf("recovery not logged:\n%s", r.logs)
			}
			r.y.srv.CloseClientConnections()
			outputstest.CheckNoLeak(t, 5*time.Second, baseline+2) // the test server's own goroutines
		})
	}
}

func TestRunPollsAtStartAndStopsWithContext(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		polls    int
	}{
		{"one poll at start", time.Hour, 1},
		{"polls every interval", 5 * time.Millisecond, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			baseline := runtime.NumGoroutine()
			r := newRig(t)
			r.cfg.Interval = tc.interval
			r.y.append(seq(1767312000, 2)...)
			p := r.poller()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			for i := range tc.polls {
				select {
				case <-r.y.polled:
				case <-time.After(10 * time.Second):
					t.Fatalf("poll %d did not happen", i+1)
				}
			}
			// The server answered; the poller may still be queueing.
			outputstest.Eventually(t, 10*time.Second, "the entries to be queued", func() bool { return len(r.q.all()) >= 2 })
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run = %v, want nil after cancel", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
			if got := r.q.targets(); len(got) != 2 {
				t.Errorf("queued %v, want the two entries once", got)
			}
			r.y.srv.CloseClientConnections()
			outputstest.CheckNoLeak(t, 5*time.Second, baseline+2)
		})
	}
}

// A cancelled context ends a hanging poll at once, whatever the timeout.
func TestRunCancelEndsHangingPoll(t *testing.T) {
	r := newRig(t)
	r.y.setHang(true)
	p := r.poller()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	outputstest.Eventually(t, 10*time.Second, "the request to arrive", func() bool {
		r.y.mu.Lock()
		defer r.y.mu.Unlock()
		return len(r.y.requests) > 0
	})
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if strings.Contains(r.logs.String(), "poll failed") || r.metric(r.m.Polls, "yoq", "error") != 0 {
		t.Errorf("a cancelled poll was counted or logged as a failure:\n%s", r.logs)
	}
}

func TestTLS(t *testing.T) {
	r := newRig(t)
	r.y = newYoq(t, true)
	r.y.append(seq(1767312000, 2)...)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.y.srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	r.cfg.URL = r.y.url()

	// Without the CA the server is not trusted.
	if _, err := r.poller().Poll(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("poll without the CA = %v, want a certificate error", err)
	}
	r.cfg.TLS = outputs.TLSConfig{CAFile: ca}
	checkResult(t, r.poll(r.poller()), pull.Result{Fetched: 2, New: 2, Queued: 2})
}

func TestNewRefuses(t *testing.T) {
	r := newRig(t)
	corrupt := t.TempDir()
	if err := os.WriteFile(filepath.Join(corrupt, "yoq.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		mut  func(c *pull.Config, o *pull.Options)
		want string
	}{
		{"bad config", func(c *pull.Config, _ *pull.Options) { c.URL = "" }, "url: required"},
		{"no source", func(_ *pull.Config, o *pull.Options) { o.Source = "" }, "plain file name"},
		{"source with a path", func(_ *pull.Config, o *pull.Options) { o.Source = "../etc" }, "plain file name"},
		{"no transformer", func(_ *pull.Config, o *pull.Options) { o.Transformer = nil }, "transformer"},
		{"no enqueue", func(_ *pull.Config, o *pull.Options) { o.Enqueue = nil }, "Enqueue"},
		{"no state dir", func(_ *pull.Config, o *pull.Options) { o.StateDir = "" }, "state directory"},
		{"corrupt watermark", func(_ *pull.Config, o *pull.Options) { o.StateDir = corrupt }, "corrupt"},
		{"missing CA file", func(c *pull.Config, _ *pull.Options) {
			c.URL = "https://127.0.0.1/v1/audit"
			c.TLS.CAFile = "/nonexistent/ca.pem"
		}, "tls.ca_file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, opts := r.cfg, r.opts
			tc.mut(&cfg, &opts)
			_, err := pull.New(cfg, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestNewMetricsTwiceOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, b := pull.NewMetrics(reg), pull.NewMetrics(reg)
	a.Events.WithLabelValues("x").Inc()
	if got := testutil.ToFloat64(b.Events.WithLabelValues("x")); got != 1 {
		t.Fatalf("second Metrics does not share the registered collectors: %v", got)
	}
	if n, err := testutil.GatherAndCount(reg, "auditpipe_pull_events_total"); err != nil || n != 1 {
		t.Fatalf("GatherAndCount = %d, %v", n, err)
	}
}

// When the watermark cannot be saved, the queued events stay queued, the
// poll is an error, and the watermark is kept in memory (no re-queueing
// while the process lives) and saved as soon as it can be.
func TestWatermarkSaveFailure(t *testing.T) {
	r := newRig(t)
	r.opts.StateDir = filepath.Join(r.dir, "state")
	p := r.poller()
	r.y.append(seq(1767312000, 2)...)
	r.poll(p)
	r.y.append(seq(1767312002, 2)...)
	if err := os.RemoveAll(r.opts.StateDir); err != nil {
		t.Fatal(err)
	}
	res, err := p.Poll(context.Background())
	if err == nil || !strings.Contains(err.Error(), "pull watermark") || res.Queued != 2 {
		t.Fatalf("poll = %+v, %v; want 2 queued and a watermark error", res, err)
	}
	if res, err := p.Poll(context.Background()); err == nil || res.New != 0 {
		t.Fatalf("poll = %+v, %v; want nothing new and the save retried", res, err)
	}
	if err := os.MkdirAll(r.opts.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	checkResult(t, r.poll(p), pull.Result{Fetched: 4})
	checkResult(t, r.poll(r.poller()), pull.Result{Fetched: 4})
	if got := r.q.targets(); len(got) != 4 {
		t.Fatalf("queued %v, want each entry once", got)
	}
}
