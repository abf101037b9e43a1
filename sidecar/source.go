package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/time/rate"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/dlq"
	"github.com/auditpipe/auditpipe/sidecar/auth"
	"github.com/auditpipe/auditpipe/sidecar/queue"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/external"
	"github.com/auditpipe/auditpipe/transformers/formats"
)

// source is one configured source, ready to serve.
type source struct {
	name    string
	tr      transformers.Transformer
	auth    auth.Verifier
	limiter *rate.Limiter // nil: unlimited
	maxBody int64
	labels  map[string]string // static labels and the source's own
}

func (s *Sidecar) buildSources(ctx context.Context) error {
	s.sources = map[string]*source{}
	for i := range s.cfg.Sources {
		sc := &s.cfg.Sources[i]
		at := fmt.Sprintf("sources[%d] (%s)", i, sc.Name)
		var tr transformers.Transformer
		if sc.Format == "external" {
			ext, err := external.New(ctx, *sc.Transformer, s.log.With("source", sc.Name, "component", "transformer"))
			if err != nil {
				return fmt.Errorf("%s: transformer: %w", at, err)
			}
			s.closers = append(s.closers, ext.Close)
			tr = ext
		} else {
			reg, err := formats.NewRegistry(formats.Config{Common: s.cfg.Common, Sections: sc.Sections})
			if err != nil {
				return fmt.Errorf("%s: %w", at, err)
			}
			if tr, err = reg.Get(sc.Format); err != nil {
				return fmt.Errorf("%s: format: %w", at, err)
			}
		}
		v, err := auth.New(sc.Auth)
		if err != nil {
			return fmt.Errorf("%s: auth: %w", at, err)
		}
		src := &source{name: sc.Name, tr: tr, auth: v, maxBody: sc.MaxBodyBytes, labels: maps.Clone(s.labels)}
		if src.labels == nil {
			src.labels = map[string]string{}
		}
		maps.Copy(src.labels, sc.Labels)
		if sc.RateLimit.RequestsPerSecond > 0 {
			src.limiter = rate.NewLimiter(rate.Limit(sc.RateLimit.RequestsPerSecond), sc.RateLimit.Burst)
		}
		s.sources[sc.Name] = src
		if sc.Pull != nil {
			p, err := s.newPull(sc, src)
			if err != nil {
				return fmt.Errorf("%s: pull: %w", at, err)
			}
			s.pulls = append(s.pulls, p)
		}
	}
	return nil
}

// acceptedTypes are the media types a source accepts. A missing
// Content-Type is accepted too: some senders omit it.
var acceptedTypes = map[string]bool{
	"application/json":                   true,
	"application/x-ndjson":               true,
	"application/jsonl":                  true,
	"application/cloudevents+json":       true,
	"application/cloudevents-batch+json": true,
	"text/plain":                         true, // Fluent Bit's and curl-based senders' NDJSON
}

// answer is the JSON body of every response to a source request.
type answer struct {
	Accepted int                   `json:"accepted"`
	Skipped  map[string]int        `json:"skipped,omitempty"`
	Error    string                `json:"error,omitempty"`
	Errors   []*transformers.Error `json:"errors,omitempty"`
	// DeadLettered says the payload (or its bad items) is kept in the
	// dead-letter store, so it can be fixed and replayed.
	DeadLettered bool `json:"dead_lettered,omitempty"`
}

func (s *Sidecar) serveSource(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := r.PathValue("name")
	src, ok := s.sources[name]
	code := http.StatusOK
	defer func() {
		if ok {
			s.metrics.latency.WithLabelValues(name, strconv.Itoa(code)).Observe(time.Since(start).Seconds())
		}
	}()
	reply := func(c int, a any) {
		code = c
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(c)
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.Encode(a)
	}
	type refused struct {
		Error string `json:"error"`
	}
	reject := func(c int, reason, msg string) {
		s.metrics.rejected.WithLabelValues(name, reason).Inc()
		if c == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		s.log.Debug("request rejected", "source", name, "status", c, "reason", reason, "error", msg)
		reply(c, refused{msg})
	}
	if !ok {
		reply(http.StatusNotFound, refused{fmt.Sprintf("no source named %q", name)})
		return
	}
	if s.draining.Load() {
		reject(http.StatusServiceUnavailable, "shutting_down", "shutting down; retry")
		return
	}
	if src.limiter != nil && !src.limiter.Allow() {
		reject(http.StatusServiceUnavailable, "rate_limited", "rate limit of this source exceeded; retry")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !acceptedTypes[mt] {
			reject(http.StatusUnsupportedMediaType, "content_type", fmt.Sprintf("Content-Type %q is not accepted: send application/json, application/x-ndjson or a CloudEvents type", ct))
			return
		}
	}
	body, reservation, ref := s.readBody(w, r, src.maxBody)
	if ref != nil {
		reject(ref.code, ref.reason, ref.msg)
		return
	}
	// Held until the answer is written: the body and what the transformer
	// makes of it are alive until then.
	defer reservation.release()
	if err := src.auth.Verify(r, body); err != nil {
		var ae *auth.Error
		msg := "authentication failed"
		if errors.As(err, &ae) {
			msg = ae.Error()
		}
		reject(http.StatusUnauthorized, "auth", msg)
		return
	}
	received := s.now()
	res, terr := transformers.Run(r.Context(), src.tr, transformers.Input{Body: body,
		Meta: transformers.Meta{SourceName: name, Headers: r.Header, ReceivedAt: received}})
	for reason, n := range res.Skipped {
		s.metrics.skipped.WithLabelValues(name, reason).Add(float64(n))
	}
	if terr != nil && isUnavailable(terr) {
		reject(http.StatusServiceUnavailable, "unavailable", "transformer unavailable; retry")
		return
	}
	errs := res.Errors
	if terr != nil {
		errs = append([]*transformers.Error{transformers.AsError(res.Format, terr)}, errs...)
	}
	if terr == nil && len(res.Events) == 0 && len(errs) == 0 && len(res.Skipped) == 0 {
		// An empty batch is a sender's bug more often than not: say so
		// rather than answer 200 for nothing.
		errs = []*transformers.Error{{Format: res.Format, Item: -1, Path: "$", Expected: "at least one item", Kind: transformers.ErrMissing,
			Detail: "the payload holds no items"}}
	}
	if len(res.Events) > 0 {
		if err := s.enqueue(r.Context(), src, res.Events); err != nil {
			if errors.Is(err, queue.ErrFull) {
				reject(http.StatusServiceUnavailable, "queue_full", "queue full; retry")
				return
			}
			if errors.Is(err, queue.ErrTooLarge) {
				// Retrying can never succeed: the events alone exceed
				// queue.max_bytes.
				reject(http.StatusRequestEntityTooLarge, "too_large", "the payload's events exceed the queue's size (queue.max_bytes)")
				return
			}
			s.log.Error("queueing events", "source", name, "err", err)
			reject(http.StatusServiceUnavailable, "queue_error", "events could not be queued; retry")
			return
		}
		s.metrics.received.WithLabelValues(name).Add(float64(len(res.Events)))
	}
	a := answer{Accepted: len(res.Events), Skipped: res.Skipped, Errors: errs}
	if len(errs) > 0 {
		// The payload passed authentication, so it is kept with its errors:
		// nothing a sender sent is silently discarded.
		if err := s.deadLetterPayload(r.Context(), name, body, errs, received); err != nil {
			// Events of the same payload may be queued already; the retry
			// duplicates them, which their ids make harmless, where answering
			// 4xx without keeping the payload would lose it.
			s.log.Error("dead-lettering a malformed payload", "source", name, "err", err)
			if errors.Is(err, dlq.ErrFull) {
				reject(http.StatusServiceUnavailable, "dead_letter_full", "the dead-letter store is full, so the malformed payload cannot be kept; retry")
				return
			}
			reject(http.StatusServiceUnavailable, "dead_letter_error", "could not keep the malformed payload; retry")
			return
		}
		a.DeadLettered = true
	}
	if len(errs) > 0 && len(res.Events) == 0 {
		s.metrics.rejected.WithLabelValues(name, "malformed").Inc()
		a.Error = "malformed payload: " + errs[0].Error()
		reply(http.StatusBadRequest, a)
		return
	}
	reply(http.StatusOK, a)
}

func isUnavailable(err error) bool { return errors.Is(err, transformers.ErrUnavailable) }

// enqueue enriches events with the source's labels and appends them to the
// queue; when it returns nil they are on disk. A transformer's own labels
// (security_signal) win over configured ones of the same name.
func (s *Sidecar) enqueue(ctx context.Context, src *source, events []auditpipe.Event) error {
	// All events go into one buffer; the records are cut from it once it
	// has stopped growing (it may move while it grows).
	ends := make([]int, len(events))
	var buf []byte
	for i := range events {
		ev := &events[i]
		switch {
		case len(src.labels) == 0:
		case len(ev.Labels) == 0:
			ev.Labels = src.labels // shared: labels are read-only
		default:
			l := maps.Clone(src.labels)
			maps.Copy(l, ev.Labels)
			ev.Labels = l
		}
		buf = ev.AppendJSON(buf)
		ends[i] = len(buf)
		if !s.outputs.Selects(ev) {
			s.metrics.unmatched.Inc()
		}
	}
	recs := make([][]byte, len(events))
	start := 0
	for i, end := range ends {
		recs[i] = buf[start:end:end]
		start = end
	}
	_, err := s.queue.Append(ctx, recs)
	return err
}

func (s *Sidecar) deadLetterPayload(ctx context.Context, source string, body []byte, errs []*transformers.Error, at time.Time) error {
	msg := errs[0].Error()
	if len(errs) > 1 {
		msg = fmt.Sprintf("%s (and %d more errors)", msg, len(errs)-1)
	}
	return s.dlq.DeadLetter(ctx, []outputs.DeadLetter{{Time: at.UTC(), Source: source, Error: msg, Payload: body}})
}
