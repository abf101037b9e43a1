package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/internal/tlsfiles"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/internal/inflight"
	"github.com/auditpipe/auditpipe/outputs/internal/reqbody"
)

// Output posts events to one webhook endpoint.
type Output struct {
	cfg       Config
	url       string
	endpoint  string // scheme://host, for errors and logs
	client    *http.Client
	transport *tlsfiles.Transport
	conns     conns
	log       *slog.Logger
	header    http.Header // the headers every request carries
	timeout   error       // the cause a request's deadline is given
	sem       chan struct{}
	bufs      *reqbody.Pool
	macs      sync.Pool // hash.Hash, HMAC-SHA256 keyed with the secret

	// gate lets Close wait for the Writes in progress.
	gate *inflight.Gate
}

var _ outputs.Output = (*Output)(nil)

// New applies the defaults to cfg, validates it and returns the output. It
// makes no request: an endpoint that is down at start is retried by the
// Deliverer like any other failure. A nil logger discards.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Output, error) {
	_ = ctx // nothing to reach at start; kept for the constructor convention
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	u, _ := url.Parse(cfg.URL) // Validate parsed it
	tlsClient, err := cfg.TLS.Client(logger)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	o := &Output{
		cfg:      cfg,
		url:      cfg.URL,
		endpoint: endpoint(u),
		log:      logger.With("endpoint", endpoint(u)),
		timeout:  &timeoutError{cfg.Timeout},
		sem:      make(chan struct{}, cfg.MaxConcurrency),
	}
	o.gate = inflight.New()
	o.transport = tlsClient.Transport(&http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: o.conns.dialer(&net.Dialer{
			Timeout:   cfg.Timeout,
			KeepAlive: 30 * time.Second,
		}),
		ForceAttemptHTTP2: true, // a custom TLSClientConfig turns HTTP/2 off otherwise
		// The default of 2 idle connections per host would make every
		// request beyond the second of a concurrent round dial anew.
		MaxIdleConnsPerHost:   max(cfg.MaxConcurrency, 8),
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.Timeout,
		ExpectContinueTimeout: time.Second,
	})
	o.client = &http.Client{
		Transport: o.transport,
		// Following a redirect would turn the POST into a GET (301, 302)
		// or send the signature and credentials to another address; a
		// redirect is reported instead, as a configuration error.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	// A body is at most max_batch_bytes plus one event, except for an
	// oversized event sent alone, which is not worth keeping.
	keep := max(2*cfg.MaxBatchBytes, 64<<10)
	o.bufs = reqbody.NewPool(keep)
	if cfg.Secret != "" {
		key := []byte(cfg.Secret)
		o.macs.New = func() any { return hmac.New(sha256.New, key) }
	}

	o.header = http.Header{}
	for k, v := range cfg.Headers {
		o.header.Set(k, v)
	}
	o.header.Set("Content-Type", cfg.Mode.ContentType())
	if o.header.Get("User-Agent") == "" {
		o.header.Set("User-Agent", "auditpipe/"+cfg.Version)
	}
	switch {
	case cfg.BearerToken != "":
		o.header.Set("Authorization", "Bearer "+cfg.BearerToken)
	case cfg.BasicAuth != "":
		o.header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(cfg.BasicAuth)))
	}

	if cfg.TLS.InsecureSkipVerify {
		o.log.Warn("webhook: tls.insecure_skip_verify is set: the server's certificate is not checked")
	}
	if u.Scheme == "http" && (cfg.BearerToken != "" || cfg.BasicAuth != "") {
		o.log.Warn("webhook: credentials are sent over plain http")
	}
	o.log.Info("webhook output ready", "mode", cfg.Mode, "signed", cfg.Secret != "", "timeout", cfg.Timeout)
	return o, nil
}

// Write makes one attempt to deliver events. In the batch modes a failed
// request fails every event it held; in the event modes each event's
// request fails alone. A rejection (a permanent failure) lets the other
// requests go on; after any other failure the requests not yet started are
// not sent and their events fail with it. When no event was delivered and
// none rejected, the error is the batch's, not an *outputs.PartialError.
func (o *Output) Write(ctx context.Context, events []auditpipe.Event) error {
	if len(events) == 0 {
		return nil
	}
	if !o.gate.Enter() {
		return errors.New("webhook: output is closed")
	}
	defer o.gate.Leave()

	if o.cfg.Mode.Batched() {
		return o.writeBatches(ctx, events)
	}
	return o.writeEach(ctx, events)
}

// Close waits for the Writes in progress, or cancels their requests when
// ctx ends first, and closes every connection.
func (o *Output) Close(ctx context.Context) error {
	var err error
	if cerr := o.gate.Close(ctx); cerr != nil {
		err = fmt.Errorf("webhook: close: requests in flight cancelled: %w", cerr)
	}
	o.transport.CloseIdleConnections()
	// No request is in flight any more: whatever is still open is a
	// connection the transport has not yet seen go idle.
	o.conns.closeAll()
	return err
}

func (o *Output) writeBatches(ctx context.Context, events []auditpipe.Event) error {
	var (
		failures []outputs.Failure
		errs     []error
		stopped  error
	)
	for start := 0; start < len(events); {
		if stopped != nil {
			for i := start; i < len(events); i++ {
				failures = append(failures, outputs.Failure{Index: i, Err: stopped})
			}
			break
		}
		bf := o.bufs.Get()
		var n int
		bf.B, n = o.cfg.Mode.appendChunk(bf.B, events[start:], o.cfg.MaxBatchBytes)
		chunk := events[start : start+n]
		kb := o.bufs.Get()
		key := batchKey(kb.B, chunk)
		kb.Release()
		err := o.send(ctx, bf, key)
		bf.Release()
		if err != nil {
			errs = append(errs, err)
			for i := start; i < start+n; i++ {
				failures = append(failures, outputs.Failure{Index: i, Err: err})
			}
			o.log.Debug("webhook: batch request failed", "events", n, "err", err)
			if !outputs.IsPermanent(err) {
				stopped = notSent(err)
			}
		}
		start += n
	}
	return combine(len(events), failures, errs)
}

// notSent is the error of the requests a Write skips after one failed for
// a retryable reason: the endpoint itself failed (down, throttling,
// refusing the credentials), so the others would fail alike, and a
// throttling endpoint asked for fewer requests, not more. Only a rejection
// of the events themselves lets the other requests go on.
func notSent(err error) error {
	return fmt.Errorf("not sent after another request failed: %w", err)
}

func (o *Output) writeEach(ctx context.Context, events []auditpipe.Event) error {
	if len(events) == 1 {
		return o.sendEvent(ctx, &events[0])
	}
	errs := make([]error, len(events))
	sent := make([]bool, len(events))
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		mu      sync.Mutex
		stopped error
	)
	for range min(o.cfg.MaxConcurrency, len(events)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(events) {
					return
				}
				mu.Lock()
				stop := stopped
				mu.Unlock()
				if stop != nil {
					errs[i] = stop
					continue
				}
				err := o.sendEvent(ctx, &events[i])
				errs[i], sent[i] = err, true
				if err != nil && !outputs.IsPermanent(err) {
					mu.Lock()
					if stopped == nil {
						stopped = notSent(err)
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	var failures []outputs.Failure
	var failed []error
	for i, err := range errs {
		if err != nil {
			failures = append(failures, outputs.Failure{Index: i, Err: err})
			if sent[i] {
				failed = append(failed, err)
			}
		}
	}
	return combine(len(events), failures, failed)
}

// combine turns the failures of one Write into its result; errs are the
// errors of the requests sent.
func combine(events int, failures []outputs.Failure, errs []error) error {
	if len(failures) == 0 {
		return nil
	}
	if len(failures) < events {
		return &outputs.PartialError{Failures: failures}
	}
	if len(errs) == 1 {
		return errs[0]
	}
	// Every event failed. If no request was a rejection, the endpoint
	// itself failed: say so as one batch error, which the Deliverer
	// reports as the output's health, and wait as long as the longest
	// Retry-After asked.
	var decisive error
	var longest time.Duration
	for _, err := range errs {
		if outputs.IsPermanent(err) {
			return &outputs.PartialError{Failures: failures}
		}
		ra, _ := outputs.RetryAfterOf(err)
		if decisive == nil || ra > longest {
			decisive, longest = err, ra
		}
	}
	return fmt.Errorf("%d requests failed: %w", len(errs), decisive)
}

func (o *Output) sendEvent(ctx context.Context, ev *auditpipe.Event) error {
	select {
	case o.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("webhook: POST %s: waiting for a free request slot: %w", o.endpoint, context.Cause(ctx))
	}
	defer func() { <-o.sem }()
	bf := o.bufs.Get()
	bf.B = o.cfg.Mode.appendEvent(bf.B, ev)
	err := o.send(ctx, bf, ev.ID)
	bf.Release()
	return err
}

// timeoutError is the cause of a request that hit Config.Timeout, so that
// its error names the setting rather than a bare deadline.
type timeoutError struct{ d time.Duration }

func (e *timeoutError) Error() string { return fmt.Sprintf("no answer within timeout %s", e.d) }
func (e *timeoutError) Unwrap() error { return context.DeadlineExceeded }

// maxErrorBody is how much of a failed answer's body goes into the error.
const maxErrorBody = 512

// maxDrain is how much of an answer is read to keep its connection
// reusable; a longer one costs a new connection instead.
const maxDrain = 64 << 10

// send POSTs bf's bytes once and classifies the answer.
func (o *Output) send(ctx context.Context, bf *reqbody.Buffer, key string) error {
	ctx, cancel := context.WithTimeoutCause(ctx, o.cfg.Timeout, o.timeout)
	defer cancel()
	stop := context.AfterFunc(o.gate.Stopped(), cancel) // Close gave up waiting
	defer stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url, nil)
	if err != nil {
		return fmt.Errorf("webhook: POST %s: %w", o.endpoint, err)
	}
	req.Body = bf.Reader()
	req.GetBody = func() (io.ReadCloser, error) { return bf.Reader(), nil }
	req.ContentLength = int64(len(bf.B))
	h := make(http.Header, len(o.header)+2)
	for k, v := range o.header {
		h[k] = v
	}
	h["Idempotency-Key"] = []string{key}
	if o.cfg.Secret != "" {
		h["X-Signature-256"] = []string{o.sign(bf.B)}
	}
	req.Header = h

	resp, err := o.client.Do(req)
	if err != nil {
		return o.transportError(ctx, err)
	}
	defer resp.Body.Close()
	var snippet string
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		snippet = strings.ToValidUTF8(strings.TrimSpace(string(b)), "\uFFFD")
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)

	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		// Retryable: the data is kept until the url is fixed.
		return fmt.Errorf("webhook: POST %s: %w: redirects are not followed; set url to the final address",
			o.endpoint, &outputs.StatusError{Code: resp.StatusCode, Body: snippet})
	}
	if err := outputs.ClassifyHTTP(resp.StatusCode, resp.Header, snippet); err != nil {
		return fmt.Errorf("webhook: POST %s: %w", o.endpoint, err)
	}
	return nil
}

// transportError words a request that got no answer; it stays retryable.
// The *url.Error net/http returns quotes the whole URL, which may hold a
// token, so only its cause is kept.
func (o *Output) transportError(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil {
		if o.gate.Stopped().Err() != nil && !errors.Is(cause, o.timeout) {
			return fmt.Errorf("webhook: POST %s: output closing: %w", o.endpoint, cause)
		}
		return fmt.Errorf("webhook: POST %s: %w", o.endpoint, cause)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("webhook: POST %s: %w", o.endpoint, err)
}

// sign returns the X-Signature-256 value of body.
func (o *Output) sign(body []byte) string {
	mac := o.macs.Get().(hash.Hash)
	mac.Reset()
	mac.Write(body)
	var sum [sha256.Size]byte
	var out [len("sha256=") + 2*sha256.Size]byte
	copy(out[:], "sha256=")
	hex.Encode(out[len("sha256="):], mac.Sum(sum[:0]))
	o.macs.Put(mac)
	return string(out[:])
}
