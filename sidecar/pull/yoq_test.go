package pull_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/app"
)

const token = "s3cret-token"

// yoqEntry is one row of yoq's audit_log as GET /v1/audit returns it.
type yoqEntry struct {
	RecordedAt int64   `json:"recorded_at"`
	Actor      string  `json:"actor"`
	Action     string  `json:"action"`
	Target     *string `json:"target"`
	Outcome    string  `json:"outcome"`
}

func entry(at int64, action, target string) yoqEntry {
	return yoqEntry{RecordedAt: at, Actor: "api-token", Action: action, Target: &target, Outcome: "ok"}
}

// yoq is an in-test stand-in for yoq's audit endpoint: an append-only log
// served newest first, limit defaulting to 50 and capped at max, gated by
// a bearer token. Its behaviour can be switched to failing or hanging.
type yoq struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	log      []json.RawMessage // oldest first, as written
	status   int               // non-zero: answer this instead
	body     string            // non-empty: answer 200 with this instead
	hang     chan struct{}     // non-nil: block until closed or the client gives up
	max      int
	requests []*http.Request
	polled   chan struct{} // one value per request answered (buffered)
}

func newYoq(t testing.TB, tlsServer bool) *yoq {
	y := &yoq{t: t, max: 500, polled: make(chan struct{}, 1024)}
	y.srv = httptest.NewUnstartedServer(http.HandlerFunc(y.serve))
	// The handshake failures the TLS test provokes are expected.
	y.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tlsServer {
		y.srv.StartTLS()
	} else {
		y.srv.Start()
	}
	t.Cleanup(func() {
		y.mu.Lock()
		if y.hang != nil {
			close(y.hang)
			y.hang = nil
		}
		y.mu.Unlock()
		y.srv.Close()
	})
	return y
}

func (y *yoq) url() string { return y.srv.URL + "/v1/audit" }

func (y *yoq) serve(w http.ResponseWriter, r *http.Request) {
	defer func() {
		select {
		case y.polled <- struct{}{}:
		default:
		}
	}()
	y.mu.Lock()
	y.requests = append(y.requests, r.Clone(context.Background()))
	status, hang, body := y.status, y.hang, y.body
	y.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		return
	}
	if r.URL.Path != "/v1/audit" || r.Method != http.MethodGet {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+token {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	if status != 0 {
		http.Error(w, `{"error":"internal"}`, status)
		return
	}
	if body != "" {
		_, _ = io.WriteString(w, body)
		return
	}
	limit := 50
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			http.Error(w, "bad limit", http.StatusBadRequest)
			return
		}
		limit = min(n, y.max)
	}
	y.mu.Lock()
	page := make([]json.RawMessage, 0, limit)
	for i := len(y.log) - 1; i >= 0 && len(page) < limit; i-- {
		page = append(page, y.log[i])
	}
	y.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(page)
}

// append writes entries, in order, as yoq would record them.
func (y *yoq) append(es ...yoqEntry) {
	y.mu.Lock()
	defer y.mu.Unlock()
	for _, e := range es {
		b, err := json.Marshal(e)
		if err != nil {
			y.t.Fatal(err)
		}
		y.log = append(y.log, b)
	}
}

// appendRaw writes an arbitrary JSON value as an entry.
func (y *yoq) appendRaw(raw string) {
	y.mu.Lock()
	defer y.mu.Unlock()
	y.log = append(y.log, json.RawMessage(raw))
}

func (y *yoq) setStatus(code int) {
	y.mu.Lock()
	defer y.mu.Unlock()
	y.status = code
}

func (y *yoq) setBody(body string) {
	y.mu.Lock()
	defer y.mu.Unlock()
	y.body = body
}

func (y *yoq) setHang(on bool) {
	y.mu.Lock()
	defer y.mu.Unlock()
	switch {
	case on && y.hang == nil:
		y.hang = make(chan struct{})
	case !on && y.hang != nil:
		close(y.hang)
		y.hang = nil
	}
}

func (y *yoq) lastRequest() *http.Request {
	y.mu.Lock()
	defer y.mu.Unlock()
	if len(y.requests) == 0 {
		y.t.Fatal("no request reached the server")
	}
	return y.requests[len(y.requests)-1]
}

// seq returns n distinct entries, one per second from start.
func seq(start int64, n int) []yoqEntry {
	es := make([]yoqEntry, n)
	for i := range es {
		es[i] = entry(start+int64(i), "secret_set", fmt.Sprintf("key-%d", start+int64(i)))
	}
	return es
}

// queue records what a Poller enqueued, and fails on demand.
type queue struct {
	mu     sync.Mutex
	events []auditpipe.Event
	calls  int
	fail   error
}

func (q *queue) enqueue(_ context.Context, events []auditpipe.Event) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls++
	if q.fail != nil {
		return q.fail
	}
	q.events = append(q.events, events...)
	return nil
}

func (q *queue) setFail(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.fail = err
}

func (q *queue) all() []auditpipe.Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]auditpipe.Event(nil), q.events...)
}

// targets lists the queued events' resource names, in queue order.
func (q *queue) targets() []string {
	var out []string
	for _, ev := range q.all() {
		out = append(out, ev.Resource.Name)
	}
	return out
}

func yoqTransformer(t testing.TB) transformers.Transformer {
	t.Helper()
	red, err := transformers.NewRedactor(transformers.RedactConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := app.New(app.Config{Flavor: "yoq"}, transformers.Options{Redactor: red})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// fixedNow is a clock for observed times, so events compare equal across
// pollers.
func fixedNow() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
