package sidecar

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"

	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/fanout"
	"github.com/auditpipe/auditpipe/outputs/standard"
	"github.com/auditpipe/auditpipe/sidecar/config"
	"github.com/auditpipe/auditpipe/sidecar/queue"
)

// generation is one loaded configuration as requests see it: the sources
// by name and the outputs. It is immutable once published (Sidecar.gen),
// so a request finds its source with one atomic load and no lock, and
// finishes on the generation it started with however many reloads happen
// meanwhile. What a reload keeps (a source or an output whose settings did
// not change) is the same value in both generations.
type generation struct {
	cfg     *config.Config
	sources map[string]*source
	outputs []*output
	// selects holds the outputs' routes for Selects (the unmatched count).
	selects *fanout.Set

	// refs counts the requests using the generation, plus one while it is
	// the current one; done is closed when it drops to zero, after which
	// it never rises again. The transformers of the sources a reload
	// replaced are closed then, not under a request still using them.
	refs atomic.Int64
	done chan struct{}
}

func newGeneration(cfg *config.Config) *generation {
	g := &generation{cfg: cfg, sources: map[string]*source{}, done: make(chan struct{})}
	g.refs.Store(1)
	return g
}

// acquire returns the current generation, counted as in use until
// release. Two atomic operations and no allocation: it is on every
// request's path.
func (s *Sidecar) acquire() *generation {
	for {
		g := s.gen.Load()
		if n := g.refs.Load(); n > 0 && g.refs.CompareAndSwap(n, n+1) {
			return g
		}
		// g was retired and is done with: the next load finds its
		// successor.
	}
}

func (g *generation) release() {
	if g.refs.Add(-1) == 0 {
		close(g.done)
	}
}

// output is one configured output with what outlives a reload that
// changes its settings: the queue reader (same name, same cursor), the
// hash chain's head, and its counters so far.
type output struct {
	cfg   fanout.OutputConfig
	route *fanout.Route
	rd    *queue.Reader
	chain *chain // nil unless sealed
	// base holds the counters of the output's earlier routes (before
	// reloads that changed it), so that its metrics never go back.
	base outputs.Stats
	// loop is the running delivery loop; changed only under reloadMu.
	loop *loop
}

func (o *output) name() string { return o.cfg.Name }

// stats are the output's counters since the sidecar started.
func (o *output) stats() outputs.Stats {
	st := o.route.Stats()
	return outputs.Stats{Delivered: o.base.Delivered + st.Delivered, Retried: o.base.Retried + st.Retried,
		DeadLettered: o.base.DeadLettered + st.DeadLettered, FailedAttempts: o.base.FailedAttempts + st.FailedAttempts}
}

// outputConfigs returns cfg's outputs, or the default single stdout
// output that fanout.Build makes of none.
func outputConfigs(cfg *config.Config) []fanout.OutputConfig {
	if len(cfg.Outputs) == 0 {
		return []fanout.OutputConfig{{Name: "stdout", Type: "stdout"}}
	}
	return cfg.Outputs
}

// sameOutput reports whether two output entries configure the same thing.
// The decoded settings are compared, not their YAML nodes, which carry
// line numbers that move when anything above them is edited.
func sameOutput(a, b *fanout.OutputConfig) bool {
	return a.Name == b.Name && a.Type == b.Type && reflect.DeepEqual(a.Match, b.Match) &&
		reflect.DeepEqual(a.Retry, b.Retry) && reflect.DeepEqual(a.Batch, b.Batch) &&
		reflect.DeepEqual(a.Integrity, b.Integrity) && reflect.DeepEqual(a.Settings, b.Settings)
}

// buildOutput builds the route of the i-th output entry c.
func (s *Sidecar) buildOutput(ctx context.Context, i int, c fanout.OutputConfig) (*fanout.Route, error) {
	set, err := fanout.Build(ctx, standard.Registry(), []fanout.OutputConfig{c},
		fanout.Deps{Logger: s.log, DeadLetters: s.dlq, Version: s.opts.Version})
	if err != nil {
		var ee *fanout.EntryError
		if errors.As(err, &ee) {
			ee.Index = i
		}
		return nil, err
	}
	return set.Routes[0], nil
}

// sourcesKeepable reports whether sources configured alike in a and b
// come out alike: what every source takes from the rest of the file
// (the static labels, redact and limits) did not change.
func sourcesKeepable(a, b *config.Config) bool {
	return reflect.DeepEqual(a.Labels, b.Labels) && reflect.DeepEqual(a.PodLabels, b.PodLabels) &&
		reflect.DeepEqual(a.Common, b.Common) && a.Server.MaxBodyBytes == b.Server.MaxBodyBytes
}

// buildSources makes g's sources, reusing those of old (nil at startup)
// whose configuration is unchanged: the same value, with its transformer
// process, its rate limiter's state and its running loop. On error it
// closes what it built and leaves g without sources.
func (s *Sidecar) buildSources(ctx context.Context, g, old *generation) error {
	keep := old != nil && sourcesKeepable(old.cfg, g.cfg)
	srcs := make(map[string]*source, len(g.cfg.Sources))
	for i := range g.cfg.Sources {
		sc := &g.cfg.Sources[i]
		if keep {
			if prev, ok := old.sources[sc.Name]; ok && reflect.DeepEqual(prev.cfg, *sc) {
				srcs[sc.Name] = prev
				continue
			}
		}
		src, err := s.newSource(ctx, g.cfg, sc)
		if err != nil {
			for _, b := range srcs {
				if old == nil || old.sources[b.name] != b {
					b.close(s.log)
				}
			}
			return fmt.Errorf("sources[%d] (%s): %w", i, sc.Name, err)
		}
		srcs[sc.Name] = src
	}
	g.sources = srcs
	return nil
}
