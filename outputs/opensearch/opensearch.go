package opensearch

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/opensearch-project/opensearch-go/v4"
	"github.com/opensearch-project/opensearch-go/v4/signer/awsv2"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/internal/tlsfiles"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/elasticsearch"
	"github.com/auditpipe/auditpipe/outputs/internal/bulk"
)

// errClosed is what Write returns after Close.
var errClosed = fmt.Errorf("opensearch: %w", bulk.ErrClosed)

// Output writes events to OpenSearch as ECS documents with the bulk API.
type Output struct {
	cfg       Config
	log       *slog.Logger
	client    *opensearch.Client
	transport *tlsfiles.Transport
	bulk      *bulk.Writer
	closed    atomic.Bool
}

var _ outputs.Output = (*Output)(nil)

// New validates cfg, applies its defaults and makes the client. It does not
// need the cluster to be up; with aws_sigv4 and no keys it resolves the
// default credential chain's configuration (not the credentials, which
// are fetched, and refreshed, when requests are signed).
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Output, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("opensearch: %w", err)
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("opensearch: %w", err)
	}
	o := &Output{cfg: cfg, log: logger}

	tlsClient, err := cfg.TLS.Client(logger)
	if err != nil {
		return nil, fmt.Errorf("opensearch: %w", err)
	}
	if cfg.TLS.InsecureSkipVerify {
		logger.Warn("opensearch: tls.insecure_skip_verify is on: the server's certificate is not checked")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Several workers write at once; the default of 2 idle connections
	// per host would make the others reconnect every time.
	tr.MaxIdleConnsPerHost = 32
	o.transport = tlsClient.Transport(tr)

	noDiscovery := false
	osCfg := opensearch.Config{
		Addresses: cfg.URLs,
		Username:  cfg.Username,
		Password:  cfg.Password,
		Transport: o.transport,
		// 429 is as safe to re-send as 502-504: creates keyed by id are
		// idempotent (with omit_ids a re-send may duplicate, as any
		// retry would).
		RetryOnStatus: []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout},
		MaxRetries:    max(cfg.MaxRetries, 0),
		DisableRetry:  cfg.MaxRetries < 0,
		RetryBackoff:  clientBackoff,
		// Managed domains and Serverless hide their nodes, and health
		// checks would be one more signed request per node to explain.
		DiscoverNodesOnStart:  &noDiscovery,
		HealthCheckMaxRetries: -1,
	}
	if s := cfg.AWSSigV4; s.enabled() {
		awsCfg, err := loadAWSConfig(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("opensearch: aws_sigv4: %w", err)
		}
		osCfg.Signer, err = awsv2.NewSignerWithService(awsCfg, s.Service)
		if err != nil {
			return nil, fmt.Errorf("opensearch: aws_sigv4: %w", err)
		}
	}
	client, err := opensearch.NewClient(osCfg)
	if err != nil {
		return nil, fmt.Errorf("opensearch: %w", err)
	}
	o.client = client
	mapping, err := templateMapping()
	if err != nil {
		return nil, fmt.Errorf("opensearch: %w", err)
	}
	o.bulk, err = bulk.New(bulk.Config{
		Product:           Type,
		Index:             cfg.Index,
		DataStream:        cfg.DataStream,
		Pipeline:          cfg.Pipeline,
		NoIDs:             cfg.OmitIDs,
		BootstrapTemplate: cfg.BootstrapTemplate,
		TemplateName:      cfg.TemplateName,
		TemplatePriority:  cfg.TemplatePriority,
		Mapping:           mapping,
		Meta:              map[string]string{"managed_by": "auditpipe", "ecs_version": elasticsearch.ECSVersion},
		Timeout:           cfg.Timeout,
		MaxBulkBytes:      cfg.MaxBulkBytes,
		Encode:            elasticsearch.AppendECS,
		AuthHint:          authHint(cfg),
	}, osClient{c: client, sigv4: cfg.AWSSigV4}, logger)
	if err != nil {
		return nil, err
	}

	urls := make([]string, len(cfg.URLs))
	for i, u := range cfg.URLs {
		urls[i] = redactURL(u)
	}
	logger.Info("opensearch output ready", "urls", urls, "target", o.bulk.Target(), "sigv4_service", cfg.AWSSigV4.Service,
		"omit_ids", cfg.OmitIDs, "pipeline", cfg.Pipeline, "bootstrap_template", cfg.BootstrapTemplate)
	if cfg.BootstrapTemplate {
		if err := o.bulk.Bootstrap(ctx); err != nil {
			logger.Warn("opensearch index template not installed yet; will retry before the first write", "err", err)
		}
	}
	return o, nil
}

// loadAWSConfig resolves the region and credentials to sign with: the
// static keys when given, otherwise the SDK's default chain.
func loadAWSConfig(ctx context.Context, s SigV4Config) (aws.Config, error) {
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(s.Region)}
	if s.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(s.AccessKeyID, s.SecretAccessKey, s.SessionToken)))
	}
	if s.Profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(s.Profile))
	}
	return awsconfig.LoadDefaultConfig(ctx, opts...)
}

// authHint names what to check when the cluster refuses the credentials;
// AWS's 403 says only that the signature or token is wrong.
func authHint(cfg Config) string {
	if s := cfg.AWSSigV4; s.enabled() {
		src := "the default credential chain"
		switch {
		case s.AccessKeyID != "":
			src = "aws_sigv4.access_key_id " + s.AccessKeyID
		case s.Profile != "":
			src = "profile " + s.Profile
		}
		return fmt.Sprintf("signed with AWS SigV4 for service %s in %s using %s: check the keys, the region, "+
			"and the domain's access policy or the collection's data access policy", s.Service, s.Region, src)
	}
	if cfg.Username != "" {
		return "check username and password"
	}
	return ""
}

// clientBackoff spaces the client's own quick retries: 100ms, 200ms,
// 400ms, ... up to 1s. Longer waits are the Deliverer's business.
func clientBackoff(attempt int) time.Duration {
	return min(100*time.Millisecond<<min(attempt-1, 4), time.Second)
}

// templateMapping is the elasticsearch output's template mapping with
// OpenSearch's flat_object in place of flattened, which takes none of its
// parameters.
func templateMapping() ([]byte, error) {
	var m any
	if err := json.Unmarshal(elasticsearch.TemplateMapping(), &m); err != nil {
		return nil, fmt.Errorf("template mapping: %w", err)
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			if x["type"] == "flattened" {
				return map[string]any{"type": "flat_object"}
			}
			for k, e := range x {
				x[k] = walk(e)
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		}
		return v
	}
	return json.Marshal(walk(m))
}

// Write sends events with one or more bulk requests (see max_bulk_bytes)
// of create actions whose _id is the event id (index actions without one
// with omit_ids). Items rejected with 429 or 5xx are retryable, 4xx items
// are Permanent with OpenSearch's reason, 409 counts as delivered, and a
// request that fails as a whole is classified by its status as
// outputs.ClassifyHTTP does (a refused signature, 403, is retryable).
func (o *Output) Write(ctx context.Context, events []auditpipe.Event) error {
	if len(events) == 0 {
		return nil
	}
	if o.closed.Load() {
		return errClosed
	}
	return o.bulk.Write(ctx, events)
}

// TemplateBody returns the index template bootstrap_template installs.
func (o *Output) TemplateBody() ([]byte, error) { return o.bulk.TemplateBody() }

// Close releases the client's connections. Writes after Close fail.
func (o *Output) Close(context.Context) error {
	if !o.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := o.client.Close()
	o.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("opensearch: close: %w", err)
	}
	return nil
}

// osClient sends the bulk engine's requests with opensearch-go.
type osClient struct {
	c     *opensearch.Client
	sigv4 SigV4Config
}

func (c osClient) Bulk(ctx context.Context, body []byte, pipeline string) (*http.Response, error) {
	path := "/_bulk"
	if pipeline != "" {
		path += "?pipeline=" + url.QueryEscape(pipeline)
	}
	return c.do(ctx, http.MethodPost, path, body)
}

func (c osClient) PutIndexTemplate(ctx context.Context, name string, body []byte) (*http.Response, error) {
	return c.do(ctx, http.MethodPut, "/_index_template/"+url.PathEscape(name), body)
}

func (c osClient) do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := c.c.Stream(req)
	if err != nil {
		return nil, c.explain(err)
	}
	return res, nil
}

// explain adds what the operator should look at to the client's errors.
func (c osClient) explain(err error) error {
	var cv *tls.CertificateVerificationError
	switch {
	case errors.As(err, &cv):
		return fmt.Errorf("%w (set tls.ca_file to the cluster's CA)", err)
	case c.sigv4.enabled():
		// Credential resolution (the default chain found nothing, an
		// expired SSO session) fails inside the signer, before sending.
		return fmt.Errorf("%w (signing with aws_sigv4, service %s, region %s)", err, c.sigv4.Service, c.sigv4.Region)
	}
	return err
}
