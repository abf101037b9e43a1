package sidecar

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sync"

	"github.com/auditpipe/auditpipe/keypath"
	"github.com/auditpipe/auditpipe/sidecar/config"
)

// Reload re-reads the configuration file (Options.ConfigFile) and, if it
// is valid and changes nothing that needs a restart, switches to it
// without stopping: everything new is built before anything is swapped,
// so a failure leaves the running configuration as it was. The error
// joins every problem found, each naming its key; each is logged too,
// and auditpipe_config_last_reload_successful says how the last reload
// went.
//
// Sources and outputs can be added, removed and changed, as can labels,
// redact, limits, ready and server.max_body_bytes/shutdown_grace; see
// restartOnly for what cannot. A request in flight finishes on the
// configuration it started with; new requests see the new one at once. An
// output whose settings did not change is not touched. A changed output
// keeps its cursor and hash chain: its loop finishes the batch it is
// delivering (stopGrace), then the new settings carry on from the same
// place. A removed output's cursor is deleted, with the queue segments
// only it still held. An added output starts with the events queued after
// the reload, not the backlog the others may still hold.
func (s *Sidecar) Reload(ctx context.Context) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	sum, err := s.reload(ctx)
	s.metrics.reloaded(err == nil, s.now())
	if err != nil {
		for _, p := range problems(err) {
			s.log.Error("configuration not reloaded; the running one stays", "problem", p.Error())
		}
		return err
	}
	s.log.Info("configuration reloaded", "file", s.opts.ConfigFile, "outputs_added", sum.added, "outputs_changed", sum.changed,
		"outputs_removed", sum.removed, "sources_started", sum.sources, "sources_stopped", sum.sourcesGone)
	return nil
}

// reloadSummary counts what a reload changed, for its log line.
type reloadSummary struct{ added, changed, removed, sources, sourcesGone int }

// problems flattens errors joined with errors.Join.
func problems(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, problems(e)...)
		}
		return out
	}
	return []error{err}
}

// serveReload is POST /-/reload: 200 once the new configuration runs,
// 500 with one problem a line when the old one stays.
func (s *Sidecar) serveReload(w http.ResponseWriter, r *http.Request) {
	// Not canceled by a client that hangs up: a reload runs to its end.
	err := s.Reload(context.WithoutCancel(r.Context()))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintln(w, "configuration not reloaded; the running one stays:")
		for _, p := range problems(err) {
			fmt.Fprintln(w, p)
		}
		return
	}
	fmt.Fprintln(w, "configuration reloaded")
}

func (s *Sidecar) reload(ctx context.Context) (reloadSummary, error) {
	var sum reloadSummary
	if s.opts.ConfigFile == "" {
		return sum, errors.New("reload: no configuration file (Options.ConfigFile)")
	}
	if s.runCtx == nil {
		return sum, errors.New("reload: the sidecar is not running")
	}
	cfg, err := config.Load(s.opts.ConfigFile, s.opts.Env)
	if err != nil {
		return sum, err
	}
	if err := restartOnly(s.cfg, cfg); err != nil {
		return sum, prefixAll(s.opts.ConfigFile+": ", err)
	}
	old := s.gen.Load()
	g := newGeneration(cfg)
	// Both are tried, so that one reload reports every problem.
	plan, oerr := s.planOutputs(ctx, old, g)
	serr := s.buildSources(ctx, g, old)
	if oerr != nil || serr != nil {
		if oerr == nil {
			s.undo(plan)
		}
		if serr == nil {
			for name, src := range g.sources {
				if old.sources[name] != src {
					src.close(s.log)
				}
			}
		}
		return sum, errors.Join(oerr, serr)
	}

	// Nothing fails from here on: the new configuration is built.
	s.applyOutputs(plan)
	g.selects = selectsOf(g.outputs)
	s.gen.Store(g)
	sum.sources, sum.sourcesGone = s.applySources(old, g)
	s.retire(old, g)
	sum.added, sum.changed, sum.removed = len(plan.added), len(plan.changed), len(plan.removed)
	return sum, nil
}

// restartOnly names each key that changed but can only take effect at a
// start: the queue and what lives in data_dir (moving it live would
// strand what is on disk), the listener, what the HTTP server was built
// with, the signing key and the logger.
func restartOnly(was, now *config.Config) error {
	var errs []error
	check := func(key string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			errs = append(errs, keypath.Errorf(key, "cannot change while running; restart the sidecar to apply it"))
		}
	}
	check("data_dir", was.DataDir, now.DataDir)
	check("queue", was.Queue, now.Queue)
	check("dead_letter", was.DeadLetter, now.DeadLetter)
	check("server.listen", was.Server.Listen, now.Server.Listen)
	check("server.tls", was.Server.TLS, now.Server.TLS)
	check("server.max_inflight_bytes", was.Server.MaxInflightBytes, now.Server.MaxInflightBytes)
	check("server.read_header_timeout", was.Server.ReadHeaderTimeout, now.Server.ReadHeaderTimeout)
	check("server.read_timeout", was.Server.ReadTimeout, now.Server.ReadTimeout)
	check("server.write_timeout", was.Server.WriteTimeout, now.Server.WriteTimeout)
	check("server.idle_timeout", was.Server.IdleTimeout, now.Server.IdleTimeout)
	check("integrity", was.Integrity, now.Integrity)
	check("log", was.Log, now.Log)
	return errors.Join(errs...)
}

// outputPlan is what a reload does to the outputs.
type outputPlan struct {
	added   []*output // new, with a new queue reader
	changed []*output // new routes for replaced's readers, in the same order
	// replaced are the running outputs that changed; removed, those the
	// new configuration lacks.
	replaced, removed []*output
}

// planOutputs builds g's outputs: the running ones that did not change
// as they are, a new route for each one that changed or is new, and a
// queue reader for each new one. On error it undoes what it built.
func (s *Sidecar) planOutputs(ctx context.Context, old, g *generation) (outputPlan, error) {
	var plan outputPlan
	running := make(map[string]*output, len(old.outputs))
	for _, o := range old.outputs {
		running[o.name()] = o
	}
	var errs []error
	for i, oc := range outputConfigs(g.cfg) {
		prev := running[oc.Name]
		delete(running, oc.Name)
		if prev != nil && sameOutput(&prev.cfg, &oc) {
			g.outputs = append(g.outputs, prev)
			continue
		}
		r, err := s.buildOutput(ctx, i, oc)
		if err != nil {
			// Built on: every output's problem is reported at once.
			errs = append(errs, err)
			continue
		}
		o := &output{cfg: oc, route: r}
		g.outputs = append(g.outputs, o)
		if prev != nil {
			o.rd = prev.rd
			plan.changed = append(plan.changed, o)
			plan.replaced = append(plan.replaced, prev)
			continue
		}
		plan.added = append(plan.added, o)
		if o.rd, err = s.queue.AddReader(oc.Name); err == nil {
			err = s.openChain(o)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("outputs[%d] (%s): %w", i, oc.Name, err))
		}
	}
	for _, o := range old.outputs {
		if running[o.name()] != nil {
			plan.removed = append(plan.removed, o)
		}
	}
	if err := errors.Join(errs...); err != nil {
		s.undo(plan)
		return outputPlan{}, err
	}
	return plan, nil
}

// undo closes the routes planOutputs built and drops the readers it
// added.
func (s *Sidecar) undo(plan outputPlan) {
	for _, o := range append(plan.added, plan.changed...) {
		if err := o.route.Output().Close(context.Background()); err != nil {
			s.log.Warn("closing an output of a configuration not loaded", "output", o.name(), "err", err)
		}
	}
	for _, o := range plan.added {
		if o.rd == nil {
			continue
		}
		if err := s.queue.RemoveReader(o.name()); err != nil {
			s.log.Warn("dropping the queue reader of an output not added", "output", o.name(), "err", err)
		}
	}
}

// applyOutputs stops the loops of the replaced and removed outputs (each
// after its batch in flight, all at once), closes them, drops the removed
// ones' cursors and starts the loops of the changed and added ones.
func (s *Sidecar) applyOutputs(plan outputPlan) {
	var wg sync.WaitGroup
	for _, o := range append(plan.replaced, plan.removed...) {
		wg.Go(func() {
			if o.loop.stop(stopGrace) {
				s.log.Warn("reload: the output's batch in flight was canceled after waiting for it; it stays queued and is sent again",
					"output", o.name(), "waited", stopGrace)
			}
			if err := o.route.Output().Close(context.Background()); err != nil {
				s.log.Warn("closing a replaced output", "output", o.name(), "err", err)
			}
		})
	}
	wg.Wait()
	for _, o := range plan.removed {
		// What it had not delivered goes with it: it is no longer
		// anyone's to deliver.
		if err := s.queue.RemoveReader(o.name()); err != nil {
			s.log.Error("reload: dropping a removed output's queue cursor", "output", o.name(), "err", err)
		}
	}
	for i, o := range plan.changed {
		prev := plan.replaced[i]
		o.base = prev.stats()
		// A batch the old loop read but did not acknowledge is read
		// again by the new one.
		o.rd.Rewind()
		switch {
		case o.route.Unsealed:
		case prev.chain != nil:
			// The chain goes on from the head the old loop committed.
			o.chain = prev.chain
		default:
			if err := s.openChain(o); err != nil {
				// Unreachable: the key was read at the start.
				s.log.Error("reload: cannot seal the output; its events stay queued", "output", o.name(), "err", err)
				continue
			}
		}
		s.startLoop(s.runCtx, o)
	}
	for _, o := range plan.added {
		s.startLoop(s.runCtx, o)
	}
}

// applySources stops the loops of the sources that the new generation
// replaced or dropped, then starts those of its new sources: a source's
// old and new loops never run at once. It returns how many it started
// and stopped.
func (s *Sidecar) applySources(old, g *generation) (started, stopped int) {
	for name, prev := range old.sources {
		if g.sources[name] != prev && prev.run != nil {
			prev.run.stop()
			prev.run = nil
			stopped++
		}
	}
	for _, src := range g.sources {
		if src.runner != nil && src.run == nil {
			src.run = start(s.runCtx, s.log, src.name, src.runner)
			started++
		}
	}
	return started, stopped
}

// retire lets go of old once the requests still using it are done, and
// then closes the transformers of its sources g did not keep. Shutdown
// stops the wait.
func (s *Sidecar) retire(old, g *generation) {
	var gone []*source
	for name, src := range old.sources {
		if g.sources[name] != src {
			gone = append(gone, src)
		}
	}
	old.release()
	s.retiring.Go(func() {
		select {
		case <-old.done:
		case <-s.retired:
		}
		for _, src := range gone {
			src.close(s.log)
		}
	})
}

// prefixAll puts p before the message of err and of each error it joins.
func prefixAll(p string, err error) error {
	var out []error
	for _, e := range problems(err) {
		out = append(out, fmt.Errorf("%s%w", p, e))
	}
	return errors.Join(out...)
}
