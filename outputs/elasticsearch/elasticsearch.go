package elasticsearch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/internal/tlsfiles"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/internal/bulk"
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
var errClosed = fmt.Errorf("elasticsearch: %w", bulk.ErrClosed)

// Output writes events to Elasticsearch as ECS documents with the bulk API.
type Output struct {
	cfg       Config
	log       *slog.Logger
	client    *elasticsearch.BaseClient
	transport *tlsfiles.Transport
	bulk      *bulk.Writer

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

	tlsClient, err := cfg.TLS.Client(logger)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: %w", err)
	}
	if cfg.TLS.InsecureSkipVerify {
		logger.Warn("elasticsearch: tls.insecure_skip_verify is on: the server's certificate is not checked")
	}
	if cfg.CAFingerprint != "" {
		fp, _ := parseFingerprint(cfg.CAFingerprint) // checked by Validate
		if tlsClient == nil {
			tlsClient, _ = tlsfiles.NewClient(tlsfiles.ClientConfig{MinVersion: tls.VersionTLS12}) // no files: no error
		}
		tlsClient = tlsClient.With(func(c *tls.Config) *tls.Config { return pinFingerprint(c, fp) })
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Several workers write at once; the default of 2 idle connections
	// per host would make the others reconnect every time.
	tr.MaxIdleConnsPerHost = 32
	o.transport = tlsClient.Transport(tr)

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
	// The base client, not NewClient: NewClient fills esapi.API, a struct
	// of some 500 API functions, and so links every one of them (5.7 MB of
	// machine code) into both binaries; the output calls five, as request
	// values (esapi.BulkRequest{...}.Do), which need only the transport.
	// Product check, retries and headers are the base client's, the same.
	client, err := elasticsearch.NewBaseClient(esCfg)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: %w", err)
	}
	o.client = client
	o.bulk, err = bulk.New(bulk.Config{
		Product:           Type,
		Index:             cfg.Index,
		DataStream:        cfg.DataStream,
		Pipeline:          cfg.Pipeline,
		BootstrapTemplate: cfg.BootstrapTemplate,
		TemplateName:      cfg.TemplateName,
		TemplatePriority:  cfg.TemplatePriority,
		Mapping:           templateMapping,
		Meta:              map[string]string{"managed_by": "auditpipe", "ecs_version": ECSVersion},
		Timeout:           cfg.Timeout,
		MaxBulkBytes:      cfg.MaxBulkBytes,
		Encode:            AppendECS,
	}, esClient{client}, logger)
	if err != nil {
		return nil, err
	}

	urls := make([]string, len(cfg.URLs))
	for i, u := range cfg.URLs {
		urls[i] = redactURL(u)
	}
	logger.Info("elasticsearch output ready", "urls", urls, "cloud", cfg.CloudID != "", "target", o.bulk.Target(),
		"pipeline", cfg.Pipeline, "bootstrap_template", cfg.BootstrapTemplate)
	if cfg.BootstrapTemplate {
		if err := o.bulk.Bootstrap(ctx); err != nil {
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

// Write sends events with one or more bulk requests (see MaxBulkBytes) of
// create actions whose _id is the event id, so that an event sent twice is
// stored once: the second create gets a 409, which counts as delivered.
// Items rejected with 429 or 5xx are retryable, 4xx items are Permanent
// with Elasticsearch's error type and reason, and a request that fails as
// a whole is classified by its status as outputs.ClassifyHTTP does.
func (o *Output) Write(ctx context.Context, events []auditpipe.Event) error {
	if o.closed.Load() {
		if len(events) == 0 {
			return nil
		}
		return errClosed
	}
	return o.bulk.Write(ctx, events)
}

// TemplateBody returns the index template bootstrap_template installs.
func (o *Output) TemplateBody() ([]byte, error) { return o.bulk.TemplateBody() }

// TemplateMapping returns the settings and ECS mappings of the index
// template bootstrap_template installs, for outputs that share the ECS
// documents.
func TemplateMapping() []byte { return bytes.Clone(templateMapping) }

// esClient sends the bulk engine's requests with go-elasticsearch.
type esClient struct{ c *elasticsearch.BaseClient }

func (e esClient) Bulk(ctx context.Context, body []byte, pipeline string) (*http.Response, error) {
	// include_source_on_error=false would keep field values out of
	// parse errors, but clusters before 8.18 reject the whole request for
	// an unknown parameter; the engine cuts the value out instead.
	res, err := esapi.BulkRequest{Body: bytes.NewReader(body), Pipeline: pipeline}.Do(ctx, e.c)
	return e.response(res, err)
}

func (e esClient) PutIndexTemplate(ctx context.Context, name string, body []byte) (*http.Response, error) {
	res, err := esapi.IndicesPutIndexTemplateRequest{Name: name, Body: bytes.NewReader(body)}.Do(ctx, e.c)
	return e.response(res, err)
}

func (esClient) response(res *esapi.Response, err error) (*http.Response, error) {
	if err != nil {
		return nil, clientError(err)
	}
	return &http.Response{StatusCode: res.StatusCode, Header: res.Header, Body: res.Body}, nil
}

// clientError explains the client's errors that need it: a closed client,
// and the product check that refuses every server but Elasticsearch.
func clientError(err error) error {
	switch {
	case errors.Is(err, elasticsearch.ErrClosed):
		return errClosed
	case strings.Contains(err.Error(), "server is not Elasticsearch"):
		return fmt.Errorf("%w: the server did not send X-Elastic-Product: Elasticsearch; "+
			"this looks like OpenSearch, use type: opensearch", err)
	}
	return err
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

// requestError explains a request that got no answer.
func (o *Output) requestError(ctx, rctx context.Context, err error) error {
	err = clientError(err)
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("elasticsearch request: %w (%v)", context.Cause(ctx), err)
	case rctx.Err() != nil:
		return fmt.Errorf("elasticsearch request: no answer within timeout %s: %w", o.cfg.Timeout, err)
	case errors.Is(err, errClosed):
		return err
	}
	return fmt.Errorf("elasticsearch request to %s: %w", o.bulk.Target(), err)
}
