package pull

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/auditpipe/auditpipe/outputs"
)

// Defaults of Config.
const (
	DefaultLimit    = 100
	DefaultInterval = 10 * time.Second
	DefaultTimeout  = 10 * time.Second
)

// Config is a pull source's `pull:` block. It has the fields and yaml keys
// of sidecar/config.Pull, which the sidecar converts field by field.
type Config struct {
	// URL is the audit endpoint, e.g. http://yoq:8080/v1/audit. Required.
	// The limit is added to its query as limit=N; other query parameters
	// are kept. Credentials and a limit of its own are refused.
	URL string `yaml:"url"`
	// Limit is how many entries one poll asks for. Default 100. Keep it at
	// or below the server's own maximum (yoq: 500): a server that returns
	// fewer entries than asked for hides the "page full of new entries"
	// signal that a gap is possible.
	Limit int `yaml:"limit"`
	// Interval is the time between polls. Default 10s. More new entries
	// than Limit per Interval means entries are missed (counted as gaps).
	Interval time.Duration `yaml:"interval"`
	// BearerToken is sent as "Authorization: Bearer <token>". Default none.
	// It is never logged.
	BearerToken string `yaml:"bearer_token"`
	// Headers are extra request headers. Default none. Authorization is
	// refused here when bearer_token is set.
	Headers map[string]string `yaml:"headers"`
	// TLS configures the client for an https:// URL (CA, client
	// certificate for mTLS, server name). Default: the system's CAs.
	TLS outputs.TLSConfig `yaml:"tls"`
	// Timeout bounds one poll's request, body included. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Limit == 0 {
		c.Limit = DefaultLimit
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

// Validate reports every problem, each naming its yaml key; zero values
// stand for their defaults and are valid. Values are never quoted in the
// messages of secret-bearing keys.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.URL == "" {
		bad("url: required")
	} else if u, err := url.Parse(c.URL); err != nil {
		bad("url: not a URL")
	} else {
		switch {
		case u.Scheme != "http" && u.Scheme != "https":
			bad("url: scheme must be http or https, got %q", u.Scheme)
		case u.Host == "":
			bad("url: no host")
		case u.User != nil:
			// They would end up in logs and errors; the token has its key.
			bad("url: must not hold credentials (use bearer_token or headers)")
		case u.Query().Has("limit"):
			bad("url: must not set limit (set limit)")
		case u.Scheme == "http" && !c.TLS.IsZero():
			bad("tls: set, but url is http:// (use https://)")
		}
	}
	if c.Limit < 0 {
		bad("limit: must not be negative, got %d", c.Limit)
	}
	if c.Interval < 0 {
		bad("interval: must not be negative, got %s", c.Interval)
	}
	if c.Timeout < 0 {
		bad("timeout: must not be negative, got %s", c.Timeout)
	}
	if strings.ContainsAny(c.BearerToken, "\r\n") {
		bad("bearer_token: must not contain line breaks")
	}
	names := make([]string, 0, len(c.Headers))
	for name := range c.Headers {
		names = append(names, name)
	}
	slices.Sort(names) // stable error order
	for _, name := range names {
		switch {
		case !httpguts.ValidHeaderFieldName(name):
			bad("headers: %q is not a valid header name", name)
		case strings.ContainsAny(c.Headers[name], "\r\n\x00"):
			bad("headers.%s: value must not contain line breaks", name)
		case c.BearerToken != "" && http.CanonicalHeaderKey(name) == "Authorization":
			bad("headers.%s: conflicts with bearer_token (set one)", name)
		}
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
