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
	patterns [][]byte
	// bigrams marks the first two bytes of every pattern: member names are
	// checked for every event, and almost none contain any of these pairs,
	// so a name costs one pass and no pattern comparison.
	bigrams [1 << 16 / 8]byte
	single  [256]bool // patterns of one byte
	minLen  int       // shortest pattern: shorter names cannot match
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
		if r.minLen == 0 || len(p) < r.minLen {
			r.minLen = len(p)
		}
		if len(p) == 1 {
			r.single[p[0]] = true
			continue
		}
		bg := uint16(p[0])<<8 | uint16(p[1])
		r.bigrams[bg>>3] |= 1 << (bg & 7)
	}
	return r, nil
}

// Secret reports whether values under the member name key must be redacted.
func (r *Redactor) Secret(key []byte) bool {
	// Qualified names (authorization.k8s.io/decision) are judged by their
	// last segment: the prefix names an owner, not the value's nature.
	if i := bytes.LastIndexByte(key, '/'); i >= 0 {
		key = key[i+1:]
	}
	if r == nil || len(key) < r.minLen {
		return false
	}
	var buf [64]byte
	n := normalizeKey(buf[:0], key)
	for i := range n {
		if r.single[n[i]] {
			return true
		}
		if i+1 == len(n) {
			break
		}
		bg := uint16(n[i])<<8 | uint16(n[i+1])
		if r.bigrams[bg>>3]&(1<<(bg&7)) == 0 {
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
