package opensearch

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/keypath"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/internal/bulk"
)

// Defaults.
const (
	DefaultIndex            = "audit-{source}-{yyyy.MM.dd}"
	DefaultTimeout          = 30 * time.Second
	DefaultMaxRetries       = 2
	DefaultMaxBulkBytes     = 5 << 20
	DefaultTemplatePriority = 500
	DefaultSigV4Service     = "es"
)

// Config is the opensearch output's configuration, under the `opensearch`
// key of an output entry.
type Config struct {
	// URLs are the base URLs of the nodes, or the domain or collection
	// endpoint, http:// or https://, used round-robin. Required.
	URLs []string `yaml:"urls"`
	// Username and Password authenticate with HTTP basic auth (the
	// security plugin's internal users, a domain's master user).
	// Default: none. Not together with aws_sigv4.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// AWSSigV4 signs every request with AWS Signature Version 4, for
	// Amazon OpenSearch Service and Serverless. Default: off.
	AWSSigV4 SigV4Config `yaml:"aws_sigv4"`
	// TLS configures HTTPS. Default: the system's roots.
	TLS outputs.TLSConfig `yaml:"tls"`
	// Index is the index name template (placeholders as outputs.Template),
	// lowercased when rendered. Default "audit-{source}-{yyyy.MM.dd}"
	// unless data_stream is set.
	Index string `yaml:"index"`
	// DataStream sends every event to this data stream instead of index;
	// it needs an index template with data_stream enabled
	// (bootstrap_template installs one). Default: none.
	DataStream string `yaml:"data_stream"`
	// Pipeline is an ingest pipeline to run on every document. Default:
	// none.
	Pipeline string `yaml:"pipeline"`
	// OmitIDs sends documents without _id (index actions, or create for a
	// data stream), as OpenSearch Serverless time series collections
	// require: they refuse custom document ids. An event sent again after
	// a lost answer is then stored twice. Default false.
	OmitIDs bool `yaml:"omit_ids"`
	// BootstrapTemplate installs, at start, an _index_template with the
	// ECS mapping (as the elasticsearch output's, with flat_object for
	// flattened; OpenSearch 2.12 or later) for the index pattern or the
	// data stream. Default false.
	BootstrapTemplate bool `yaml:"bootstrap_template"`
	// TemplateName is that template's name. Default "auditpipe-" and the
	// data stream's name or the index's text before its first
	// placeholder.
	TemplateName string `yaml:"template_name"`
	// TemplatePriority is that template's priority. Default 500.
	TemplatePriority int `yaml:"template_priority"`
	// Timeout bounds each HTTP request, the client's own retries
	// included. Default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxRetries is how many times the client re-sends a request at once
	// after a network error or a 429, 502, 503 or 504. Default 2; -1 turns
	// them off.
	MaxRetries int `yaml:"max_retries"`
	// MaxBulkBytes splits a batch into bulk requests of about this size
	// (Amazon OpenSearch Service limits a request to 10 MiB on small
	// instances). Default 5 MiB.
	MaxBulkBytes int `yaml:"max_bulk_bytes"`
}

// SigV4Config is the aws_sigv4 section.
type SigV4Config struct {
	// Region is the AWS region of the domain or collection, such as
	// "eu-west-1". Setting it turns signing on.
	Region string `yaml:"region"`
	// Service is "es" for an Amazon OpenSearch Service domain or "aoss"
	// for an OpenSearch Serverless collection. Default "es".
	Service string `yaml:"service"`
	// Profile is the shared configuration profile the default credential
	// chain reads. Default: AWS_PROFILE, or "default".
	Profile string `yaml:"profile"`
	// AccessKeyID, SecretAccessKey and SessionToken are static
	// credentials in place of the default chain (tests, or where nothing
	// else is possible). Default: none.
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
	SessionToken    string `yaml:"session_token"`
}

func (s SigV4Config) enabled() bool { return s != SigV4Config{} }

func (c Config) withDefaults() Config {
	if c.Index == "" && c.DataStream == "" {
		c.Index = DefaultIndex
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.MaxBulkBytes == 0 {
		c.MaxBulkBytes = DefaultMaxBulkBytes
	}
	if c.TemplatePriority == 0 {
		c.TemplatePriority = DefaultTemplatePriority
	}
	if c.TemplateName == "" {
		c.TemplateName = defaultTemplateName(c)
	}
	if c.AWSSigV4.enabled() && c.AWSSigV4.Service == "" {
		c.AWSSigV4.Service = DefaultSigV4Service
	}
	return c
}

// Validate checks c as written (zero values stand for their defaults) and
// reports every problem, each naming its YAML key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) { errs = append(errs, keypath.Errorf(key, format, args...)) }

	if len(c.URLs) == 0 {
		bad("urls", "required: the nodes' or the endpoint's https:// URL")
	}
	for i, u := range c.URLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad(fmt.Sprintf("urls[%d]", i), "%q is not an http:// or https:// URL", redactURL(u))
		}
	}
	if c.Password != "" && c.Username == "" {
		bad("password", "set without username")
	}
	if s := c.AWSSigV4; s.enabled() {
		if c.Username != "" {
			bad("aws_sigv4", "not together with username: AWS takes one Authorization header")
		}
		if s.Region == "" {
			bad("aws_sigv4.region", "required when signing (the domain's or collection's region, such as eu-west-1)")
		}
		if s.Service != "" && s.Service != "es" && s.Service != "aoss" {
			bad("aws_sigv4.service", "%q: want es (OpenSearch Service) or aoss (Serverless)", s.Service)
		}
		if (s.AccessKeyID == "") != (s.SecretAccessKey == "") {
			bad("aws_sigv4.secret_access_key", "access_key_id and secret_access_key go together")
		}
		if s.SessionToken != "" && s.AccessKeyID == "" {
			bad("aws_sigv4.session_token", "set without access_key_id")
		}
		if s.Profile != "" && s.AccessKeyID != "" {
			bad("aws_sigv4.profile", "not together with access_key_id")
		}
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Index != "" && c.DataStream != "" {
		bad("index", "not together with data_stream")
	}
	if c.Index != "" {
		if _, err := outputs.ParseTemplate(c.Index); err != nil {
			bad("index", "%v", err)
		} else if c.BootstrapTemplate && strings.HasPrefix(c.Index, "{") {
			bad("index", "%q starts with a placeholder, so bootstrap_template's pattern would match unrelated indices; start it with fixed text", c.Index)
		}
	}
	if c.DataStream != "" {
		if strings.ContainsAny(c.DataStream, "{}") {
			bad("data_stream", "%q: must be a fixed name (placeholders are for index)", c.DataStream)
		} else if err := bulk.CheckName(c.DataStream); err != nil {
			bad("data_stream", "%v", err)
		}
	}
	if c.TemplateName != "" {
		if err := bulk.CheckName(c.TemplateName); err != nil {
			bad("template_name", "%v", err)
		}
	}
	if c.TemplatePriority < 0 {
		bad("template_priority", "must not be negative")
	}
	if c.Timeout < 0 {
		bad("timeout", "must not be negative")
	}
	if c.MaxRetries < -1 {
		bad("max_retries", "must be -1 (off), 0 (default) or more")
	}
	if c.MaxBulkBytes < 0 {
		bad("max_bulk_bytes", "must not be negative")
	}
	return errors.Join(errs...)
}

// redactURL drops a password from u for logs and errors.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return u
	}
	return p.Redacted()
}

func defaultTemplateName(c Config) string {
	if c.DataStream != "" {
		return "auditpipe-" + c.DataStream
	}
	prefix, _, _ := strings.Cut(c.Index, "{")
	prefix = strings.ToLower(strings.TrimRight(prefix, "-_.+"))
	if prefix == "" {
		return "auditpipe"
	}
	return "auditpipe-" + prefix
}
