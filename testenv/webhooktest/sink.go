package webhooktest

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/testenv/internal/testcert"
)

// Config configures a Sink. The zero value serves plain HTTP on a free
// loopback port and checks neither signature nor token.
type Config struct {
	// Addr is the address to listen on. Default 127.0.0.1:0 (a free port).
	Addr string
	// TLS serves HTTPS with a certificate generated at start for
	// 127.0.0.1, ::1, localhost and Addr's host. It is self-signed, so the
	// one PEM at Sink.CAFile is what a client trusts. Default false.
	TLS bool
	// CertDir is where ca.pem is written when TLS is on. Default: a new
	// temporary directory, removed by Close.
	CertDir string
	// Secret, when set, makes the sink check X-Signature-256 and answer
	// 401 when it is missing or wrong. Default empty: not checked, and
	// Request.SignatureOK is false.
	Secret string
	// BearerToken, when set, makes the sink require "Authorization:
	// Bearer <token>" and answer 401 otherwise. Default empty.
	BearerToken string
	// CountOnly keeps counters (Stats) but records no request and decodes
	// no body unless events are to be rejected, so that a benchmark
	// measures the sender rather than the sink's encoding/json. Default
	// false.
	CountOnly bool
	// MaxBodyBytes caps a request body; a larger one is answered 413.
	// Default 64 MiB.
	MaxBodyBytes int64
	// Logger receives one debug line per request. Default: discard.
	Logger *slog.Logger
}

// Request is one request the sink received, as it received it, with what
// it answered.
type Request struct {
	Time   time.Time   `json:"time"`
	Method string      `json:"method"`
	Path   string      `json:"path"`
	Header http.Header `json:"header"`
	Body   []byte      `json:"-"`
	// BodyBytes is len(Body), for the inspect listing, which omits bodies.
	BodyBytes      int    `json:"body_bytes"`
	ContentType    string `json:"content_type,omitempty"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// SignatureOK is true when Config.Secret is set and X-Signature-256
	// matched the body.
	SignatureOK bool `json:"signature_verified"`
	// Status is the sink's answer; 0 when the client went away first.
	Status int `json:"status"`
	// EventIDs are the ids of the body's events, when it was decoded.
	EventIDs []string `json:"event_ids,omitempty"`
	// Duplicate is true when the request was accepted but its
	// Idempotency-Key had been accepted before, so the de-duplicated view
	// ignored it.
	Duplicate bool `json:"duplicate,omitempty"`
	// Error says why the request was not accepted.
	Error string `json:"error,omitempty"`
}

// Stats are a sink's counters.
type Stats struct {
	// Requests counts every POST, Accepted those answered 2xx.
	Requests, Accepted int
	// Bytes is the total of the bodies received.
	Bytes int64
	// InFlight is the number of requests being handled now, PeakInFlight
	// the largest it has been.
	InFlight, PeakInFlight int
}

// Sink is a running webhook receiver. Its methods are safe for concurrent
// use.
type Sink struct {
	cfg        Config
	log        *slog.Logger
	ln         *testcert.Listener
	done       chan struct{}
	closeOnce  sync.Once
	closeError error

	mu       sync.Mutex
	requests []Request
	events   []auditpipe.Event // de-duplicated view
	raw      []auditpipe.Event // every event accepted
	seenIDs  map[string]bool
	seenKeys map[string]bool
	stats    Stats
	closed   bool          // no handler starts once set
	changed  chan struct{} // closed and replaced whenever something is recorded

	statuses   []int
	retryAfter string
	delay      time.Duration
	reject     map[string]int
}

// Start listens on cfg.Addr and serves until Close.
func Start(cfg Config) (*Sink, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 20
	}
	s := &Sink{
		cfg:      cfg,
		log:      cfg.Logger,
		done:     make(chan struct{}),
		seenIDs:  map[string]bool{},
		seenKeys: map[string]bool{},
		changed:  make(chan struct{}),
		reject:   map[string]int{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	ln, err := testcert.Listen(testcert.Config{
		Addr:        cfg.Addr,
		TLS:         cfg.TLS,
		Subject:     pkix.Name{Organization: []string{"auditpipe webhooktest"}, CommonName: "webhooktest"},
		CertDir:     cfg.CertDir,
		TempPattern: "webhooktest-",
	})
	if err != nil {
		return nil, fmt.Errorf("webhooktest: %w", err)
	}
	s.ln = ln
	ln.Serve(s, s.log)
	return s, nil
}

// NewSink starts a sink with the default Config and closes it when the test
// ends.
func NewSink(t testing.TB) *Sink {
	t.Helper()
	return NewSinkConfig(t, Config{})
}

// NewSinkConfig starts a sink with cfg and closes it when the test ends.
func NewSinkConfig(t testing.TB, cfg Config) *Sink {
	t.Helper()
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// URL is where to POST: any path but /_inspect is accepted.
func (s *Sink) URL() string { return s.ln.URL + "/webhook" }

// InspectURL lists what the sink received as JSON (GET). Add ?raw=1 for
// the raw view of events, duplicates included.
func (s *Sink) InspectURL() string { return s.ln.URL + "/_inspect" }

// Addr is the address the sink listens on.
func (s *Sink) Addr() string { return s.ln.Addr }

// CAFile is the path of the PEM certificate to trust; empty without TLS.
func (s *Sink) CAFile() string { return s.ln.CAFile }

// CAPEM is the content of CAFile.
func (s *Sink) CAPEM() []byte { return s.ln.CAPEM }

// Secret is the configured signing secret.
func (s *Sink) Secret() string { return s.cfg.Secret }

// Close stops the sink: it closes the listener and every connection,
// releases handlers waiting out a delay, waits for them, and removes the
// temporary certificate directory.
func (s *Sink) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.done)
		err := s.ln.Close()
		// http.Server.Close does not wait for handlers; those waiting out a
		// delay were released by done.
		_ = s.wait(context.Background(), func() bool { return s.stats.InFlight == 0 })
		s.ln.RemoveTemp()
		s.closeError = err
	})
	return s.closeError
}

// Fault knobs.

// SetStatusSequence makes the sink answer the next requests, one code each
// in order, after authentication and before decoding, and then behave
// normally. A 2xx code in the sequence means "handle normally". It
// replaces any sequence not yet used up.
func (s *Sink) SetStatusSequence(codes ...int) {
	s.mu.Lock()
	s.statuses = append([]int(nil), codes...)
	s.mu.Unlock()
}

// SetRetryAfter sets the Retry-After header sent with every fault answer
// (the status sequence and rejections); empty sends none.
func (s *Sink) SetRetryAfter(v string) {
	s.mu.Lock()
	s.retryAfter = v
	s.mu.Unlock()
}

// SetDelay makes the sink wait d before answering each request. A client
// that gives up first finds nothing accepted.
func (s *Sink) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// Reject makes the sink answer status to any request holding one of ids,
// accepting none of its events: one event per request is rejected alone,
// a batch as a whole. A status of 0 stops rejecting them.
func (s *Sink) Reject(status int, ids ...string) {
	s.mu.Lock()
	for _, id := range ids {
		if status == 0 {
			delete(s.reject, id)
		} else {
			s.reject[id] = status
		}
	}
	s.mu.Unlock()
}

// ClearFaults removes every fault.
func (s *Sink) ClearFaults() {
	s.mu.Lock()
	s.statuses, s.retryAfter, s.delay = nil, "", 0
	clear(s.reject)
	s.mu.Unlock()
}

// Reset forgets everything received, keeping faults.
func (s *Sink) Reset() {
	s.mu.Lock()
	s.requests, s.events, s.raw = nil, nil, nil
	clear(s.seenIDs)
	clear(s.seenKeys)
	s.stats = Stats{InFlight: s.stats.InFlight}
	s.notifyLocked()
	s.mu.Unlock()
}

// Views.

// Requests returns every request received, in arrival order.
func (s *Sink) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Events returns the de-duplicated events accepted: each event id once,
// and nothing from a request whose Idempotency-Key had been accepted
// before.
func (s *Sink) Events() []auditpipe.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]auditpipe.Event(nil), s.events...)
}

// RawEvents returns every event accepted, duplicates included.
func (s *Sink) RawEvents() []auditpipe.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]auditpipe.Event(nil), s.raw...)
}

// Stats returns the counters.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// WaitStats waits until cond holds for the counters or ctx ends.
func (s *Sink) WaitStats(ctx context.Context, cond func(Stats) bool) error {
	return s.wait(ctx, func() bool { return cond(s.stats) })
}

// WaitEvents waits until the de-duplicated view holds at least n events or
// ctx ends.
func (s *Sink) WaitEvents(ctx context.Context, n int) error {
	return s.wait(ctx, func() bool { return len(s.events) >= n })
}

// WaitRequests waits until at least n requests were received or ctx ends.
func (s *Sink) WaitRequests(ctx context.Context, n int) error {
	return s.wait(ctx, func() bool { return s.stats.Requests >= n })
}

func (s *Sink) wait(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ok, ch := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-ch:
		}
	}
}

func (s *Sink) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Serving.

// ServeHTTP handles POSTs on any path and GET /_inspect.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		http.Error(w, "sink closed", http.StatusServiceUnavailable)
		return
	}
	defer s.leave()
	if r.URL.Path == "/_inspect" {
		if r.Method != http.MethodGet {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		s.inspect(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	rec := Request{
		Time:           time.Now().UTC(),
		Method:         r.Method,
		Path:           r.URL.Path,
		Header:         r.Header.Clone(),
		ContentType:    r.Header.Get("Content-Type"),
		IdempotencyKey: r.Header.Get("Idempotency-Key"),
	}
	body, err := readBody(w, r, s.cfg.MaxBodyBytes)
	rec.Body, rec.BodyBytes = body, len(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.answer(w, &rec, http.StatusRequestEntityTooLarge, "body larger than "+strconv.FormatInt(tooBig.Limit, 10)+" bytes", nil)
			return
		}
		s.answer(w, &rec, http.StatusBadRequest, "reading body: "+err.Error(), nil)
		return
	}

	s.mu.Lock()
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			// Nobody reads an answer: record the request unanswered.
			t.Stop()
			rec.Error = "client went away during the delay"
			s.finish(&rec, nil)
			return
		case <-s.done:
			t.Stop()
			s.answer(w, &rec, http.StatusServiceUnavailable, "sink closed during the delay", nil)
			return
		}
	}

	if tok := s.cfg.BearerToken; tok != "" {
		got := r.Header.Get("Authorization")
		if subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+tok)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="webhooktest"`)
			s.answer(w, &rec, http.StatusUnauthorized, "bearer token missing or wrong", nil)
			return
		}
	}
	if s.cfg.Secret != "" {
		sig := r.Header.Get(SignatureHeader)
		rec.SignatureOK = VerifySignature(s.cfg.Secret, body, sig)
		if !rec.SignatureOK {
			msg := "X-Signature-256 does not match the body"
			if sig == "" {
				msg = "X-Signature-256 missing"
			}
			s.answer(w, &rec, http.StatusUnauthorized, msg, nil)
			return
		}
	}

	s.mu.Lock()
	status := 0
	if len(s.statuses) > 0 {
		status, s.statuses = s.statuses[0], s.statuses[1:]
	}
	rejecting := len(s.reject) > 0
	s.mu.Unlock()
	if status != 0 && (status < 200 || status > 299) {
		s.fault(w, &rec, status, "status sequence")
		return
	}

	if s.cfg.CountOnly && !rejecting {
		s.answer(w, &rec, http.StatusOK, "", nil)
		return
	}
	events, err := Decode(rec.ContentType, body)
	if err != nil {
		s.answer(w, &rec, http.StatusBadRequest, err.Error(), nil)
		return
	}
	rec.EventIDs = make([]string, len(events))
	for i := range events {
		rec.EventIDs[i] = events[i].ID
	}
	s.mu.Lock()
	for _, id := range rec.EventIDs {
		if code := s.reject[id]; code != 0 {
			s.mu.Unlock()
			s.fault(w, &rec, code, "event "+id+" rejected")
			return
		}
	}
	s.mu.Unlock()
	s.answer(w, &rec, http.StatusOK, "", events)
}

// readBody reads the whole body, sized up front from Content-Length so that
// the sink's own allocations stay out of the sender's benchmarks.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	var b bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= limit {
		b.Grow(int(n) + bytes.MinRead)
	}
	_, err := b.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	return b.Bytes(), err
}

// fault answers a configured failure, with the configured Retry-After.
func (s *Sink) fault(w http.ResponseWriter, rec *Request, status int, why string) {
	s.mu.Lock()
	ra := s.retryAfter
	s.mu.Unlock()
	if ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	s.answer(w, rec, status, why, nil)
}

// answer writes status with a small JSON body and records the request;
// events are accepted when status is 2xx.
func (s *Sink) answer(w http.ResponseWriter, rec *Request, status int, why string, events []auditpipe.Event) {
	rec.Status = status
	rec.Error = why
	s.finish(rec, events)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status >= 200 && status < 300 {
		fmt.Fprintf(w, `{"accepted":%d,"duplicate":%t}`, len(events), rec.Duplicate)
		return
	}
	msg, _ := json.Marshal(why)
	fmt.Fprintf(w, `{"error":%s}`, msg)
}

// finish records rec and, when it was accepted, its events.
func (s *Sink) finish(rec *Request, events []auditpipe.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Requests++
	s.stats.Bytes += int64(rec.BodyBytes)
	accepted := rec.Status >= 200 && rec.Status < 300
	if accepted {
		s.stats.Accepted++
		s.raw = append(s.raw, events...)
		if rec.IdempotencyKey != "" && s.seenKeys[rec.IdempotencyKey] {
			rec.Duplicate = true
		} else {
			if rec.IdempotencyKey != "" {
				s.seenKeys[rec.IdempotencyKey] = true
			}
			for _, ev := range events {
				if !s.seenIDs[ev.ID] {
					s.seenIDs[ev.ID] = true
					s.events = append(s.events, ev)
				}
			}
		}
	}
	if !s.cfg.CountOnly {
		s.requests = append(s.requests, *rec)
	}
	s.notifyLocked()
	s.log.Debug("webhooktest request", "path", rec.Path, "status", rec.Status, "events", len(rec.EventIDs),
		"bytes", rec.BodyBytes, "duplicate", rec.Duplicate, "error", rec.Error)
}

// enter counts a running handler, unless the sink is closing.
func (s *Sink) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.stats.InFlight++
	s.stats.PeakInFlight = max(s.stats.PeakInFlight, s.stats.InFlight)
	s.notifyLocked()
	return true
}

func (s *Sink) leave() {
	s.mu.Lock()
	s.stats.InFlight--
	s.notifyLocked()
	s.mu.Unlock()
}

// inspect lists requests (without bodies, Authorization redacted) and the
// de-duplicated events; ?raw=1 adds the raw view.
func (s *Sink) inspect(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	out := struct {
		Stats     Stats             `json:"stats"`
		Requests  []Request         `json:"requests"`
		Events    []auditpipe.Event `json:"events"`
		RawEvents []auditpipe.Event `json:"raw_events,omitempty"`
	}{Stats: s.stats, Requests: make([]Request, len(s.requests)), Events: s.events}
	for i, rq := range s.requests {
		if rq.Header.Get("Authorization") != "" {
			rq.Header = rq.Header.Clone()
			rq.Header.Set("Authorization", "[REDACTED]")
		}
		out.Requests[i] = rq
	}
	if r.URL.Query().Get("raw") != "" {
		out.RawEvents = s.raw
	}
	b, err := json.MarshalIndent(out, "", "  ")
	s.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}
