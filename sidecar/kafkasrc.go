package sidecar

import (
	"context"
	"errors"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/sidecar/config"
	"github.com/auditpipe/auditpipe/sidecar/kafkasource"
	"github.com/auditpipe/auditpipe/transformers"
)

// newKafka builds sc's consumer: its messages go through the same stage
// (labels, skip counts) as an HTTP source's bodies and into the same
// queue and dead-letter store. It is not served over HTTP (config says
// why). Run starts it with the delivery loops and stops it before the
// queue closes; it is a value of its own so that a reload can start and
// stop one.
func (s *Sidecar) newKafka(sc *config.Source, tr transformers.Transformer) (*kafkasource.Consumer, error) {
	stage, err := s.newStage(sc, tr)
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

// runKafka runs a consumer until ctx ends; it returns once the consumer
// has committed and left its group.
func (s *Sidecar) runKafka(ctx context.Context, k *kafkasource.Consumer) {
	if err := k.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		s.log.Error("kafka source stopped", "err", err)
	}
}
