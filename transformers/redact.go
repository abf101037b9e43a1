package transformers

import "github.com/auditpipe/auditpipe/transformers/internal/redact"

// DefaultRedactKeys are the key patterns whose values are replaced by
// Redacted wherever they appear in an event's details.
var defaultRedactKeys = []string{"password", "passwd", "secret", "token", "api_key", "authorization", "private_key", "cookie"}

// DefaultRedactKeys returns the built-in key patterns.
func DefaultRedactKeys() []string { return append([]string(nil), defaultRedactKeys...) }

// Redacted replaces every redacted value.
const Redacted = "[REDACTED]"

// RedactConfig configures redaction. It is shared by the sidecar YAML
// (`redact:`) and the Fluent Bit plugin (`Redact_Keys`).
type RedactConfig struct {
	// Keys are patterns matched against object member names anywhere in
	// the details: a name matches when, lowercased and with '_', '-', '.'
	// and spaces removed, it contains the pattern treated the same way
	// (so "api_key" matches apiKey, X-Api-Key and stripe_api_key). A
	// qualified name such as authorization.k8s.io/decision is judged by
	// its part after the last '/'. Default:
	// password, passwd, secret, token, api_key, authorization, private_key,
	// cookie.
	Keys []string `yaml:"keys"`
	// AddKeys extends the default list instead of replacing it.
	AddKeys []string `yaml:"add_keys"`
}

// Redactor decides which member names hold secrets. The zero value and nil
// redact nothing. It is immutable and safe for concurrent use.
type Redactor struct {
	m *redact.Matcher
}

// NewRedactor compiles cfg; empty Keys means the defaults.
func NewRedactor(cfg RedactConfig) (*Redactor, error) {
	keys := cfg.Keys
	if len(keys) == 0 {
		keys = defaultRedactKeys
	}
	keys = append(append([]string(nil), keys...), cfg.AddKeys...)
	m, err := redact.New(keys)
	if err != nil {
		return nil, err
	}
	return &Redactor{m: m}, nil
}

// Secret reports whether values under the member name key must be redacted.
func (r *Redactor) Secret(key []byte) bool { return r.matcher().Secret(key) }

// matcher is what the engine consults: nil for a nil Redactor.
func (r *Redactor) matcher() *redact.Matcher {
	if r == nil {
		return nil
	}
	return r.m
}
