package sidecar

import (
	"context"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/sidecar/config"
	"github.com/auditpipe/auditpipe/sidecar/kafkasource"
	"github.com/auditpipe/auditpipe/transformers"
)

// newKafka builds sc's consumer: its messages go through the same stage
// (labels, skip counts) as an HTTP source's bodies and into the same
// queue and dead-letter store. It is not served over HTTP (config says
// why). It is its source's runner: started with the delivery loops (or
// by the reload that adds or changes the source), stopped by the reload
// that removes or changes it and at shutdown before the queue closes,
// then closed.
func (s *Sidecar) newKafka(cfg *config.Config, sc *config.Source, tr transformers.Transformer) (*kafkasource.Consumer, error) {
	stage, err := s.newStage(cfg, sc, tr)
	if err != nil {
		return nil, err
	}
	if s.kafkaMetrics == nil {
		s.kafkaMetrics = kafkasource.NewMetrics(s.metrics.reg)
	}
	name := sc.Name
	return kafkasource.New(*sc.Kafka, kafkasource.Options{
		Source: name,
		Stage:  stage,
		Enqueue: func(ctx context.Context, events []auditpipe.Event) error {
			if err := s.enqueue(ctx, events); err != nil {
				return err
			}
			s.metrics.received.WithLabelValues(name).Add(float64(len(events)))
			return nil
		},
		DeadLetters:     s.dlq,
		MaxMessageBytes: sc.MaxBodyBytes,
		Logger:          s.log.With("source", name),
		Metrics:         s.kafkaMetrics,
		Now:             s.now,
	})
}
