package sidecar

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/auditpipe/auditpipe/outputs/dlq"
	"github.com/auditpipe/auditpipe/outputs/fanout"
	"github.com/auditpipe/auditpipe/outputs/standard"
	"github.com/auditpipe/auditpipe/sidecar/config"
	"github.com/auditpipe/auditpipe/sidecar/kafkasource"
	"github.com/auditpipe/auditpipe/sidecar/pull"
	"github.com/auditpipe/auditpipe/sidecar/queue"
)

// Options are what the sidecar takes from its host besides the
// configuration.
type Options struct {
	Logger *slog.Logger
	// Version is the program's version (webhook User-Agent, logs).
	Version string
	// Env reads the environment (pod labels, ${VAR} in a reloaded
	// configuration); os.LookupEnv when nil.
	Env func(string) (string, bool)
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// ConfigFile is the file Reload reads; without it Reload fails.
	ConfigFile string
	// EnableReload serves POST /-/reload (--enable-reload). Off by
	// default, as in Prometheus: anyone who can reach the port could
	// otherwise make the sidecar re-read its file. SIGHUP needs no such
	// switch.
	EnableReload bool
}

// Sidecar is a configured, running-or-ready sidecar.
type Sidecar struct {
	// cfg is the configuration the sidecar started with, for what a
	// reload cannot change (data_dir, queue, listener, dead_letter,
	// integrity); gen.cfg is the current one.
	cfg     *config.Config
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	queue   *queue.Queue
	dlq     *dlq.Store
	metrics *metrics
	// pullMetrics are shared by every pull source, kafkaMetrics by every
	// Kafka source.
	pullMetrics  *pull.Metrics
	kafkaMetrics *kafkasource.Metrics

	// gen is the current configuration's sources and outputs; see
	// generation.
	gen atomic.Pointer[generation]

	// reloadMu serialises reloads, and them with Run's start and
	// shutdown; runCtx is the parent of the delivery and source loops
	// while Run runs (nil before and after).
	reloadMu sync.Mutex
	runCtx   context.Context
	// retiring counts the replaced generations waiting for their last
	// request before closing the transformers they alone held; retired
	// is closed at shutdown to stop waiting.
	retiring sync.WaitGroup
	retired  chan struct{}

	// inflight bounds the request bytes being read and transformed at
	// once (server.max_inflight_bytes), so memory does not grow with the
	// number of concurrent senders.
	inflight *inflight

	handler  http.Handler
	draining atomic.Bool
	ln       net.Listener

	// sealKey and instance sign the sealed outputs' hash chains; nil
	// without integrity.signing_key_file.
	sealKey  ed25519.PrivateKey
	instance string
}

// New builds everything the configuration describes: it opens the queue
// and the dead-letter store, builds the outputs and the sources, and
// listens on server.listen. Nothing is served until Run.
func New(ctx context.Context, cfg *config.Config, opts Options) (*Sidecar, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Env == nil {
		opts.Env = os.LookupEnv
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Sidecar{cfg: cfg, opts: opts, log: opts.Logger, now: opts.Now, metrics: newMetrics(opts.Now()),
		inflight: newInflight(cfg.Server.MaxInflightBytes), retired: make(chan struct{})}
	// The results are not named: a named *Sidecar would be nil by the time
	// a deferred cleanup ran on "return nil, err", and every startup error
	// would surface as a nil-pointer panic instead of its cause.
	if err := s.open(ctx); err != nil {
		s.closeAll(context.WithoutCancel(ctx))
		return nil, err
	}
	return s, nil
}

// open does New's work; on error, New undoes whatever it had opened.
func (s *Sidecar) open(ctx context.Context) (err error) {
	cfg := s.cfg
	if s.dlq, err = dlq.Open(cfg.DeadLetter); err != nil {
		return err
	}
	g := newGeneration(cfg)
	// Stored at once, so that closeAll finds whatever gets built.
	s.gen.Store(g)
	if err := fanout.Validate(standard.Registry(), outputConfigs(cfg)); err != nil {
		return err
	}
	for i, oc := range outputConfigs(cfg) {
		r, err := s.buildOutput(ctx, i, oc)
		if err != nil {
			return err
		}
		g.outputs = append(g.outputs, &output{cfg: oc, route: r})
	}
	g.selects = selectsOf(g.outputs)
	names := make([]string, len(g.outputs))
	for i, o := range g.outputs {
		names[i] = o.name()
	}
	if s.queue, err = queue.Open(cfg.Queue, names, s.log.With("component", "queue")); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	if err = s.openSealing(s.opts.Env); err != nil {
		return err
	}
	for _, o := range g.outputs {
		if o.rd, err = s.queue.Reader(o.name()); err != nil {
			return err
		}
		if err := s.openChain(o); err != nil {
			return err
		}
	}
	s.metrics.watch(s.queue, s.now)
	s.metrics.watchOutputs(func() []*output { return s.gen.Load().outputs }, s.queue, s.now)
	s.metrics.watchInflight(s.inflight)
	s.metrics.watchDeadLetters(s.dlq)
	if err = s.buildSources(ctx, g, nil); err != nil {
		return err
	}
	s.handler = s.routes()
	tlsCfg, err := serverTLS(cfg.Server.TLS, s.log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("server.listen: %w", err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	s.ln = ln
	return nil
}

// selectsOf is the outputs' routes as a fanout.Set, for Selects.
func selectsOf(outs []*output) *fanout.Set {
	set := &fanout.Set{Routes: make([]*fanout.Route, len(outs))}
	for i, o := range outs {
		set.Routes[i] = o.route
	}
	return set
}

// Addr is the address the server listens on (useful with port 0).
func (s *Sidecar) Addr() net.Addr { return s.ln.Addr() }

// Handler is the net/http mux: every route, for tests that drive it
// directly. The listener serves the ingest route itself (server.go) and
// the others through this mux.
func (s *Sidecar) Handler() http.Handler { return s.handler }

func (s *Sidecar) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/sources/{name}", s.serveSource)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.serveReady)
	mux.HandleFunc("POST /-/drain", s.serveDrain)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	if s.opts.EnableReload {
		mux.HandleFunc("POST /-/reload", s.serveReload)
	}
	return mux
}

// Run serves until ctx ends, then shuts down gracefully within
// server.shutdown_grace: new requests are answered 503 while those in
// flight finish, the delivery loops stop after their current batch (what
// they delivered is acknowledged; the rest stays queued), and the queue,
// the dead-letter store and the outputs are closed.
func (s *Sidecar) Run(ctx context.Context) error {
	srv := s.newServer(context.WithoutCancel(ctx), s.cfg.Server)
	deliverCtx, stopDelivery := context.WithCancel(context.WithoutCancel(ctx))
	s.reloadMu.Lock()
	s.runCtx = deliverCtx
	g := s.gen.Load()
	for _, o := range g.outputs {
		s.startLoop(deliverCtx, o)
	}
	for _, src := range g.sources {
		if src.runner != nil {
			src.run = start(deliverCtx, s.log, src.name, src.runner)
		}
	}
	s.reloadMu.Unlock()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(s.ln) }()
	s.log.Info("sidecar listening", "addr", s.ln.Addr().String(), "sources", len(g.sources), "outputs", len(g.outputs))

	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
		err = fmt.Errorf("server: %w", err)
	}
	grace := s.gen.Load().cfg.Server.ShutdownGrace
	s.log.Info("shutting down", "grace", grace)
	s.draining.Store(true)
	graceCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if serr := srv.ShutdownWithContext(graceCtx); serr != nil {
		s.log.Warn("requests still in flight at the end of the grace period", "err", serr)
	}
	// No reload from here on: it would start loops that nothing stops.
	s.reloadMu.Lock()
	s.runCtx = nil
	s.reloadMu.Unlock()
	stopDelivery()
	g = s.gen.Load()
	for _, o := range g.outputs {
		<-o.loop.done
	}
	for _, src := range g.sources {
		if src.run != nil {
			<-src.run.done
		}
	}
	s.closeAll(graceCtx)
	s.log.Info("stopped")
	return err
}

func (s *Sidecar) closeAll(ctx context.Context) {
	if s.ln != nil {
		s.ln.Close()
	}
	if s.queue != nil {
		if err := s.queue.Close(); err != nil {
			s.log.Error("closing the queue", "err", err)
		}
	}
	close(s.retired)
	s.retiring.Wait()
	if g := s.gen.Load(); g != nil {
		for _, o := range g.outputs {
			if err := o.route.Output().Close(ctx); err != nil {
				s.log.Error("closing outputs", "output", o.name(), "err", err)
			}
		}
		for _, src := range g.sources {
			src.close(s.log)
		}
	}
	if s.dlq != nil {
		s.dlq.Close()
	}
}

// readyRetry is how long a failed append keeps /readyz failing. Only an
// append can show that appends work again, and a pod taken out of service
// gets none: readiness that waited for one would never come back once the
// disk had room. So it fails for a while after each failure, long enough
// for a load balancer to send traffic elsewhere, then lets requests probe.
const readyRetry = 5 * time.Second

// serveReady answers 503 when the sidecar cannot take events it would
// acknowledge: shutting down, appends to the queue failing (a full disk,
// recently: see readyRetry), the queue past ready.max_fill, an output past
// ready.max_lag. Two conditions are reported but keep it ready, because
// valid events are still accepted and taking the pod out of service would
// not help: the dead-letter store failing to write (malformed payloads get
// 503 meanwhile), and records lost to damage found at startup (also in
// auditpipe_queue_damaged_records_total, until the next restart).
func (s *Sidecar) serveReady(w http.ResponseWriter, _ *http.Request) {
	var problems, notes []string
	if s.draining.Load() {
		problems = append(problems, "shutting down")
	}
	st := s.queue.Stats()
	if st.AppendErr != nil {
		msg := "queue: appends failing: " + st.AppendErr.Error()
		if s.now().Sub(st.AppendErrAt) < readyRetry {
			problems = append(problems, msg)
		} else {
			notes = append(notes, msg+" (the next request will tell whether they work again)")
		}
	}
	if ds := s.dlq.Stats(); ds.Err != nil {
		notes = append(notes, "dead-letter store: writes failing, malformed payloads get 503: "+ds.Err.Error())
	}
	g := s.gen.Load()
	rc := g.cfg.Ready
	if st.MaxBytes > 0 && float64(st.Bytes) > rc.MaxFill*float64(st.MaxBytes) {
		problems = append(problems, fmt.Sprintf("queue %.0f%% full (ready.max_fill %.0f%%)", 100*float64(st.Bytes)/float64(st.MaxBytes), 100*rc.MaxFill))
	}
	if rc.MaxLag > 0 {
		for _, o := range g.outputs {
			if l := lag(st, o.name(), s.now()); l > rc.MaxLag {
				problems = append(problems, fmt.Sprintf("output %s lags %s (ready.max_lag %s)", o.name(), l.Round(time.Second), rc.MaxLag))
			}
		}
	}
	for _, d := range st.Damage {
		note := fmt.Sprintf("queue: records %d-%d of %s were damaged on disk and skipped at startup", d.First, d.Last, d.Segment)
		if d.Evidence != "" {
			note += "; the original bytes are in " + d.Evidence
		}
		notes = append(notes, note)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		for _, p := range append(problems, notes...) {
			fmt.Fprintln(w, p)
		}
		return
	}
	fmt.Fprintln(w, "ready")
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
}
