package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"time"

	"golang.org/x/time/rate"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/internal/ingest"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/dlq"
	"github.com/auditpipe/auditpipe/sidecar/auth"
	"github.com/auditpipe/auditpipe/sidecar/config"
	"github.com/auditpipe/auditpipe/sidecar/queue"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/external"
	"github.com/auditpipe/auditpipe/transformers/formats"
)

// source is one configured source, ready to serve. A reload that leaves
// its configuration as it was keeps the same value.
type source struct {
	name    string
	cfg     config.Source // as built, to tell whether a reload changed it
	tr      transformers.Transformer
	stage   *ingest.Stage // tr, with the static labels and the source's own
	auth    auth.Verifier
	limiter *rate.Limiter // nil: unlimited
	maxBody int64
	// closer releases what tr holds (an external transformer's process);
	// nil when nothing.
	closer func() error
	// runner is the source's own loop (a pull source's poller, a Kafka
	// consumer), nil for a source that is only posted to; run is it
	// running, under reloadMu.
	runner runner
	run    *running
	// consumer marks a Kafka source, which is not served over HTTP.
	consumer bool
	metrics  *sourceMetrics
}

// newSource builds the source sc of the configuration cfg.
func (s *Sidecar) newSource(ctx context.Context, cfg *config.Config, sc *config.Source) (_ *source, err error) {
	src := &source{name: sc.Name, cfg: *sc, maxBody: sc.MaxBodyBytes, metrics: s.metrics.forSource(sc.Name)}
	defer func() {
		if err != nil {
			src.close(s.log)
		}
	}()
	if sc.Format == "external" {
		ext, err := external.New(ctx, *sc.Transformer, s.log.With("source", sc.Name, "component", "transformer"))
		if err != nil {
			return nil, fmt.Errorf("transformer: %w", err)
		}
		src.closer = ext.Close
		src.tr = ext
	} else {
		reg, err := formats.NewRegistry(formats.Config{Common: cfg.Common, Sections: sc.Sections})
		if err != nil {
			return nil, err
		}
		if src.tr, err = reg.Get(sc.Format); err != nil {
			return nil, fmt.Errorf("format: %w", err)
		}
	}
	if sc.Kafka != nil {
		// Consumed, not served over HTTP (config says why): no
		// credentials, and requests to its name get 404.
		src.consumer = true
		if src.runner, err = s.newKafka(cfg, sc, src.tr); err != nil {
			return nil, fmt.Errorf("kafka: %w", err)
		}
		return src, nil
	}
	if src.auth, err = auth.New(sc.Auth); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if src.stage, err = s.newStage(cfg, sc, src.tr); err != nil {
		return nil, err
	}
	if sc.RateLimit.RequestsPerSecond > 0 {
		src.limiter = rate.NewLimiter(rate.Limit(sc.RateLimit.RequestsPerSecond), sc.RateLimit.Burst)
	}
	if sc.Pull != nil {
		if src.runner, err = s.newPull(sc, src); err != nil {
			return nil, fmt.Errorf("pull: %w", err)
		}
	}
	return src, nil
}

// close releases the source's transformer. Its loop, if any, has ended.
func (src *source) close(log *slog.Logger) {
	if src.closer == nil {
		return
	}
	if err := src.closer(); err != nil {
		log.Error("closing a transformer", "source", src.name, "err", err)
	}
}

// answer is the JSON body of the answer to a payload that was transformed
// and persisted; a refusal's is refused.
type answer struct {
	Accepted int                   `json:"accepted"`
	Skipped  map[string]int        `json:"skipped,omitempty"`
	Error    string                `json:"error,omitempty"`
	Errors   []*transformers.Error `json:"errors,omitempty"`
	// DeadLettered says the payload (or its bad items) is kept in the
	// dead-letter store, so it can be fixed and replayed.
	DeadLettered bool `json:"dead_lettered,omitempty"`
}

// refused is the body of a refusal.
type refused struct {
	Error string `json:"error"`
}

// newStage makes the stage sc's payloads go through: tr, the static
// labels under the source's own, and its skips counted per source.
func (s *Sidecar) newStage(cfg *config.Config, sc *config.Source, tr transformers.Transformer) (*ingest.Stage, error) {
	labels := cfg.StaticLabels(s.opts.Env)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, sc.Labels)
	name, skipped := sc.Name, s.metrics.skipped
	return ingest.New(ingest.Config{Transformer: tr, Labels: labels, OnSkip: func(reason string, n int) {
		skipped.WithLabelValues(name, reason).Add(float64(n))
	}})
}

func (s *Sidecar) serveSource(w http.ResponseWriter, r *http.Request) {
	s.serveSourceNamed(w, r, r.PathValue("name"))
}

func (s *Sidecar) serveSourceNamed(w http.ResponseWriter, r *http.Request, name string) {
	start := time.Now()
	// The whole request is served by the generation it started with: a
	// reload meanwhile changes nothing under it.
	g := s.acquire()
	defer g.release()
	src, ok := g.sources[name]
	if !ok || src.consumer {
		writeAnswer(w, http.StatusNotFound, refused{fmt.Sprintf("no source named %q", name)})
		return
	}
	code := s.handle(w, r, src)
	src.metrics.observe(code, time.Since(start).Seconds())
}

// handle answers one request to src and returns the status it answered.
func (s *Sidecar) handle(w http.ResponseWriter, r *http.Request, src *source) int {
	body, held, ref := s.admit(w, r, src)
	// Held until the answer is written: the body and what the transformer
	// makes of it are alive until then.
	defer held.release()
	if ref != nil {
		return s.refuse(w, src.name, ref)
	}
	received := s.now()
	out, ref := s.transform(r, src, body, received)
	if ref != nil {
		return s.refuse(w, src.name, ref)
	}
	if ref := s.persist(r.Context(), src, body, &out, received); ref != nil {
		return s.refuse(w, src.name, ref)
	}
	return s.reply(w, src.name, &out)
}

// transform runs the body through the source's stage. The one refusal is
// a transformer that could not run: nothing is wrong with the payload,
// and the sender retries.
func (s *Sidecar) transform(r *http.Request, src *source, body []byte, at time.Time) (ingest.Outcome, *refusal) {
	var res transformers.Result
	out, err := src.stage.Ingest(r.Context(), &transformers.Input{Body: body,
		Meta: transformers.Meta{SourceName: src.name, Headers: r.Header, ReceivedAt: at}}, nil, &res)
	if err != nil {
		return out, &refusal{http.StatusServiceUnavailable, "unavailable", "transformer unavailable; retry"}
	}
	return out, nil
}

// persist makes the outcome durable before anything is answered: the
// events into the queue, then a malformed payload, whole, into the
// dead-letter store. The sidecar keeps the body as sent, where the plugin
// keeps each bad record: the sender retries a body, and its HTTP answer
// already lists every bad item.
func (s *Sidecar) persist(ctx context.Context, src *source, body []byte, out *ingest.Outcome, at time.Time) *refusal {
	name := src.name
	if len(out.Events) > 0 {
		if err := s.enqueue(ctx, out.Events); err != nil {
			return s.queueRefusal(name, err)
		}
		src.metrics.received.Add(float64(len(out.Events)))
	}
	if !out.Malformed() {
		return nil
	}
	// The payload passed authentication, so it is kept with its errors:
	// nothing a sender sent is silently discarded.
	if err := s.dlq.DeadLetter(ctx, []outputs.DeadLetter{out.Letter(at, body)}); err != nil {
		// Events of the same payload may be queued already; the retry
		// duplicates them, which their ids make harmless, where answering
		// 4xx without keeping the payload would lose it.
		s.log.Error("dead-lettering a malformed payload", "source", name, "err", err)
		if errors.Is(err, dlq.ErrFull) {
			return &refusal{http.StatusServiceUnavailable, "dead_letter_full", "the dead-letter store is full, so the malformed payload cannot be kept; retry"}
		}
		return &refusal{http.StatusServiceUnavailable, "dead_letter_error", "could not keep the malformed payload; retry"}
	}
	return nil
}

func (s *Sidecar) queueRefusal(name string, err error) *refusal {
	switch {
	case errors.Is(err, queue.ErrFull):
		return &refusal{http.StatusServiceUnavailable, "queue_full", "queue full; retry"}
	case errors.Is(err, queue.ErrTooLarge):
		// Retrying can never succeed: the events alone exceed
		// queue.max_bytes.
		return &refusal{http.StatusRequestEntityTooLarge, "too_large", "the payload's events exceed the queue's size (queue.max_bytes)"}
	case errors.Is(err, context.Canceled):
		// The sender went away while its events were being written: it
		// gets no answer and will send again. Not the queue's failure.
		s.log.Debug("sender gone while queueing its events", "source", name, "err", err)
		return &refusal{http.StatusServiceUnavailable, "client_gone", "request canceled; retry"}
	}
	s.log.Error("queueing events", "source", name, "err", err)
	return &refusal{http.StatusServiceUnavailable, "queue_error", "events could not be queued; retry"}
}

// reply answers a payload that is persisted: 400 when nothing of it was
// an event (it is in the dead-letter store), 200 with what was accepted,
// skipped and kept otherwise.
func (s *Sidecar) reply(w http.ResponseWriter, name string, out *ingest.Outcome) int {
	if len(out.Skipped) == 0 && len(out.Errors) == 0 && !out.Malformed() {
		return writeAccepted(w, len(out.Events))
	}
	a := answer{Accepted: len(out.Events), Skipped: out.Skipped, Errors: out.Errors, DeadLettered: out.Malformed()}
	if out.Malformed() && len(out.Events) == 0 {
		s.metrics.rejected.WithLabelValues(name, "malformed").Inc()
		a.Error = "malformed payload: " + out.Errors[0].Error()
		return writeAnswer(w, http.StatusBadRequest, a)
	}
	return writeAnswer(w, http.StatusOK, a)
}

// refuse answers a request that is not taken, or not yet: 503s carry
// Retry-After, since every one of them is worth a retry.
func (s *Sidecar) refuse(w http.ResponseWriter, name string, ref *refusal) int {
	s.metrics.rejected.WithLabelValues(name, ref.reason).Inc()
	s.log.Debug("request rejected", "source", name, "status", ref.code, "reason", ref.reason, "error", ref.msg)
	return writeRefusal(w, ref)
}

// writeRefusal writes ref's answer: its status and message, and
// Retry-After on a 503.
func writeRefusal(w http.ResponseWriter, ref *refusal) int {
	if ref.code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	return writeAnswer(w, ref.code, refused{ref.msg})
}

// writeAnswer writes body as the JSON answer and returns code.
func writeAnswer(w http.ResponseWriter, code int, body any) int {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(body)
	return code
}

// enqueue appends labelled events to the queue; when it returns nil they
// are on disk. Each event is encoded straight into the queue's frames.
func (s *Sidecar) enqueue(ctx context.Context, events []auditpipe.Event) error {
	sel := s.gen.Load().selects
	hint := 0
	for i := range events {
		ev := &events[i]
		// The details and up to a kilobyte of the other fields: one
		// allocation for nearly every request.
		hint += len(ev.Details) + 1024
		if !sel.Selects(ev) {
			s.metrics.unmatched.Inc()
		}
	}
	_, err := s.queue.AppendFunc(ctx, len(events), hint, func(dst []byte, i int) []byte {
		return eventjson.Append(dst, &events[i])
	})
	return err
}
