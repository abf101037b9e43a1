package external

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Config configures one external transformer. In the sidecar it sits under
// a source's `transformer` key (with format: external); the Fluent Bit
// plugin reads the same keys.
type Config struct {
	// Path is the plugin executable. Required. A relative path is
	// relative to the working directory of the process.
	Path string `yaml:"path"`
	// Args are the plugin's command-line arguments. Default none.
	Args []string `yaml:"args"`
	// Env is added to the plugin's environment, which otherwise is the
	// host's. Default none.
	Env map[string]string `yaml:"env"`
	// Checksum pins the executable: the lowercase or uppercase hex
	// SHA-256 of the file (sha256sum's output). The plugin refuses to
	// start, and every restart is refused, when the file does not match.
	// Default empty: not checked.
	Checksum string `yaml:"checksum"`
	// Timeout bounds one call (one batch of at most max_batch payloads).
	// A plugin that has not answered by then is considered hung: the call
	// fails with ErrUnavailable and the plugin is killed and restarted.
	// It also bounds the plugin's start. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// AutoMTLS has the host and the plugin authenticate each other with
	// one-time certificates, so that no other local process can talk to
	// the plugin's socket. Default true.
	AutoMTLS *bool `yaml:"auto_mtls"`
	// MaxBatch is the most payloads one call carries; longer batches are
	// split into several calls. Default 100.
	MaxBatch int `yaml:"max_batch"`
}

// The defaults.
const (
	DefaultTimeout  = 10 * time.Second
	DefaultMaxBatch = 100
)

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.AutoMTLS == nil {
		t := true
		c.AutoMTLS = &t
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	return c
}

// Validate reports the first invalid field by its YAML key. Zero values
// are valid: they stand for the defaults. It does not look at the file;
// New does.
func (c Config) Validate() error {
	if c.Path == "" {
		return errors.New("path: required")
	}
	if _, err := c.checksum(); err != nil {
		return err
	}
	for k := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("env: %q is not a valid variable name", k)
		}
		if k == MagicCookieKey || strings.HasPrefix(k, "PLUGIN_") {
			return fmt.Errorf("env: %s is set by the host for the plugin handshake", k)
		}
	}
	for k, v := range c.Env {
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("env: %s: value holds a NUL byte", k)
		}
	}
	for _, a := range c.Args {
		if strings.ContainsRune(a, 0) {
			return errors.New("args: an argument holds a NUL byte")
		}
	}
	switch {
	case c.Timeout < 0:
		return fmt.Errorf("timeout: must not be negative, got %s", c.Timeout)
	case c.MaxBatch < 0:
		return fmt.Errorf("max_batch: must not be negative, got %d", c.MaxBatch)
	}
	return nil
}

// checksum decodes Checksum; nil when unset.
func (c Config) checksum() ([]byte, error) {
	if c.Checksum == "" {
		return nil, nil
	}
	sum, err := hex.DecodeString(strings.TrimSpace(c.Checksum))
	if err != nil || len(sum) != 32 {
		return nil, errors.New("checksum: want the 64 hex digits of the executable's SHA-256 (sha256sum path)")
	}
	return sum, nil
}

// checkExecutable reports a missing or non-executable path by its key,
// before go-plugin's less specific start errors.
func (c Config) checkExecutable() error {
	fi, err := os.Stat(c.Path)
	switch {
	case err != nil:
		return fmt.Errorf("path: %w", err)
	case fi.IsDir():
		return fmt.Errorf("path: %s is a directory", c.Path)
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("path: %s is not executable", c.Path)
	}
	return nil
}
