package elasticsearch

import (
	"encoding/base64"
	"encoding/hex"
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
)

// Config is the elasticsearch output's configuration, under the
// `elasticsearch` key of an output entry.
type Config struct {
	// URLs are the base URLs of the nodes to send to, http:// or
	// https://, used round-robin. Either urls or cloud_id is required.
	URLs []string `yaml:"urls"`
	// CloudID is an Elastic Cloud deployment's Cloud ID, in place of
	// urls. Default: none.
	CloudID string `yaml:"cloud_id"`
	// APIKey authenticates with an API key: the base64 "encoded" value
	// Elasticsearch returns when it creates one, or "id:api_key".
	// Default: none. Not together with username.
	APIKey string `yaml:"api_key"`
	// Username and Password authenticate with HTTP basic auth. Default:
	// none.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// TLS configures HTTPS (tls.ca_file for a private CA, client
	// certificates, ...). Default: the system's roots.
	TLS outputs.TLSConfig `yaml:"tls"`
	// CAFingerprint pins the server by the SHA-256 of its certificate or
	// of a CA certificate in the chain it presents, as Elasticsearch
	// prints at first start: 64 hex digits, colons allowed. When it is
	// set without tls.ca_file, the chain is not otherwise verified.
	// Default: none.
	CAFingerprint string `yaml:"ca_fingerprint"`
	// Index is the index name template (placeholders as outputs.Template:
	// {source}, {yyyy.MM.dd}, {label:NAME}, ...), lowercased when
	// rendered because Elasticsearch requires it. Default
	// "audit-{source}-{yyyy.MM.dd}" unless data_stream is set.
	Index string `yaml:"index"`
	// DataStream sends every event to this data stream (for example
	// "logs-auditpipe-default") instead of to index. A data stream needs
	// an index template with data_stream enabled: the cluster's built-in
	// one covers logs-*-*, bootstrap_template installs one for any name.
	// Default: none.
	DataStream string `yaml:"data_stream"`
	// Pipeline is an ingest pipeline to run on every document. Default:
	// none (the index's default pipeline, if any, still runs).
	Pipeline string `yaml:"pipeline"`
	// BootstrapTemplate installs, at start, an index template with the
	// ECS mapping of the documents for the index pattern (index with its
	// placeholders as '*') or the data stream. If the cluster cannot be
	// reached, the first write tries again and fails (retryably) until the
	// template is in, so no index is created without it; if the cluster
	// refuses it, that is logged, writes go ahead and it is tried again
	// at most once a minute. Default false.
	BootstrapTemplate bool `yaml:"bootstrap_template"`
	// TemplateName is the name of that index template. Default
	// "auditpipe-" followed by the data stream name, or by the index's
	// text before its first placeholder.
	TemplateName string `yaml:"template_name"`
	// TemplatePriority is that template's priority; it must differ from
	// that of any other template matching the same names (the built-in
	// logs template has 100). Default 500.
	TemplatePriority int `yaml:"template_priority"`
	// Timeout bounds each HTTP request, the client's own retries
	// included. Default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxRetries is how many times the client re-sends a request at once
	// after a network error or a 429, 502, 503 or 504, before the
	// delivery layer's slower back-off takes over. Default 2; -1 turns
	// them off.
	MaxRetries int `yaml:"max_retries"`
	// MaxBulkBytes splits a batch into several bulk requests so that none
	// is much larger than this (a single document can be); keep it under
	// the cluster's http.max_content_length (100mb) and any proxy's
	// limit. Default 5 MiB.
	MaxBulkBytes int `yaml:"max_bulk_bytes"`
}

// withDefaults returns c with its unset fields defaulted.
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
	return c
}

// Validate checks c as written (zero values stand for their defaults) and
// reports every problem, each naming its YAML key.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) { errs = append(errs, keypath.Errorf(key, format, args...)) }

	switch {
	case len(c.URLs) == 0 && c.CloudID == "":
		bad("urls", "set urls or cloud_id")
	case len(c.URLs) > 0 && c.CloudID != "":
		bad("cloud_id", "set urls or cloud_id, not both")
	}
	for i, u := range c.URLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad(fmt.Sprintf("urls[%d]", i), "%q is not an http:// or https:// URL", redactURL(u))
		}
	}
	if c.CloudID != "" {
		if err := checkCloudID(c.CloudID); err != nil {
			bad("cloud_id", "%v", err)
		}
	}
	if c.APIKey != "" && c.Username != "" {
		bad("api_key", "not together with username")
	}
	if c.Password != "" && c.Username == "" {
		bad("password", "set without username")
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.CAFingerprint != "" {
		if _, err := parseFingerprint(c.CAFingerprint); err != nil {
			bad("ca_fingerprint", "%v", err)
		}
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
		} else if err := checkName(c.DataStream); err != nil {
			bad("data_stream", "%v", err)
		}
	}
	if c.TemplateName != "" {
		if err := checkName(c.TemplateName); err != nil {
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

// checkName applies Elasticsearch's rules for index, data stream and
// template names.
func checkName(n string) error { return bulk.CheckName(n) }

// checkCloudID checks the form "name:base64(host$es-uuid$kibana-uuid)".
func checkCloudID(id string) error {
	_, enc, ok := strings.Cut(id, ":")
	if !ok {
		return errors.New("want NAME:BASE64, as shown in the Elastic Cloud console")
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return fmt.Errorf("not base64 after the ':': %w", err)
	}
	if parts := strings.Split(string(raw), "$"); len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return errors.New("the decoded value is not host$uuid")
	}
	return nil
}

// parseFingerprint reads a hex SHA-256, with or without colons.
func parseFingerprint(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	if err != nil || len(b) != 32 {
		return nil, errors.New("want the 64 hex digits of a SHA-256 fingerprint")
	}
	return b, nil
}

// encodeAPIKey accepts both forms of an API key credential and returns
// the one the Authorization header carries.
func encodeAPIKey(k string) string {
	if strings.Contains(k, ":") {
		return base64.StdEncoding.EncodeToString([]byte(k))
	}
	return k
}

// redactURL drops a password from u for logs and errors.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return u
	}
	return p.Redacted()
}

// indexPattern is the index template pattern covering what an index
// template renders to: every placeholder as '*'.
func indexPattern(index string) string { return bulk.IndexPattern(index) }

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
