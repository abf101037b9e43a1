package transformers

import (
	"bytes"
	"fmt"
)

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
	// (so "api_key" matches apiKey, X-Api-Key and stripe_api_key). Default:
	// password, passwd, secret, token, api_key, authorization, private_key,
	// cookie.
	Keys []string `yaml:"keys"`
	// AddKeys extends the default list instead of replacing it.
	AddKeys []string `yaml:"add_keys"`
}

// Redactor decides which member names hold secrets. The zero value and nil
// redact nothing. It is immutable and safe for concurrent use.
type Redactor struct {
	patterns [][]byte
	first    [256]bool
}

// NewRedactor compiles cfg; empty Keys means the defaults.
func NewRedactor(cfg RedactConfig) (*Redactor, error) {
	keys := cfg.Keys
	if len(keys) == 0 {
		keys = defaultRedactKeys
	}
	keys = append(append([]string(nil), keys...), cfg.AddKeys...)
	r := &Redactor{}
	for i, k := range keys {
		p := normalizeKey(nil, []byte(k))
		if len(p) == 0 {
			return nil, fmt.Errorf("redact.keys[%d]: pattern %q is empty once separators are removed", i, k)
		}
		r.patterns = append(r.patterns, p)
		r.first[p[0]] = true
	}
	return r, nil
}

// Secret reports whether values under the member name key must be redacted.
func (r *Redactor) Secret(key []byte) bool {
	if r == nil || len(r.patterns) == 0 {
		return false
	}
	var buf [64]byte
	n := normalizeKey(buf[:0], key)
	// Most names contain none of the patterns' first letters at any
	// position; the table keeps the per-key cost to one pass.
	for i := range n {
		if !r.first[n[i]] {
			continue
		}
		for _, p := range r.patterns {
			if bytes.HasPrefix(n[i:], p) {
				return true
			}
		}
	}
	return false
}

func normalizeKey(dst, key []byte) []byte {
	for _, c := range key {
		switch {
		case c >= 'A' && c <= 'Z':
			dst = append(dst, c+'a'-'A')
		case c == '_' || c == '-' || c == '.' || c == ' ':
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
