package sidecar

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/auditpipe/auditpipe/outputs/dlq"
	"github.com/auditpipe/auditpipe/sidecar/queue"
)

// metrics are the sidecar's own Prometheus collectors. Output and queue
// figures are read from their owners' counters at scrape time, so there is
// one source of truth for each number.
type metrics struct {
	reg       *prometheus.Registry
	received  *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	skipped   *prometheus.CounterVec
	unmatched prometheus.Counter
	latency   *prometheus.HistogramVec
	// reloadOK and reloadTime are Prometheus's own reload metrics, under
	// auditpipe's prefix: the last reload's outcome, and when the
	// configuration last loaded successfully (the start counts).
	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge
}

func newMetrics(now time.Time) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditpipe_received_events_total",
			Help: "Events accepted into the queue, by source.",
		}, []string{"source"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditpipe_rejected_requests_total",
			Help: "Requests not accepted, by source and reason (auth, too_large, content_type, content_encoding, malformed, rate_limited, busy, read, read_timeout, queue_full, queue_error, dead_letter_full, dead_letter_error, unavailable, shutting_down).",
		}, []string{"source", "reason"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditpipe_skipped_items_total",
			Help: "Payload items that are not events by design (resolved alerts, other alertnames, other audit stages), by source and reason.",
		}, []string{"source", "reason"}),
		unmatched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditpipe_unmatched_events_total",
			Help: "Queued events that no output's match selects.",
		}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "auditpipe_request_duration_seconds",
			Help:    "Time from request to answer, by source and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"source", "code"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditpipe_config_last_reload_successful",
			Help: "1 if the last configuration reload succeeded (or none was tried since the start), 0 if it failed and the previous configuration is still running.",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditpipe_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last loaded successfully, at the start or by a reload (Unix seconds).",
		}),
	}
	m.reloadOK.Set(1)
	m.reloadTime.Set(float64(now.UnixNano()) / 1e9)
	reg.MustRegister(m.received, m.rejected, m.skipped, m.unmatched, m.latency, m.reloadOK, m.reloadTime,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// watch registers the collectors that read the queue.
func (m *metrics) watch(q *queue.Queue, now func() time.Time) {
	gauge := func(name, help string, f func(queue.Stats) float64) {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(q.Stats()) }))
	}
	gauge("auditpipe_queue_bytes", "Bytes retained in the queue.", func(s queue.Stats) float64 { return float64(s.Bytes) })
	gauge("auditpipe_queue_max_bytes", "The queue's size bound (queue.max_bytes).", func(s queue.Stats) float64 { return float64(s.MaxBytes) })
	gauge("auditpipe_queue_events", "Events retained in the queue.", func(s queue.Stats) float64 { return float64(s.Records) })
	gauge("auditpipe_queue_segments", "Segment files of the queue.", func(s queue.Stats) float64 { return float64(s.Segments) })
	gauge("auditpipe_queue_append_failing", "1 while appends fail (a full disk, an I/O error): senders get 503.", func(s queue.Stats) float64 {
		if s.AppendErr != nil {
			return 1
		}
		return 0
	})
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "auditpipe_queue_damaged_records_total",
		Help: "Acknowledged records found damaged on disk and skipped when the queue was opened (the ranges are logged at ERROR and listed by /readyz)."},
		func() float64 { return float64(q.Stats().Damaged) }))
}

// watchOutputs registers the per-output series. The outputs are those of
// the current configuration at each scrape, so a reload that adds or
// removes one adds or removes its series; a changed output's counters
// carry on from the earlier routes' (output.stats).
func (m *metrics) watchOutputs(current func() []*output, q *queue.Queue, now func() time.Time) {
	m.reg.MustRegister(&outputCollector{current: current, q: q, now: now})
}

type outputCollector struct {
	current func() []*output
	q       *queue.Queue
	now     func() time.Time
}

var (
	outputLabel        = []string{"output"}
	descDelivered      = prometheus.NewDesc("auditpipe_delivered_events_total", "Events the output's destination accepted.", outputLabel, nil)
	descRetried        = prometheus.NewDesc("auditpipe_retried_events_total", "Event re-sends after retryable failures.", outputLabel, nil)
	descDeadLettered   = prometheus.NewDesc("auditpipe_dead_lettered_events_total", "Events the destination rejected for good, now in the dead-letter store.", outputLabel, nil)
	descFailedAttempts = prometheus.NewDesc("auditpipe_failed_attempts_total", "Write attempts that failed in part or in whole.", outputLabel, nil)
	descUp             = prometheus.NewDesc("auditpipe_output_up", "1 unless the output's last attempt failed as a whole (destination down, credentials rejected).", outputLabel, nil)
	descLag            = prometheus.NewDesc("auditpipe_output_lag_seconds", "Age of the oldest queued event the output has not yet delivered; 0 when caught up.", outputLabel, nil)
	descPending        = prometheus.NewDesc("auditpipe_output_pending_events", "Queued events the output has not yet acknowledged.", outputLabel, nil)
)

func (c *outputCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDelivered, descRetried, descDeadLettered, descFailedAttempts, descUp, descLag, descPending} {
		ch <- d
	}
}

func (c *outputCollector) Collect(ch chan<- prometheus.Metric) {
	outs := c.current()
	if len(outs) == 0 {
		return
	}
	qs := c.q.Stats()
	now := c.now()
	for _, o := range outs {
		name := o.name()
		st := o.stats()
		ch <- prometheus.MustNewConstMetric(descDelivered, prometheus.CounterValue, float64(st.Delivered), name)
		ch <- prometheus.MustNewConstMetric(descRetried, prometheus.CounterValue, float64(st.Retried), name)
		ch <- prometheus.MustNewConstMetric(descDeadLettered, prometheus.CounterValue, float64(st.DeadLettered), name)
		ch <- prometheus.MustNewConstMetric(descFailedAttempts, prometheus.CounterValue, float64(st.FailedAttempts), name)
		up := 1.0
		if o.route.Health() != nil {
			up = 0
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, name)
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, lag(qs, name, now).Seconds(), name)
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(qs.Consumers[name].Pending), name)
	}
}

// reloaded records a reload's outcome.
func (m *metrics) reloaded(ok bool, at time.Time) {
	if !ok {
		m.reloadOK.Set(0)
		return
	}
	m.reloadOK.Set(1)
	m.reloadTime.Set(float64(at.UnixNano()) / 1e9)
}

// watchInflight exposes the request bytes being read and transformed,
// and their bound, so a 503 "busy" can be told from a full queue.
func (m *metrics) watchInflight(f *inflight) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "auditpipe_inflight_bytes",
			Help: "Request bytes being read and transformed now."}, func() float64 { return float64(f.used.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "auditpipe_inflight_max_bytes",
			Help: "The bound on request bytes in flight (server.max_inflight_bytes)."}, func() float64 { return float64(f.limit) }),
	)
}

// watchDeadLetters exposes the dead-letter store's size and failures: when
// it cannot write, malformed payloads get 503 instead of being kept.
func (m *metrics) watchDeadLetters(d *dlq.Store) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "auditpipe_dead_letter_bytes",
			Help: "Bytes held by the dead-letter store's files."}, func() float64 { return float64(d.Stats().Bytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "auditpipe_dead_letter_max_bytes",
			Help: "The dead-letter store's bound (dead_letter.max_bytes)."}, func() float64 { return float64(d.Stats().MaxBytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "auditpipe_dead_letter_failing",
			Help: "1 while the dead-letter store cannot write (full, or an I/O error)."}, func() float64 {
			if d.Stats().Err != nil {
				return 1
			}
			return 0
		}),
	)
}

func lag(s queue.Stats, output string, now time.Time) time.Duration {
	c, ok := s.Consumers[output]
	if !ok || c.OldestPending.IsZero() {
		return 0
	}
	if d := now.Sub(c.OldestPending); d > 0 {
		return d
	}
	return 0
}
