package sidecar

import (
	"context"
	"path/filepath"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/internal/ingest"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/sidecar/config"
	"github.com/auditpipe/auditpipe/sidecar/pull"
	"github.com/auditpipe/auditpipe/transformers"
)

// pullSource polls an app's audit endpoint instead of being posted to.
// It is a runner that makes its Poller when it starts: the Poller reads
// the watermark then, after the source's previous version (before a
// reload) has stopped and saved its own, so the pair never polls at once
// and the new one carries on where the old one left off.
type pullSource struct {
	cfg  pull.Config
	opts pull.Options
}

// newPull checks sc's pull settings by making a Poller (which reads the
// watermark, so an unreadable one fails here, before anything runs).
func (s *Sidecar) newPull(sc *config.Source, src *source) (*pullSource, error) {
	pc := sc.Pull
	cfg := pull.Config{URL: pc.URL, Limit: pc.Limit, Interval: pc.Interval, BearerToken: pc.BearerToken,
		Headers: pc.Headers, TLS: pc.TLS, Timeout: pc.Timeout}
	if s.pullMetrics == nil { // New and reloads run one at a time
		s.pullMetrics = pull.NewMetrics(s.metrics.reg)
	}
	opts := pull.Options{
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
	}
	if _, err := pull.New(cfg, opts); err != nil {
		return nil, err
	}
	return &pullSource{cfg: cfg, opts: opts}, nil
}

func (p *pullSource) Run(ctx context.Context) error {
	poller, err := pull.New(p.cfg, p.opts)
	if err != nil {
		return err
	}
	return poller.Run(ctx)
}
