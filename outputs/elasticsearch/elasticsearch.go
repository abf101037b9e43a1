package elasticsearch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/valyala/fastjson"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/internal/jsonw"
	"github.com/auditpipe/auditpipe/outputs"
)

// templateMapping is the settings and ECS mappings of the index template
// bootstrap_template installs. auditpipe.details is "flattened": the
// sources' payloads have unbounded, source-specific keys, and mapping each
// one dynamically would, sooner or later, hit the 1000-field limit or a
// type conflict (a key that is a number in one event and an object in
// another), and both reject whole documents. Flattened indexes every leaf
// as a keyword under one field, so details stay searchable
// (auditpipe.details.stack.name: "prod") and never cause a rejection;
// "dynamic": false would avoid the rejections too but leave details
// unsearchable.
//
//go:embed index_template.json
var templateMapping []byte

// errClosed is what Write returns after Close.
var errClosed = errors.New("elasticsearch: output closed")

// templateRetry is how long a failed template bootstrap waits before a
// write tries it again.
const templateRetry = time.Minute

// Output writes events to Elasticsearch as ECS documents with the bulk API.
type Output struct {
	cfg       Config
	log       *slog.Logger
	client    *elasticsearch.Client
	transport *http.Transport
	index     outputs.Template
	stream    []byte // the data stream's name, quoted, when set

	bufs    sync.Pool // *[]byte request bodies
	resps   sync.Pool // *bytes.Buffer response bodies
	parsers fastjson.ParserPool

	tmplDone atomic.Bool
	tmplMu   sync.Mutex
	tmplNext time.Time // no bootstrap attempt before then

	closed atomic.Bool
}

var _ outputs.Output = (*Output)(nil)

// New validates cfg, applies its defaults and makes the client. It does not
// need the cluster to be up: only bootstrap_template talks to it, and a
// failure there is logged and retried on later writes.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Output, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("elasticsearch: %w", err)
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("elasticsearch: %w", err)
	}
	o := &Output{cfg: cfg, log: logger}
	if cfg.DataStream != "" {
		o.stream = jsonw.AppendString(nil, cfg.DataStream)
	} else {
		t, err := outputs.ParseTemplate(cfg.Index)
		if err != nil {
			return nil, fmt.Errorf("elasticsearch: index: %w", err)
		}
		o.index = t
	}

	tlsCfg, err := cfg.TLS.Build()
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: %w", err)
	}
	if cfg.TLS.InsecureSkipVerify {
		logger.Warn("elasticsearch: tls.insecure_skip_verify is on: the server's certificate is not checked")
	}
	if cfg.CAFingerprint != "" {
		fp, _ := parseFingerprint(cfg.CAFingerprint) // checked by Validate
		tlsCfg = pinFingerprint(tlsCfg, fp)
	}
	o.transport = http.DefaultTransport.(*http.Transport).Clone()
	o.transport.TLSClientConfig = tlsCfg
	// Several workers write at once; the default of 2 idle connections
	// per host would make the others reconnect every time.
	o.transport.MaxIdleConnsPerHost = 32

	esCfg := elasticsearch.Config{
		Addresses: cfg.URLs,
		CloudID:   cfg.CloudID,
		Username:  cfg.Username,
		Password:  cfg.Password,
		Transport: o.transport,
		// The client retries only 502, 503 and 504 by default; a 429 is
		// Elasticsearch asking to slow down and is as safe to re-send,
		// since every action is an idempotent create.
		RetryOnStatus: []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout},
		MaxRetries:    max(cfg.MaxRetries, 0),
		DisableRetry:  cfg.MaxRetries < 0,
		RetryBackoff:  clientBackoff,
		RetryOnError:  retryOnError,
	}
	if cfg.APIKey != "" {
		esCfg.APIKey = encodeAPIKey(cfg.APIKey)
	}
	client, err := elasticsearch.NewClient(esCfg)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: %w", err)
	}
	o.client = client

	urls := make([]string, len(cfg.URLs))
	for i, u := range cfg.URLs {
		urls[i] = redactURL(u)
	}
	logger.Info("elasticsearch output ready", "urls", urls, "cloud", cfg.CloudID != "", "target", o.target(),
		"pipeline", cfg.Pipeline, "bootstrap_template", cfg.BootstrapTemplate)
	if cfg.BootstrapTemplate {
		if err := o.bootstrap(ctx); err != nil {
			// Not fatal: the cluster may come up after us. The first
			// write tries again, and waits for it.
			logger.Warn("elasticsearch index template not installed yet; will retry before the first write", "err", err)
		}
	}
	return o, nil
}

// retryOnError says whether the client should re-send at once after err:
// not when the request's context ended (every retry would fail the same
// way at once) nor when the server's certificate was refused (it will be
// again); after other network errors, yes.
func retryOnError(req *http.Request, err error) bool {
	var cv *tls.CertificateVerificationError
	return req.Context().Err() == nil && !errors.As(err, &cv)
}

// clientBackoff spaces the client's own quick retries: 100ms, 200ms,
// 400ms, ... up to 1s. Longer waits are the Deliverer's business.
func clientBackoff(attempt int) time.Duration {
	return min(100*time.Millisecond<<min(attempt-1, 4), time.Second)
}

// pinFingerprint makes a TLS configuration that accepts a server only if
// it presents a certificate with the SHA-256 fp, as go-elasticsearch's
// CertificateFingerprint does; it is done here with VerifyConnection
// because the client's version dials without the request's context or
// our TLS settings.
func pinFingerprint(base *tls.Config, fp []byte) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if base != nil {
		c = base.Clone()
	}
	verifyChain := c.RootCAs != nil && !c.InsecureSkipVerify
	// The chain is checked below, against the pin and, with a CA file,
	// against that CA; Go's default check would need the system roots.
	c.InsecureSkipVerify = true //nolint:gosec // verified in VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if verifyChain {
			if err := verifyPeer(c, cs); err != nil {
				return err
			}
		}
		for _, cert := range cs.PeerCertificates {
			if sum := sha256.Sum256(cert.Raw); bytes.Equal(sum[:], fp) {
				return nil
			}
		}
		return errors.New("elasticsearch: no certificate presented by the server matches ca_fingerprint")
	}
	return c
}

func verifyPeer(c *tls.Config, cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("elasticsearch: the server presented no certificate")
	}
	opts := x509.VerifyOptions{Roots: c.RootCAs, DNSName: cs.ServerName, Intermediates: x509.NewCertPool()}
	if c.ServerName != "" {
		opts.DNSName = c.ServerName
	}
	for _, ic := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(ic)
	}
	_, err := cs.PeerCertificates[0].Verify(opts)
	return err
}

func (o *Output) target() string {
	if o.cfg.DataStream != "" {
		return "data_stream " + o.cfg.DataStream
	}
	return "index " + o.cfg.Index
}

// Write sends events with one or more bulk requests (see MaxBulkBytes) of
// create actions whose _id is the event id, so that an event sent twice is
// stored once: the second create gets a 409, which counts as delivered.
// Items rejected with 429 or 5xx are retryable, 4xx items are Permanent
// with Elasticsearch's error type and reason, and a request that fails as
// a whole is classified by its status as outputs.ClassifyHTTP does.
func (o *Output) Write(ctx context.Context, events []auditpipe.Event) error {
	if len(events) == 0 {
		return nil
	}
	if o.closed.Load() {
		return errClosed
	}
	if err := o.ensureTemplate(ctx); err != nil {
		return err
	}

	bp := o.getBuf()
	defer o.bufs.Put(bp)
	body := (*bp)[:0]
	var (
		failures []outputs.Failure
		chunk    = make([]int, 0, len(events)) // indices of the events in body
		requests int
		local    int   // events failed before any request
		whole    error // the last request's request-level error
	)
	flush := func() {
		requests++
		var err error
		failures, err = o.send(ctx, body, chunk, events, failures)
		whole = err
		if err != nil {
			for _, i := range chunk {
				failures = append(failures, outputs.Failure{Index: i, Err: err})
			}
		}
		body, chunk = body[:0], chunk[:0]
	}
	for i := range events {
		ev := &events[i]
		if err := checkID(ev.ID); err != nil {
			failures = append(failures, outputs.Failure{Index: i, Err: outputs.Permanent(err)})
			local++
			continue
		}
		if ctx.Err() != nil && requests > 0 {
			// The attempt is over: report what was not sent rather than
			// fail each remaining request in turn.
			failures = append(failures, outputs.Failure{Index: i, Err: fmt.Errorf("elasticsearch: not sent: %w", context.Cause(ctx))})
			continue
		}
		mark := len(body)
		body = o.appendAction(body, ev)
		if len(body) > o.cfg.MaxBulkBytes && len(chunk) > 0 {
			body = body[:mark]
			flush()
			body = o.appendAction(body, ev)
		}
		chunk = append(chunk, i)
	}
	if len(chunk) > 0 {
		flush()
	}
	*bp = body[:0]
	switch {
	case len(failures) == 0:
		return nil
	case requests == 1 && whole != nil && local == 0:
		// One request failed as a whole: say so, so that the caller
		// reports the destination's health rather than event failures.
		return whole
	}
	return &outputs.PartialError{Failures: failures}
}

// checkID rejects what Elasticsearch would refuse as a whole bulk request
// (action_request_validation_exception), taking the batch down with it.
func checkID(id string) error {
	switch {
	case id == "":
		return errors.New("elasticsearch: event has no id (_id must not be empty)")
	case len(id) > 512:
		return fmt.Errorf("elasticsearch: event id is %d bytes; _id is limited to 512", len(id))
	}
	return nil
}

// appendAction appends the create action and the document of ev.
func (o *Output) appendAction(dst []byte, ev *auditpipe.Event) []byte {
	dst = append(dst, `{"create":{"_index":`...)
	if o.stream != nil {
		dst = append(dst, o.stream...)
	} else {
		dst = o.appendIndex(dst, ev)
	}
	dst = append(dst, `,"_id":`...)
	dst = jsonw.AppendString(dst, ev.ID)
	dst = append(dst, "}}\n"...)
	dst = AppendECS(dst, ev)
	return append(dst, '\n')
}

// appendIndex renders the index name, lowercased (Elasticsearch refuses
// capitals, and a label or source name may have them), and quotes it.
func (o *Output) appendIndex(dst []byte, ev *auditpipe.Event) []byte {
	dst = append(dst, '"')
	n := len(dst)
	dst = o.index.Append(dst, ev)
	plain := true
	for j := n; j < len(dst); j++ {
		c := dst[j]
		switch {
		case c >= 'A' && c <= 'Z':
			dst[j] = c + 'a' - 'A'
		case c < 0x20 || c == '"' || c == '\\' || c >= 0x80:
			plain = false
		}
	}
	if !plain {
		// Rare: quote it properly. Elasticsearch will refuse most such
		// names for the item, which then goes to the dead-letter store.
		name := string(dst[n:])
		dst = jsonw.AppendString(dst[:n-1], name)
		return dst
	}
	return append(dst, '"')
}

func (o *Output) getBuf() *[]byte {
	if bp, ok := o.bufs.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, 64<<10)
	return &b
}

// send makes one bulk request of the events chunk names and appends the
// items that failed to failures. A request-level failure is returned
// instead, for the caller to apply to the whole chunk.
func (o *Output) send(ctx context.Context, body []byte, chunk []int, events []auditpipe.Event, failures []outputs.Failure) ([]outputs.Failure, error) {
	rctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	// include_source_on_error=false would keep field values out of
	// parse errors, but clusters before 8.18 reject the whole request for
	// an unknown parameter; describe cuts the value out instead.
	req := esapi.BulkRequest{Body: bytes.NewReader(body), Pipeline: o.cfg.Pipeline}
	res, err := req.Do(rctx, o.client)
	if err != nil {
		return failures, o.requestError(ctx, rctx, err)
	}
	rb, _ := o.resps.Get().(*bytes.Buffer)
	if rb == nil {
		rb = new(bytes.Buffer)
	}
	rb.Reset()
	defer o.resps.Put(rb)
	_, err = rb.ReadFrom(res.Body)
	_ = res.Body.Close()
	if err != nil {
		return failures, o.requestError(ctx, rctx, fmt.Errorf("reading the response: %w", err))
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return failures, fmt.Errorf("elasticsearch bulk request: %w", outputs.ClassifyHTTP(res.StatusCode, res.Header, errorSummary(rb.Bytes())))
	}

	p := o.parsers.Get()
	defer o.parsers.Put(p)
	v, err := p.ParseBytes(rb.Bytes())
	if err != nil {
		// Nothing tells which events arrived; creates are idempotent, so
		// sending them all again is safe.
		return failures, fmt.Errorf("elasticsearch: unreadable bulk response: %w", err)
	}
	items := v.GetArray("items")
	if len(items) != len(chunk) {
		return failures, fmt.Errorf("elasticsearch: bulk response has %d items for %d actions", len(items), len(chunk))
	}
	if !v.GetBool("errors") {
		return failures, nil
	}
	for k, it := range items {
		obj, err := it.Object()
		if err != nil || obj.Len() != 1 {
			return failures, fmt.Errorf("elasticsearch: unreadable bulk response item %d", k)
		}
		var item *fastjson.Value
		obj.Visit(func(_ []byte, v *fastjson.Value) { item = v })
		status := item.GetInt("status")
		if status >= 200 && status <= 299 {
			continue
		}
		ev := &events[chunk[k]]
		if id := item.GetStringBytes("_id"); id != nil && string(id) != ev.ID {
			return failures, fmt.Errorf("elasticsearch: bulk response item %d is for _id %q, not %q", k, id, ev.ID)
		}
		if status == http.StatusConflict {
			continue // the document exists: this event was delivered before
		}
		failures = append(failures, outputs.Failure{Index: chunk[k], Err: itemError(status, item.Get("error"))})
	}
	return failures, nil
}

// itemError classifies a rejected bulk item.
func itemError(status int, e *fastjson.Value) error {
	typ := string(e.GetStringBytes("type"))
	msg := describe(e)
	if status == http.StatusNotFound && typ == "index_not_found_exception" {
		// The index cannot be created (action.auto_create_index, a
		// missing template for a data stream): a setting to fix, not an
		// event to drop.
		return fmt.Errorf("elasticsearch: HTTP 404: %s (the index does not exist and may not be created automatically)", msg)
	}
	return fmt.Errorf("elasticsearch rejected the event: %w", outputs.ClassifyHTTP(status, nil, msg))
}

// describe renders an Elasticsearch error object as "type: reason (caused
// by: type: reason)".
func describe(e *fastjson.Value) string {
	if e == nil {
		return "no error detail"
	}
	if e.Type() == fastjson.TypeString {
		return string(e.GetStringBytes())
	}
	s := string(e.GetStringBytes("type")) + ": " + withoutPreview(string(e.GetStringBytes("reason")))
	if c := e.Get("caused_by"); c != nil {
		s += " (caused by " + string(c.GetStringBytes("type")) + ": " + withoutPreview(string(c.GetStringBytes("reason"))) + ")"
	}
	return s
}

// withoutPreview cuts the quote of the document's value from a mapping
// error ("... in document with id 'x'. Preview of field's value: '...'"):
// the reason is logged, and audit details can be sensitive. The event
// itself is in the dead letter for whoever needs it.
func withoutPreview(reason string) string {
	if i := strings.Index(reason, " Preview of field's value:"); i >= 0 {
		return reason[:i]
	}
	return reason
}

// errorSummary reads the error of a failed request's body, or its start.
func errorSummary(body []byte) string {
	var p fastjson.Parser
	if v, err := p.ParseBytes(body); err == nil {
		if e := v.Get("error"); e != nil {
			return describe(e)
		}
	}
	if len(body) > 512 {
		body = body[:512]
	}
	return strings.TrimSpace(string(body))
}

// requestError explains a request that got no answer.
func (o *Output) requestError(ctx, rctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("elasticsearch bulk request: %w (%v)", context.Cause(ctx), err)
	case rctx.Err() != nil:
		return fmt.Errorf("elasticsearch bulk request: no answer within timeout %s: %w", o.cfg.Timeout, err)
	case errors.Is(err, elasticsearch.ErrClosed):
		return errClosed
	}
	return fmt.Errorf("elasticsearch bulk request to %s: %w", o.target(), err)
}

// ensureTemplate installs the index template before the first documents
// if bootstrap_template is on and that has not been done. While the
// cluster cannot be reached it fails the write (retryable), so that no
// index is created with dynamic mappings in the meantime; when the cluster
// refuses the template (no privilege, a conflicting template) the write
// goes ahead and the template is tried again later.
func (o *Output) ensureTemplate(ctx context.Context) error {
	if !o.cfg.BootstrapTemplate || o.tmplDone.Load() {
		return nil
	}
	return o.bootstrap(ctx)
}

// bootstrap installs the index template unless that was done, or was
// refused less than templateRetry ago. It returns an error only when the
// cluster gave no answer.
func (o *Output) bootstrap(ctx context.Context) error {
	o.tmplMu.Lock()
	defer o.tmplMu.Unlock()
	if o.tmplDone.Load() || time.Now().Before(o.tmplNext) {
		return nil
	}
	answered, err := o.putTemplate(ctx)
	switch {
	case err == nil:
		o.tmplDone.Store(true)
		o.log.Info("elasticsearch index template installed", "template", o.cfg.TemplateName, "patterns", o.templatePatterns())
		return nil
	case answered:
		o.tmplNext = time.Now().Add(templateRetry)
		o.log.Error("elasticsearch refused the index template; documents get dynamic mappings until it is installed",
			"template", o.cfg.TemplateName, "retry_in", templateRetry, "err", err)
		return nil
	}
	return fmt.Errorf("elasticsearch: installing index template %s before the first documents: %w", o.cfg.TemplateName, err)
}

func (o *Output) templatePatterns() []string {
	if o.cfg.DataStream != "" {
		return []string{o.cfg.DataStream}
	}
	return []string{indexPattern(o.cfg.Index)}
}

// TemplateBody returns the index template bootstrap_template installs.
func (o *Output) TemplateBody() ([]byte, error) {
	var tmpl json.RawMessage = templateMapping
	body := map[string]any{
		"index_patterns": o.templatePatterns(),
		"priority":       o.cfg.TemplatePriority,
		"template":       tmpl,
		"_meta":          map[string]string{"managed_by": "auditpipe", "ecs_version": ECSVersion},
	}
	if o.cfg.DataStream != "" {
		body["data_stream"] = map[string]any{}
	}
	return json.Marshal(body)
}

// putTemplate PUTs the index template and says whether the cluster
// answered.
func (o *Output) putTemplate(ctx context.Context) (answered bool, err error) {
	body, err := o.TemplateBody()
	if err != nil {
		return false, err
	}
	rctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	res, err := esapi.IndicesPutIndexTemplateRequest{Name: o.cfg.TemplateName, Body: bytes.NewReader(body)}.Do(rctx, o.client)
	if err != nil {
		return false, o.requestError(ctx, rctx, err)
	}
	defer func() { _ = res.Body.Close() }()
	var rb bytes.Buffer
	if _, err := rb.ReadFrom(res.Body); err != nil {
		return false, fmt.Errorf("reading the response: %w", err)
	}
	if err := outputs.ClassifyHTTP(res.StatusCode, res.Header, errorSummary(rb.Bytes())); err != nil {
		return true, fmt.Errorf("PUT _index_template/%s: %w", o.cfg.TemplateName, err)
	}
	return true, nil
}

// Close releases the client's connections. Writes after Close fail.
func (o *Output) Close(ctx context.Context) error {
	if !o.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := o.client.Close(ctx)
	o.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("elasticsearch: close: %w", err)
	}
	return nil
}
