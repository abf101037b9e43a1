package webhook

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/auditpipe/auditpipe/keypath"
	"github.com/auditpipe/auditpipe/outputs"
)

// Mode is how events are put into requests.
type Mode string

// The modes. The batch modes send one request per batch (split at
// max_batch_bytes); the others one request per event.
const (
	// ModeEvent posts each event's JSON form as application/json.
	ModeEvent Mode = "event"
	// ModeNDJSON posts a batch as application/x-ndjson, one event per line.
	ModeNDJSON Mode = "ndjson"
	// ModeJSONArray posts a batch as a JSON array (application/json).
	ModeJSONArray Mode = "json_array"
	// ModeCloudEvents posts each event as a structured CloudEvent
	// (application/cloudevents+json).
	ModeCloudEvents Mode = "cloudevents"
	// ModeCloudEventsBatch posts a batch as a CloudEvents batch
	// (application/cloudevents-batch+json).
	ModeCloudEventsBatch Mode = "cloudevents_batch"
)

// DefaultMode is ndjson: one request per batch costs a SIEM collector one
// round trip for a hundred events instead of a hundred; every common HTTP
// collector reads it line by line (Splunk HEC raw, Logstash's json_lines,
// Vector, Fluentd, Sumo Logic), and a reader that chokes on one line still
// has the others, which a JSON array does not give.
const DefaultMode = ModeNDJSON

// Modes lists every mode.
func Modes() []Mode {
	return []Mode{ModeEvent, ModeNDJSON, ModeJSONArray, ModeCloudEvents, ModeCloudEventsBatch}
}

// Batched reports whether m sends several events per request.
func (m Mode) Batched() bool {
	return m == ModeNDJSON || m == ModeJSONArray || m == ModeCloudEventsBatch
}

// ContentType is the media type of m's request bodies.
func (m Mode) ContentType() string {
	switch m {
	case ModeNDJSON:
		return "application/x-ndjson"
	case ModeCloudEvents:
		return "application/cloudevents+json"
	case ModeCloudEventsBatch:
		return "application/cloudevents-batch+json"
	default:
		return "application/json"
	}
}

// DefaultVersion is the version in the User-Agent when Config.Version is
// empty.
const DefaultVersion = "dev"

// Config configures the webhook output; it sits under the `webhook` key of
// an output entry.
type Config struct {
	// URL is the endpoint events are POSTed to, http:// or https://.
	// Required. Errors and logs show only its scheme and host, since
	// some collectors put their token in the path.
	URL string `yaml:"url"`
	// Mode is one of event, ndjson, json_array, cloudevents,
	// cloudevents_batch. Default ndjson (see DefaultMode).
	Mode Mode `yaml:"mode"`
	// Secret signs every body: X-Signature-256 is "sha256=" and the hex
	// HMAC-SHA256 of the exact body under it. Default empty: no signature.
	Secret string `yaml:"secret"`
	// BearerToken is sent as "Authorization: Bearer <token>". Default
	// empty.
	BearerToken string `yaml:"bearer_token"`
	// BasicAuth is "user:password" for HTTP basic authentication (the
	// user may not contain a colon, as RFC 7617 says). Default empty.
	BasicAuth string `yaml:"basic_auth"`
	// Headers are added to every request. They may set User-Agent, but
	// not the headers the output owns (Content-Type, Content-Length,
	// Host, Idempotency-Key, X-Signature-256, Transfer-Encoding), nor
	// Authorization together with bearer_token or basic_auth. Default
	// none.
	Headers map[string]string `yaml:"headers"`
	// TLS is the client TLS configuration for an https:// URL (CA file,
	// client certificate, server name). Default: the system's roots.
	TLS outputs.TLSConfig `yaml:"tls"`
	// Timeout bounds one request, from dialling to reading the answer.
	// Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxBatchBytes is the largest body the batch modes send: a batch
	// whose body would be larger is split into several requests. An
	// event larger than this on its own is sent alone. Default 1048576
	// (1 MiB).
	MaxBatchBytes int `yaml:"max_batch_bytes"`
	// MaxConcurrency bounds the requests in flight at once in the event
	// modes (event, cloudevents), across all concurrent Writes. Default 4.
	MaxConcurrency int `yaml:"max_concurrency"`
	// Version is the program's version, sent as User-Agent
	// auditpipe/<version>. It is set by the program, not in YAML.
	// Default "dev".
	Version string `yaml:"-"`
}

// The defaults.
const (
	DefaultTimeout        = 10 * time.Second
	DefaultMaxBatchBytes  = 1 << 20
	DefaultMaxConcurrency = 4
)

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Mode == "" {
		c.Mode = DefaultMode
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MaxConcurrency == 0 {
		c.MaxConcurrency = DefaultMaxConcurrency
	}
	if c.Version == "" {
		c.Version = DefaultVersion
	}
	return c
}

// ownHeader reports whether the output sets the header (canonical form),
// so that a configured one may not override it.
func ownHeader(canon string) bool {
	switch canon {
	case "Content-Type", "Content-Length", "Host", "Idempotency-Key", "X-Signature-256", "Transfer-Encoding":
		return true
	}
	return false
}

// Validate reports the first invalid field by its YAML key. Zero values
// are valid: they stand for the defaults.
func (c Config) Validate() error {
	u, err := outputs.ParseHTTPURL(c.URL, "basic_auth")
	if err != nil {
		return err
	}
	if c.Mode != "" && !slices.Contains(Modes(), c.Mode) {
		return keypath.Errorf("mode", "%q is not one of event, ndjson, json_array, cloudevents, cloudevents_batch", c.Mode)
	}
	if c.BearerToken != "" && c.BasicAuth != "" {
		return keypath.Errorf("bearer_token, basic_auth", "set one or neither")
	}
	if c.BasicAuth != "" && !strings.Contains(c.BasicAuth, ":") {
		return keypath.Errorf("basic_auth", "want user:password")
	}
	for name, value := range c.Headers {
		canon := http.CanonicalHeaderKey(name)
		switch {
		case !httpguts.ValidHeaderFieldName(name):
			return keypath.Errorf("headers", "%q is not a valid header name", name)
		case strings.ContainsAny(value, "\r\n\x00"):
			return keypath.Errorf("headers", "%s: value holds a line break or NUL", canon)
		case ownHeader(canon):
			return keypath.Errorf("headers", "%s is set by the output", canon)
		case canon == "Authorization" && (c.BearerToken != "" || c.BasicAuth != ""):
			return keypath.Errorf("headers", "Authorization conflicts with bearer_token or basic_auth")
		}
	}
	if err := c.TLS.Validate(); err != nil {
		return err
	}
	if !c.TLS.IsZero() && u.Scheme != "https" {
		return keypath.Errorf("tls", "set, but url is http://; use https://")
	}
	switch {
	case c.Timeout < 0:
		return keypath.Errorf("timeout", "must be positive")
	case c.MaxBatchBytes < 0:
		return keypath.Errorf("max_batch_bytes", "must be positive")
	case c.MaxConcurrency < 0:
		return keypath.Errorf("max_concurrency", "must be positive")
	}
	return nil
}

// endpoint is u without path, query and credentials: what errors and logs
// may show.
func endpoint(u *url.URL) string {
	return u.Scheme + "://" + u.Host
}
