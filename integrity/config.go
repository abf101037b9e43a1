package integrity

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Config is the `integrity:` block of the sidecar's configuration. With
// a signing key set, every output seals what it delivers into its own
// chain (an output opts out with `integrity: false`).
type Config struct {
	// SigningKeyFile is the Ed25519 private key, PKCS#8 PEM, as
	// `auditpipe keygen` writes it. Setting it turns integrity on.
	SigningKeyFile string `yaml:"signing_key_file"`
	// Sign is "batch" (the default: the last event of every delivered
	// batch carries a signature over the chain head) or "every_event".
	Sign Mode `yaml:"sign"`
	// SignEvery bounds the events between two signatures inside one long
	// batch. Default 1000.
	SignEvery int `yaml:"sign_every"`
	// Instance names this forwarder in its streams
	// (<output>/<instance>/<chain start>), so that several forwarders
	// writing to one bucket or topic keep separate chains. Default: the
	// POD_NAME environment variable, else the host name.
	Instance string `yaml:"instance"`
}

// Enabled reports whether a signing key is configured.
func (c *Config) Enabled() bool { return c.SigningKeyFile != "" }

// Validate checks the block; errors name the key. The key file itself is
// read by Key, at startup.
func (c *Config) Validate() error {
	var errs []error
	switch c.Sign {
	case "", SignBatch, SignEveryEvent:
	default:
		errs = append(errs, fmt.Errorf("sign: %q is not %q or %q", c.Sign, SignBatch, SignEveryEvent))
	}
	if c.SignEvery < 0 {
		errs = append(errs, fmt.Errorf("sign_every: %d is negative", c.SignEvery))
	}
	if strings.ContainsAny(c.Instance, "/\x00\n") {
		errs = append(errs, fmt.Errorf("instance: %q may not hold '/' or control characters", c.Instance))
	}
	if !c.Enabled() && (c.Sign != "" || c.SignEvery != 0 || c.Instance != "") {
		errs = append(errs, errors.New("signing_key_file: required when integrity is configured"))
	}
	return errors.Join(errs...)
}

// Key reads the signing key. Its errors name the key and the file, never
// the file's content.
func (c *Config) Key() (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(c.SigningKeyFile)
	if err != nil {
		return nil, fmt.Errorf("signing_key_file: %w", err)
	}
	k, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("signing_key_file: %s: %w", c.SigningKeyFile, err)
	}
	return k, nil
}

// InstanceName is Instance, or its default: $POD_NAME, else the host name.
func (c *Config) InstanceName(env func(string) (string, bool)) string {
	if c.Instance != "" {
		return c.Instance
	}
	if v, ok := env("POD_NAME"); ok && v != "" {
		return v
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "auditpipe"
}
