package outputs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/auditpipe/auditpipe/keypath"
)

// TLSConfig is the TLS client configuration every network output accepts
// under its `tls` key.
type TLSConfig struct {
	// Enabled turns TLS on for outputs whose address does not say so
	// (Kafka brokers). An https:// URL or any other field set here also
	// turns it on.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs to trust instead of the system's.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate for mutual TLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked against the server's
	// certificate.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables certificate verification. For tests
	// only: it is logged as a warning.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string `yaml:"min_version"`
}

// IsZero reports whether nothing is set.
func (c TLSConfig) IsZero() bool { return c == TLSConfig{} }

// Validate checks the fields without reading files.
func (c TLSConfig) Validate() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return keypath.Errorf("tls.cert_file and tls.key_file", "set both or neither")
	}
	switch c.MinVersion {
	case "", "1.2", "1.3":
	default:
		return keypath.Errorf("tls.min_version", "%q is not 1.2 or 1.3", c.MinVersion)
	}
	return nil
}

// Build returns the crypto/tls configuration, or nil when c is zero (the
// client's default applies). Errors name the field whose file is bad.
func (c TLSConfig) Build() (*tls.Config, error) {
	if c.IsZero() {
		return nil, nil
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // opt-in, documented as tests only
	}
	if c.MinVersion == "1.3" {
		cfg.MinVersion = tls.VersionTLS13
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file: %s holds no PEM certificate", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
