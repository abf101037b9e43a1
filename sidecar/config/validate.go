package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/auditpipe/auditpipe/outputs/fanout"
	"github.com/auditpipe/auditpipe/outputs/standard"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/alertmanager"
	"github.com/auditpipe/auditpipe/transformers/app"
	"github.com/auditpipe/auditpipe/transformers/k8s"
)

// Formats lists the source formats, in documentation order.
func Formats() []string {
	return []string{"spacelift", "alertmanager", "app", "k8s", "auto", "external"}
}

// Limits on individual keys.
const (
	MinHMACSecretBytes = 16
	MaxPullLimit       = 10000
	MinPullInterval    = time.Second
)

var (
	sourceNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// Validate checks the configuration as WithDefaults completes it and
// returns every problem, joined, each naming its key path
// (`sources[2] (spacelift).auth.hmac.secrets: at least one required`,
// `outputs[0] (siem): elasticsearch.urls: ...`). No message holds a
// secret. It reads no files: certificates and keys are loaded when the
// sidecar starts.
func (c *Config) Validate() error {
	d := c.WithDefaults()
	v := &validator{}
	d.Server.validate(v)
	if len(d.Sources) == 0 {
		v.add("sources", "at least one required")
	}
	names := map[string]int{}
	for i := range d.Sources {
		s := &d.Sources[i]
		at := fmt.Sprintf("sources[%d]", i)
		if s.Name != "" {
			at += " (" + s.Name + ")"
		}
		s.validate(v, at)
		if s.MaxBodyBytes > d.Server.MaxInflightBytes && d.Server.MaxInflightBytes > 0 {
			v.add(at+".max_body_bytes", "%d exceeds server.max_inflight_bytes %d: a body that large could never be admitted", s.MaxBodyBytes, d.Server.MaxInflightBytes)
		}
		if j, dup := names[s.Name]; dup && s.Name != "" {
			v.add(at+".name", "%q already used by sources[%d]", s.Name, j)
		} else {
			names[s.Name] = i
		}
	}
	if err := d.Queue.Validate(); err != nil {
		v.wrap("queue.", err)
	}
	if err := d.DeadLetter.Validate(); err != nil {
		v.wrap("dead_letter.", err)
	}
	if err := fanout.Validate(standard.Registry(), d.Outputs); err != nil {
		v.wrap("", err)
	}
	if err := d.Integrity.Validate(); err != nil {
		v.wrap("integrity.", err)
	}
	validateLabels(v, "labels", d.Labels)
	if _, err := transformers.NewRedactor(d.Redact); err != nil {
		v.wrap("", err)
	}
	if err := d.Limits.Validate(); err != nil {
		v.wrap("", err)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, d.Log.Level) {
		v.add("log.level", "%q is not one of debug, info, warn, error", d.Log.Level)
	}
	if !slices.Contains([]string{"json", "text"}, d.Log.Format) {
		v.add("log.format", "%q is not one of json, text", d.Log.Format)
	}
	if d.Ready.MaxLag < 0 {
		v.add("ready.max_lag", "must not be negative (0 turns the check off)")
	}
	if !(d.Ready.MaxFill > 0 && d.Ready.MaxFill <= 1) {
		v.add("ready.max_fill", "must be a fraction in (0, 1], got %v", d.Ready.MaxFill)
	}
	return v.err()
}

type validator struct{ errs []error }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

// wrap adds err, and each error it joins, with prefix p.
func (v *validator) wrap(p string, err error) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			v.wrap(p, e)
		}
		return
	}
	if p == "" {
		v.errs = append(v.errs, err)
		return
	}
	v.errs = append(v.errs, fmt.Errorf("%s%w", p, err))
}

func (v *validator) err() error { return errors.Join(v.errs...) }

func (s *Server) validate(v *validator) {
	if host, port, err := net.SplitHostPort(s.Listen); err != nil || strings.ContainsAny(host+port, " /") {
		v.add("server.listen", "%q is not host:port (127.0.0.1:8080, :8080)", s.Listen)
	}
	if s.MaxInflightBytes < 0 {
		v.add("server.max_inflight_bytes", "must be positive")
	}
	if s.MaxBodyBytes < 0 {
		v.add("server.max_body_bytes", "must be positive")
	}
	for _, d := range []struct {
		key string
		d   time.Duration
	}{
		{"read_header_timeout", s.ReadHeaderTimeout}, {"read_timeout", s.ReadTimeout},
		{"write_timeout", s.WriteTimeout}, {"idle_timeout", s.IdleTimeout}, {"shutdown_grace", s.ShutdownGrace},
	} {
		if d.d < 0 {
			v.add("server."+d.key, "must not be negative")
		}
	}
	t := s.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		v.add("server.tls", "cert_file and key_file: set both or neither")
	}
	if t.ClientCAFile != "" && t.CertFile == "" {
		v.add("server.tls.client_ca_file", "requires cert_file and key_file (client certificates are checked during a TLS handshake)")
	}
	if t.MinVersion != "1.2" && t.MinVersion != "1.3" {
		v.add("server.tls.min_version", "%q is not 1.2 or 1.3", t.MinVersion)
	}
}

func (s *Source) validate(v *validator, at string) {
	switch {
	case s.Name == "":
		v.add(at+".name", "required")
	case !sourceNameRE.MatchString(s.Name):
		v.add(at+".name", "%q must be lowercase letters, digits, '-' or '_', starting with a letter or digit", s.Name)
	}
	switch {
	case s.Format == "external":
		if s.Transformer == nil {
			v.add(at+".transformer", "required with format external ({path: /path/to/plugin})")
		} else if err := s.Transformer.Validate(); err != nil {
			v.wrap(at+".transformer.", err)
		}
		if s.Pull != nil {
			v.add(at+".pull", "not with format external")
		}
	case !slices.Contains(Formats(), s.Format):
		v.add(at+".format", "%q is not one of %s", s.Format, strings.Join(Formats(), ", "))
	default:
		s.validateFormatSections(v, at)
		if s.Transformer != nil {
			v.add(at+".transformer", "set, but format is %s (it is read by format external)", s.Format)
		}
	}
	if s.Kafka != nil {
		s.validateKafka(v, at)
	} else {
		v.errs = append(v.errs, validateAuth(s.Auth, at+".auth")...)
	}
	if s.MaxBodyBytes < 0 {
		v.add(at+".max_body_bytes", "must be positive")
	}
	rl := s.RateLimit
	switch {
	case math.IsNaN(rl.RequestsPerSecond) || math.IsInf(rl.RequestsPerSecond, 0) || rl.RequestsPerSecond < 0:
		v.add(at+".rate_limit.requests_per_second", "must be a finite number >= 0 (0: unlimited)")
	case rl.Burst < 0:
		v.add(at+".rate_limit.burst", "must not be negative")
	case rl.Burst > 0 && rl.RequestsPerSecond == 0:
		v.add(at+".rate_limit.burst", "set, but requests_per_second is 0 (unlimited)")
	}
	validateLabels(v, at+".labels", s.Labels)
	if s.Pull != nil {
		s.Pull.validate(v, at+".pull", s.Format)
	}
}

// validateFormatSections checks the per-format transformer settings by
// building the transformers, so the rules live in one place, and rejects
// settings the source's format never reads.
func (s *Source) validateFormatSections(v *validator, at string) {
	opts := transformers.Options{Limits: transformers.Limits{}.WithDefaults()}
	sections := []struct {
		format string
		cfg    any
		build  func() error
	}{
		{"alertmanager", s.Alertmanager, func() error { _, err := alertmanager.New(s.Alertmanager, opts); return err }},
		{"app", s.App, func() error { _, err := app.New(s.App, opts); return err }},
		{"k8s", s.K8s, func() error { _, err := k8s.New(s.K8s, opts); return err }},
	}
	for _, sec := range sections {
		if s.Format != "auto" && s.Format != sec.format {
			if !reflect.ValueOf(sec.cfg).IsZero() {
				v.add(at+"."+sec.format, "set, but format is %s (it is read by format %s or auto)", s.Format, sec.format)
			}
			continue
		}
		if err := sec.build(); err != nil {
			v.wrap(at+".", err)
		}
	}
}

// validateKafka checks a Kafka source: its kafka block, and that it sets
// none of what only HTTP sources read. Its messages come from the
// brokers, who authenticate the sidecar (sasl, tls) and whose ACLs say
// who may write the topics, so there is no request to authenticate or
// rate-limit; and it is not served over HTTP, so that no unauthenticated
// endpoint opens beside it.
func (s *Source) validateKafka(v *validator, at string) {
	if err := s.Kafka.Validate(); err != nil {
		v.wrap(at+".kafka.", err)
	}
	if s.Pull != nil {
		v.add(at+".pull", "not together with kafka: a source is either pulled or consumed from Kafka")
	}
	if methods := s.Auth.Methods(); len(methods) > 0 || s.Auth.None {
		v.add(at+".auth", "not with kafka: a Kafka source is not served over HTTP (the brokers' sasl and tls authenticate, their ACLs authorize)")
	}
	if s.RateLimit != (RateLimit{}) {
		v.add(at+".rate_limit", "not with kafka: a Kafka source consumes at its own pace")
	}
}

func (p *Pull) validate(v *validator, at, format string) {
	if format != "app" && format != "auto" {
		v.add(at, "only with format app or auto (pull sources serve yoq audit entries), not %s", format)
	}
	switch u, err := url.Parse(p.URL); {
	case p.URL == "":
		v.add(at+".url", "required")
	case err != nil:
		// url.Parse's error repeats the URL, which may hold credentials.
		v.add(at+".url", "not a valid URL")
	case u.Scheme != "http" && u.Scheme != "https":
		v.add(at+".url", "must be an http:// or https:// URL")
	case u.Host == "":
		v.add(at+".url", "has no host")
	case u.User != nil:
		v.add(at+".url", "must not hold credentials (use pull.bearer_token or pull.headers)")
	case u.Query().Has("limit"):
		v.add(at+".url", "must not set limit (set pull.limit)")
	}
	if p.Limit < 1 || p.Limit > MaxPullLimit {
		v.add(at+".limit", "must be between 1 and %d, got %d", MaxPullLimit, p.Limit)
	}
	if p.Interval < MinPullInterval {
		v.add(at+".interval", "must be at least %s, got %s", MinPullInterval, p.Interval)
	}
	if p.Timeout < 0 {
		v.add(at+".timeout", "must not be negative")
	}
	if p.BearerToken != "" && !printableNoSpace(p.BearerToken) {
		v.add(at+".bearer_token", "contains white space or control characters (the value is not shown)")
	}
	for _, k := range sortedKeys(p.Headers) {
		switch {
		case !httpguts.ValidHeaderFieldName(k):
			v.add(at+".headers", "%q is not a valid header name", k)
		case strings.EqualFold(k, "Authorization") && p.BearerToken != "":
			v.add(at+".headers."+k, "set together with pull.bearer_token; use one")
		case strings.ContainsAny(p.Headers[k], "\r\n\x00"):
			v.add(at+".headers."+k, "contains a line break or NUL (the value is not shown)")
		}
	}
	if err := p.TLS.Validate(); err != nil {
		v.wrap(at+".", err)
	}
}

// Validate checks the authentication settings; errors name keys from
// `auth` down. No message holds a secret.
func (a Auth) Validate() error { return errors.Join(validateAuth(a, "auth")...) }

func validateAuth(a Auth, at string) []error {
	v := &validator{}
	methods := a.Methods()
	switch {
	case a.None && len(methods) > 0:
		v.add(at+".none", "cannot be combined with %s", strings.Join(methods, ", "))
	case !a.None && len(methods) == 0:
		v.add(at, "at least one method required (hmac, bearer, basic), or none: true for no authentication")
	}
	if h := a.HMAC; h != nil {
		if len(h.Secrets) == 0 {
			v.add(at+".hmac.secrets", "at least one required")
		}
		for i, s := range h.Secrets {
			switch {
			case s == "":
				v.add(fmt.Sprintf("%s.hmac.secrets[%d]", at, i), "empty (an unset variable with a default of \"\"?)")
			case len(s) < MinHMACSecretBytes:
				v.add(fmt.Sprintf("%s.hmac.secrets[%d]", at, i), "too short: at least %d bytes required (the value is not shown)", MinHMACSecretBytes)
			}
		}
		if h.Header != "" && !httpguts.ValidHeaderFieldName(h.Header) {
			v.add(at+".hmac.header", "%q is not a valid header name", h.Header)
		}
	}
	if b := a.Bearer; b != nil {
		if len(b.Tokens) == 0 {
			v.add(at+".bearer.tokens", "at least one required")
		}
		for i, t := range b.Tokens {
			switch {
			case t == "":
				v.add(fmt.Sprintf("%s.bearer.tokens[%d]", at, i), "empty (an unset variable with a default of \"\"?)")
			case !printableNoSpace(t):
				v.add(fmt.Sprintf("%s.bearer.tokens[%d]", at, i), "contains white space or control characters (the value is not shown)")
			}
		}
	}
	if b := a.Basic; b != nil {
		switch {
		case b.Username == "":
			v.add(at+".basic.username", "required")
		case strings.ContainsAny(b.Username, ":\r\n"):
			v.add(at+".basic.username", "must not contain ':' or line breaks")
		}
		if b.Password == "" {
			v.add(at+".basic.password", "required")
		}
	}
	return v.errs
}

func validateLabels(v *validator, at string, labels map[string]string) {
	for _, k := range sortedKeys(labels) {
		if !labelNameRE.MatchString(k) {
			v.add(at, "%q is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)", k)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// printableNoSpace reports whether s can be sent in a header as one
// credential: no white space, no control characters.
func printableNoSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}
