package kafkasource

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditpipe/auditpipe/internal/promreg"
)

// Metrics are the Kafka sources' Prometheus collectors, labelled by
// source. One Metrics serves every Consumer of a process.
type Metrics struct {
	// Messages counts messages whose outcome is durable (and whose offset
	// may therefore be committed), by outcome: queued (events in the
	// queue), skipped (nothing in it is an event by design: resolved
	// alerts, other alertnames) or dead_lettered (the message, or the
	// part of it that was malformed, is in the dead-letter store).
	Messages *prometheus.CounterVec
	// Retries counts waits before trying a message again, by reason:
	// transformer_unavailable, queue (full, or its disk failing),
	// dead_letter (the store full or failing). The partition stands still
	// meanwhile and nothing is committed past the message.
	Retries *prometheus.CounterVec
	// Lag is, per partition this instance owns, the messages between the
	// last one made durable here and the partition's high watermark at the
	// last fetch.
	Lag *prometheus.GaugeVec
	// Rebalances counts partition assignment changes by event: assigned,
	// revoked (handed over cleanly: what was durable was committed) and
	// lost (the group dropped this instance: nothing could be committed).
	Rebalances *prometheus.CounterVec
	// Partitions is how many partitions the instance owns now.
	Partitions *prometheus.GaugeVec
	// CommitErrors counts offset commits that failed, in whole or for a
	// partition; the offsets are committed again with the next commit, or
	// read again by the partition's next owner.
	CommitErrors *prometheus.CounterVec
	// FetchErrors counts errors fetching from the brokers (the client
	// retries them).
	FetchErrors *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them with reg (when not
// nil). Collectors a previous call already registered with reg are reused,
// so building a second sidecar on the same registry does not fail.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditpipe_kafka_messages_total",
			Help: "Messages of Kafka sources made durable, by outcome (queued, skipped, dead_lettered).",
		}, []string{"source", "outcome"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditpipe_kafka_retries_total",
			Help: "Waits of a Kafka source's partition before trying a message again, by reason (transformer_unavailable, queue, dead_letter).",
		}, []string{"source", "reason"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditpipe_kafka_consumer_lag",
			Help: "Messages of a partition this instance owns that are not yet in its queue: the high watermark at the last fetch minus the next offset to make durable.",
		}, []string{"source", "topic", "partition"}),
		Rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditpipe_kafka_rebalances_total",
			Help: "Partition assignment changes of a Kafka source, by event (assigned, revoked, lost).",
		}, []string{"source", "event"}),
		Partitions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditpipe_kafka_assigned_partitions",
			Help: "Partitions a Kafka source's consumer owns now.",
		}, []string{"source"}),
		CommitErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditpipe_kafka_commit_errors_total",
			Help: "Offset commits of a Kafka source that failed, in whole or for a partition.",
		}, []string{"source"}),
		FetchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditpipe_kafka_fetch_errors_total",
			Help: "Errors fetching from the brokers of a Kafka source (retried by the client).",
		}, []string{"source"}),
	}
	if reg == nil {
		return m
	}
	m.Messages = promreg.Register(reg, m.Messages)
	m.Retries = promreg.Register(reg, m.Retries)
	m.Lag = promreg.Register(reg, m.Lag)
	m.Rebalances = promreg.Register(reg, m.Rebalances)
	m.Partitions = promreg.Register(reg, m.Partitions)
	m.CommitErrors = promreg.Register(reg, m.CommitErrors)
	m.FetchErrors = promreg.Register(reg, m.FetchErrors)
	return m
}

// init creates the source's series at zero, so that dashboards and
// rate() see them before the first increment.
func (m *Metrics) init(source string) {
	for _, o := range []string{outcomeQueued, outcomeSkipped, outcomeDeadLettered} {
		m.Messages.WithLabelValues(source, o)
	}
	for _, r := range []string{retryUnavailable, retryQueue, retryDeadLetter} {
		m.Retries.WithLabelValues(source, r)
	}
	for _, e := range []string{"assigned", "revoked", "lost"} {
		m.Rebalances.WithLabelValues(source, e)
	}
	m.Partitions.WithLabelValues(source)
	m.CommitErrors.WithLabelValues(source)
	m.FetchErrors.WithLabelValues(source)
}

// Outcomes and retry reasons, as the metrics label them.
const (
	outcomeQueued       = "queued"
	outcomeSkipped      = "skipped"
	outcomeDeadLettered = "dead_lettered"

	retryUnavailable = "transformer_unavailable"
	retryQueue       = "queue"
	retryDeadLetter  = "dead_letter"
)
