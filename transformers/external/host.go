package external

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/status"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/external/proto"
)

// Supervision timing. A plugin that dies between calls is noticed by the
// next health check; one that dies during a call, at once.
const (
	// healthInterval is how often the live plugin is pinged.
	healthInterval = 5 * time.Second
	// stableAfter is how long a plugin must have run for the restart
	// backoff to start over from its first interval; a plugin that dies
	// sooner is restarted ever more slowly (a crash loop).
	stableAfter = time.Minute
	// Restart backoff: the first restart waits about 100ms.
	restartInitialInterval = 100 * time.Millisecond
	restartMaxInterval     = 30 * time.Second
)

// Transformer is an external transformer: a plugin process and the gRPC
// connection to it, restarted when it dies. It implements
// transformers.Transformer, so front doors use it like a built-in format,
// and TransformBatch, which maps many payloads per round trip. It is safe
// for concurrent use.
type Transformer struct {
	cfg     Config
	sum     []byte
	log     *slog.Logger
	timeout error // the cause of a call's own deadline

	mu     sync.Mutex
	cur    *instance     // nil while the plugin is being restarted
	ready  chan struct{} // closed once cur is set again, or on Close
	closed bool

	stop   context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the supervisor has returned
}

var _ transformers.Transformer = (*Transformer)(nil)

// instance is one plugin process.
type instance struct {
	client  *plugin.Client
	cmd     *exec.Cmd
	rpc     *rpcClient
	pid     int
	started time.Time
	// failed is closed, with reason set, when a call found the plugin
	// hung; suspect asks the supervisor for a health check now.
	failed  chan struct{}
	reason  error
	once    sync.Once
	suspect chan struct{}
}

func (i *instance) fail(reason error) {
	i.once.Do(func() {
		i.reason = reason
		close(i.failed)
	})
}

func (i *instance) suspectNow() {
	select {
	case i.suspect <- struct{}{}:
	default:
	}
}

// kill ends the process at once (SIGKILL through the process handle, which
// cannot hit a reused pid) and lets go-plugin reap it and stop its
// goroutines.
func (i *instance) kill() {
	_ = i.cmd.Process.Kill()
	i.client.Kill()
}

// timeoutError is the cause of a call's own deadline, telling it apart from
// the caller's.
type timeoutError struct{ d time.Duration }

func (e *timeoutError) Error() string {
	return fmt.Sprintf("plugin did not answer within timeout (%s)", e.d)
}

// Unwrap lets errors.Is(err, context.DeadlineExceeded) hold, as for any
// other deadline.
func (e *timeoutError) Unwrap() error { return context.DeadlineExceeded }

// New applies the defaults to cfg, validates it, starts the plugin and
// returns once it has completed the handshake: a plugin that cannot start
// (missing file, checksum mismatch, not a plugin) is an error here rather
// than at the first payload. ctx is checked before the start, which the
// timeout bounds. A nil logger discards; the plugin's own log lines are
// re-logged through it at their level.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Transformer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("external transformer: %w", err)
	}
	if err := cfg.checkExecutable(); err != nil {
		return nil, fmt.Errorf("external transformer: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("external transformer: %w", err)
	}
	sum, _ := cfg.checksum() // Validate checked it
	t := &Transformer{
		cfg:     cfg,
		sum:     sum,
		log:     logger.With("transformer", Format, "plugin", filepath.Base(cfg.Path)),
		timeout: &timeoutError{cfg.Timeout},
		ready:   make(chan struct{}),
		done:    make(chan struct{}),
	}
	inst, err := t.start()
	if err != nil {
		return nil, fmt.Errorf("external transformer: %w", err)
	}
	t.cur = inst
	close(t.ready)
	t.stop, t.cancel = context.WithCancel(context.Background())
	go t.supervise(inst)
	return t, nil
}

// start launches one plugin process and completes the handshake.
func (t *Transformer) start() (*instance, error) {
	cmd := exec.Command(t.cfg.Path, t.cfg.Args...)
	// The host's environment with the configured variables after it (the
	// last of duplicates wins); go-plugin appends its handshake variables.
	cmd.Env = os.Environ()
	for k, v := range t.cfg.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	setProcAttrs(cmd)
	pool := bufferPool()
	cc := &plugin.ClientConfig{
		HandshakeConfig:  handshake(),
		VersionedPlugins: versionedPlugins(nil),
		Cmd:              cmd,
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         *t.cfg.AutoMTLS,
		StartTimeout:     t.cfg.Timeout,
		Logger:           newHCLogAdapter(t.log),
		Stderr:           io.Discard,
		// Output the plugin writes to os.Stdout/os.Stderr after the
		// handshake. Stdout may hold anything (events, even), so it only
		// reaches debug level.
		SyncStdout: &lineWriter{log: func(l string) { t.log.Debug("plugin stdout", "line", l) }},
		SyncStderr: &lineWriter{log: func(l string) { t.log.Info("plugin stderr", "line", l) }},
		GRPCDialOptions: []grpc.DialOption{
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes),
				grpc.ForceCodecV2(codec{pool})),
			grpc.WithInitialWindowSize(flowWindow),
			grpc.WithInitialConnWindowSize(flowWindow),
			grpc.WithReadBufferSize(ioBuffer),
			grpc.WithWriteBufferSize(ioBuffer),
			experimental.WithBufferPool(pool),
		},
	}
	if t.sum != nil {
		// A new hash per start: SecureConfig.Check writes into it.
		cc.SecureConfig = &plugin.SecureConfig{Checksum: t.sum, Hash: sha256.New()}
	}
	client := plugin.NewClient(cc)
	cp, err := client.Client()
	if err != nil {
		client.Kill()
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return nil, t.checksumError()
		}
		return nil, fmt.Errorf("start %s: %w", t.cfg.Path, err)
	}
	raw, err := cp.Dispense(pluginName)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("start %s: %w", t.cfg.Path, err)
	}
	rc, ok := raw.(*rpcClient)
	if !ok {
		client.Kill()
		return nil, fmt.Errorf("start %s: unexpected plugin client %T", t.cfg.Path, raw)
	}
	inst := &instance{
		client:  client,
		cmd:     cmd,
		rpc:     rc,
		pid:     cmd.Process.Pid,
		started: time.Now(),
		failed:  make(chan struct{}),
		suspect: make(chan struct{}, 1),
	}
	t.log.Debug("external transformer started", "pid", inst.pid, "protocol_version", client.NegotiatedVersion())
	return inst, nil
}

// checksumError says what the file's checksum is, so that the operator
// can tell a stale pin from a replaced binary.
func (t *Transformer) checksumError() error {
	got := "unreadable"
	if f, err := os.Open(t.cfg.Path); err == nil {
		h := sha256.New()
		if _, err := io.Copy(h, f); err == nil {
			got = hex.EncodeToString(h.Sum(nil))
		}
		_ = f.Close()
	}
	return fmt.Errorf("checksum: %s has SHA-256 %s, want %s; refusing to start it", t.cfg.Path, got, hex.EncodeToString(t.sum))
}

// supervise restarts the plugin whenever it fails, until Close.
func (t *Transformer) supervise(inst *instance) {
	defer close(t.done)
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = restartInitialInterval
	b.MaxInterval = restartMaxInterval
	b.MaxElapsedTime = 0
	b.Reset()
	for {
		reason := t.watch(inst)
		if reason == nil {
			return
		}
		t.log.Warn("external transformer failed; restarting it", "pid", inst.pid, "reason", reason)
		t.retire(inst)
		if time.Since(inst.started) >= stableAfter {
			b.Reset()
		}
		if inst = t.restart(b); inst == nil {
			return
		}
	}
}

// watch returns why inst failed, or nil on Close.
func (t *Transformer) watch(inst *instance) error {
	tick := time.NewTicker(healthInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.stop.Done():
			return nil
		case <-inst.failed:
			return inst.reason
		case <-inst.suspect:
		case <-tick.C:
		}
		err := t.check(inst)
		if t.stop.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

var errExited = errors.New("plugin process exited")

// check is one health check.
func (t *Transformer) check(inst *instance) error {
	if inst.client.Exited() {
		return errExited
	}
	ctx, cancel := context.WithTimeout(t.stop, t.cfg.Timeout)
	defer cancel()
	if err := inst.rpc.ping(ctx); err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	return nil
}

// retire takes inst out of service and kills it.
func (t *Transformer) retire(inst *instance) {
	t.takeOut(inst)
	inst.kill()
}

// failInstance takes inst out of service at once and has the supervisor
// kill and replace it.
func (t *Transformer) failInstance(inst *instance, reason error) {
	t.takeOut(inst)
	inst.fail(reason)
}

// takeOut takes inst out of service: calls wait for the next instance from
// now on. It does nothing if inst is no longer the current one.
func (t *Transformer) takeOut(inst *instance) {
	t.mu.Lock()
	if t.cur == inst {
		t.cur = nil
		if !t.closed {
			t.ready = make(chan struct{})
		}
	}
	t.mu.Unlock()
}

// restart starts a new instance after the next backoff interval, and again
// until one starts; nil on Close.
func (t *Transformer) restart(b *backoff.ExponentialBackOff) *instance {
	for {
		timer := time.NewTimer(b.NextBackOff())
		select {
		case <-t.stop.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		inst, err := t.start()
		if err != nil {
			t.log.Error("external transformer restart failed", "error", err)
			continue
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			inst.kill()
			return nil
		}
		t.cur = inst
		close(t.ready)
		t.mu.Unlock()
		t.log.Info("external transformer restarted", "pid", inst.pid)
		return inst
	}
}

// instance returns the live instance, waiting for a restart to finish
// within ctx.
func (t *Transformer) instance(ctx context.Context) (*instance, error) {
	for {
		t.mu.Lock()
		closed, inst, ready := t.closed, t.cur, t.ready
		t.mu.Unlock()
		switch {
		case closed:
			return nil, ErrClosed
		case inst != nil && inst.client.Exited():
			// Died since the last health check: wait for the restart
			// rather than fail a call on a connection known to be dead.
			t.failInstance(inst, errExited)
			continue
		case inst != nil:
			return inst, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the plugin to restart: %w", context.Cause(ctx))
		}
	}
}

// Ping checks that the plugin is up and answering its health service, for
// readiness probes. The error wraps ErrUnavailable.
func (t *Transformer) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeoutCause(ctx, t.cfg.Timeout, t.timeout)
	defer cancel()
	inst, err := t.instance(ctx)
	if err == nil {
		err = inst.rpc.ping(ctx)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// Close kills the plugin process and waits for it to be gone. Calls in
// flight fail with ErrUnavailable; later calls too, wrapping ErrClosed.
func (t *Transformer) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	if t.cur == nil {
		close(t.ready)
	}
	t.mu.Unlock()
	t.cancel()
	<-t.done
	t.mu.Lock()
	inst := t.cur
	t.cur = nil
	t.mu.Unlock()
	if inst != nil {
		// Gracefully first: go-plugin asks the plugin to stop, and kills
		// it if it has not exited two seconds later.
		inst.client.Kill()
	}
	return nil
}

// Transform maps one payload in one call. A payload the plugin could not
// map as a whole is returned as an *transformers.Error (kind ErrPanic for
// a panic); a call that failed as a whole wraps ErrUnavailable.
func (t *Transformer) Transform(ctx context.Context, in transformers.Input, res *transformers.Result) error {
	res.Format = Format
	out, err := t.transform(ctx, []transformers.Input{in})
	if err != nil {
		return err
	}
	res.Merge(out[0].Result)
	res.Format = out[0].Format
	if out[0].whole != nil {
		return out[0].whole
	}
	return nil
}

// TransformBatch maps payloads in calls of at most max_batch payloads and
// returns one Result per input, in order. A payload the plugin could not
// map as a whole has its error in Result.Errors with Item -1 (kind
// ErrPanic for a panic) and no events.
//
// The error, when not nil, wraps ErrUnavailable: the plugin crashed, hung
// past the timeout, is being restarted, or the Transformer is closed. Then
// no result is returned at all, even for payloads an earlier call of the
// batch mapped, so the caller retries the whole batch and nothing is lost
// or doubled.
func (t *Transformer) TransformBatch(ctx context.Context, ins []transformers.Input) ([]transformers.Result, error) {
	out, err := t.transform(ctx, ins)
	if err != nil {
		return nil, err
	}
	res := make([]transformers.Result, len(out))
	for i := range out {
		res[i] = out[i].Result
		if w := out[i].whole; w != nil {
			res[i].Errors = append([]*transformers.Error{w}, res[i].Errors...)
		}
	}
	return res, nil
}

// payloadResult is a Result and, apart, the error that failed the payload
// as a whole.
type payloadResult struct {
	transformers.Result
	whole *transformers.Error
}

func (t *Transformer) transform(ctx context.Context, ins []transformers.Input) ([]payloadResult, error) {
	out := make([]payloadResult, len(ins))
	now := time.Now()
	var (
		req   *proto.TransformRequest
		idx   []int // the input of each payload in req
		bytes int
	)
	flush := func() error {
		resp, err := t.call(ctx, req)
		if err != nil {
			return err
		}
		for j, r := range resp.GetResults() {
			i := idx[j]
			pre := out[i].Errors // items of an already-decoded document
			out[i] = t.result(r)
			out[i].Errors = append(pre, out[i].Errors...)
		}
		req, idx, bytes = nil, idx[:0], 0
		return nil
	}
	for i, in := range ins {
		p, itemErrs, err := payload(in, now)
		if err != nil {
			out[i] = payloadResult{Result: transformers.Result{Format: Format}, whole: err}
			continue
		}
		out[i].Errors = itemErrs
		if req != nil && (len(req.Payloads) >= t.cfg.MaxBatch || bytes+len(p.Body) > maxRequestBytes) {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		if req == nil {
			req = &proto.TransformRequest{Payloads: make([]*proto.Payload, 0, min(t.cfg.MaxBatch, len(ins)-i))}
		}
		req.Payloads = append(req.Payloads, p)
		idx = append(idx, i)
		bytes += len(p.Body)
	}
	if req != nil {
		if err := flush(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// call makes one Transform RPC under the per-call timeout. Every error it
// returns wraps ErrUnavailable.
func (t *Transformer) call(ctx context.Context, req *proto.TransformRequest) (*proto.TransformResponse, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, t.cfg.Timeout, t.timeout)
	defer cancel()
	inst, err := t.instance(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	resp, err := inst.rpc.rpc.Transform(ctx, req)
	if err == nil && len(resp.GetResults()) != len(req.GetPayloads()) {
		err = fmt.Errorf("plugin answered %d results for %d payloads", len(resp.GetResults()), len(req.GetPayloads()))
		t.failInstance(inst, err)
	}
	if err != nil {
		if status.Code(err) == codes.DeadlineExceeded {
			// The plugin's end saw the deadline (gRPC sends it along)
			// pass first and cancelled the call; ours is due now, and
			// its cause tells whose deadline it was.
			<-ctx.Done()
		}
		switch {
		case errors.Is(context.Cause(ctx), t.timeout):
			// Hung: a plugin stuck in a payload would hold its goroutine
			// (and whatever it locked) forever. Kill it.
			err = t.timeout
			t.failInstance(inst, err)
		case ctx.Err() != nil:
			// The caller gave up; the plugin is not to blame.
			err = fmt.Errorf("%w (%w)", context.Cause(ctx), err)
		case status.Code(err) == codes.Unavailable || inst.client.Exited():
			// The connection broke: the process died or is dying. Take
			// it out of service now, so that a retry waits for the
			// restart instead of meeting the same dead connection.
			t.failInstance(inst, err)
		default:
			// An error status from a plugin that is still connected (not
			// one this SDK sends): the health check decides.
			inst.suspectNow()
		}
		return nil, fmt.Errorf("%w: pid %d: %w", ErrUnavailable, inst.pid, err)
	}
	return resp, nil
}

// result decodes one payload's result. Events are decoded and validated
// again: the plugin may not use this package's SDK, or an older one.
func (t *Transformer) result(r *proto.Result) payloadResult {
	pr := payloadResult{Result: transformers.Result{Format: Format}}
	if pe := r.GetPayloadError(); pe != nil {
		w := errorFromProto(pe)
		w.Item = -1
		pr.whole = w
		return pr
	}
	if n := len(r.GetEvents()); n > 0 {
		pr.Events = make([]auditpipe.Event, 0, n)
	}
	for i, b := range r.GetEvents() {
		pr.Events = append(pr.Events, auditpipe.Event{})
		ev := &pr.Events[len(pr.Events)-1]
		err := eventjson.Decode(b, ev)
		if err == nil {
			// Decode has checked that details is well-formed JSON;
			// only its kind is left.
			err = ev.ValidateFields()
			if d := bytes.TrimLeft(ev.Details, " \t\r\n"); len(d) > 0 && d[0] != '{' {
				err = errors.Join(err, &auditpipe.FieldError{Field: "details", Problem: "must be a JSON object"})
			}
		}
		if err != nil {
			pr.Events = pr.Events[:len(pr.Events)-1]
			pr.Errors = append(pr.Errors, &transformers.Error{
				Format: Format, Item: i, Path: "$", Kind: transformers.ErrInvalidEvent, Detail: oneLine(err.Error()),
			})
		}
	}
	for _, e := range r.GetErrors() {
		pr.Errors = append(pr.Errors, errorFromProto(e))
	}
	return pr
}

// payload puts an input on the wire. Raw bodies go as they are; decoded
// ones (Fluent Bit records, a document auto decoded) as their JSON, one
// line per document. The item errors are those of an already-decoded
// document's lines.
func payload(in transformers.Input, now time.Time) (*proto.Payload, []*transformers.Error, *transformers.Error) {
	p := &proto.Payload{SourceName: in.Meta.SourceName, Body: in.Body}
	var itemErrs []*transformers.Error
	if in.Body == nil && (in.Doc != nil || in.Value != nil || in.Msgpack != nil) {
		doc, err := transformers.DecodeWith(in, transformers.Options{}, Format)
		if err != nil {
			return nil, nil, transformers.AsError(Format, err)
		}
		body, err := encodeDocument(doc)
		itemErrs = doc.Errors
		doc.Close()
		if err != nil {
			return nil, nil, transformers.AsError(Format, err)
		}
		p.Body = body
	}
	at := in.Meta.ReceivedAt
	if at.IsZero() {
		at = now
	}
	p.ReceivedAtUnixNano = at.UnixNano()
	if len(in.Meta.Headers) > 0 {
		p.Headers = make([]*proto.Header, 0, len(in.Meta.Headers))
		for name, values := range in.Meta.Headers {
			p.Headers = append(p.Headers, &proto.Header{Name: name, Values: values})
		}
	}
	return p, itemErrs, nil
}

// encodeDocument is the JSON of a decoded document: a root's raw bytes
// when it has them, else its canonical encoding; NDJSON for several roots.
func encodeDocument(doc *transformers.Document) ([]byte, error) {
	var b []byte
	for i := range doc.Roots {
		r := &doc.Roots[i]
		if i > 0 {
			b = append(b, '\n')
		}
		if r.Raw != nil {
			b = append(b, r.Raw...)
			continue
		}
		var err error
		if b, err = transformers.AppendCanonical(b, r.Node, nil); err != nil {
			return nil, err
		}
	}
	return b, nil
}
