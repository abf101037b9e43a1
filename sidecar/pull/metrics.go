package pull

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/promreg"
)

// Metrics are the pull sources' Prometheus collectors, labelled by source.
// One Metrics serves every Poller of a process.
type Metrics struct {
	// Polls counts polls by result: ok (the new entries are queued and the
	// watermark persisted) or error (nothing advanced; retried at the next
	// interval).
	Polls *prometheus.CounterVec
	// Events counts new events handed to Enqueue and accepted.
	Events *prometheus.CounterVec
	// ItemErrors counts new entries the transformer could not map.
	ItemErrors *prometheus.CounterVec
	// Gaps counts polls whose page may not have reached back to the last
	// poll's entries: some entries may have been missed.
	Gaps *prometheus.CounterVec
	// LastSuccess is the Unix time of the last ok poll; alert on its age.
	LastSuccess *prometheus.GaugeVec
}

// NewMetrics creates the collectors and registers them with reg (when not
// nil). Collectors a previous call already registered with reg are reused,
// so building a second sidecar on the same registry does not fail.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditpipe_pull_polls_total",
			Help: "Polls of pull sources by result (ok, error).",
		}, []string{"source", "result"}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditpipe_pull_events_total",
			Help: "New events a pull source queued.",
		}, []string{"source"}),
		ItemErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditpipe_pull_item_errors_total",
			Help: "New entries of a pull source that could not be turned into events.",
		}, []string{"source"}),
		Gaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditpipe_pull_gaps_total",
			Help: "Polls whose page came back full of new entries: older entries may have been missed (poll faster or raise the limit).",
		}, []string{"source"}),
		LastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditpipe_pull_last_success_timestamp_seconds",
			Help: "Unix time of a pull source's last successful poll.",
		}, []string{"source"}),
	}
	if reg == nil {
		return m
	}
	m.Polls = promreg.Register(reg, m.Polls)
	m.Events = promreg.Register(reg, m.Events)
	m.ItemErrors = promreg.Register(reg, m.ItemErrors)
	m.Gaps = promreg.Register(reg, m.Gaps)
	m.LastSuccess = promreg.Register(reg, m.LastSuccess)
	return m
}

// init creates the source's series at zero, so that dashboards and
// rate() see them before the first increment.
func (m *Metrics) init(source string) {
	if m == nil {
		return
	}
	m.Polls.WithLabelValues(source, "ok")
	m.Polls.WithLabelValues(source, "error")
	m.Events.WithLabelValues(source)
	m.ItemErrors.WithLabelValues(source)
	m.Gaps.WithLabelValues(source)
}
