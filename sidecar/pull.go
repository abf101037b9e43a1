package sidecar

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/internal/ingest"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/sidecar/config"
	"github.com/auditpipe/auditpipe/sidecar/pull"
	"github.com/auditpipe/auditpipe/transformers"
)

// pullSource polls an app's audit endpoint instead of being posted to.
type pullSource struct {
	name   string
	poller *pull.Poller
	s      *Sidecar
}

func (s *Sidecar) newPull(sc *config.Source, src *source) (*pullSource, error) {
	pc := sc.Pull
	cfg := pull.Config{URL: pc.URL, Limit: pc.Limit, Interval: pc.Interval, BearerToken: pc.BearerToken,
		Headers: pc.Headers, TLS: pc.TLS, Timeout: pc.Timeout}
	if s.pullMetrics == nil {
		s.pullMetrics = pull.NewMetrics(s.metrics.reg)
	}
	p, err := pull.New(cfg, pull.Options{
		Source:      sc.Name,
		Transformer: src.tr,
		Enqueue: func(ctx context.Context, events []auditpipe.Event) error {
			// The poller runs the transformer itself (entry by entry, with
			// its own ids for duplicates); the labels are the stage's.
			src.stage.Label(events, nil)
			if err := s.enqueue(ctx, events); err != nil {
				return err
			}
			s.metrics.received.WithLabelValues(sc.Name).Add(float64(len(events)))
			return nil
		},
		Reject: func(ctx context.Context, entry []byte, errs []*transformers.Error) error {
			return s.dlq.DeadLetter(ctx, []outputs.DeadLetter{{Time: s.now().UTC(), Source: sc.Name, Error: ingest.Summary(errs), Payload: entry}})
		},
		StateDir: filepath.Join(s.cfg.DataDir, "pull"),
		Logger:   s.log.With("source", sc.Name),
		Metrics:  s.pullMetrics,
		Now:      s.now,
	})
	if err != nil {
		return nil, err
	}
	return &pullSource{name: sc.Name, poller: p, s: s}, nil
}

func (p *pullSource) run(ctx context.Context) {
	if err := p.poller.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		p.s.log.Error("pull source stopped", "source", p.name, "err", err)
	}
}
