package outputs

import (
	"crypto/tls"
	"log/slog"

	"github.com/auditpipe/auditpipe/internal/tlsfiles"
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
	// It is re-read when it changes, as are CertFile and KeyFile.
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

// Client loads the files and returns the client's TLS, which re-reads
// them when they change (see internal/tlsfiles): nil when c is zero (plain
// TCP for Kafka, the defaults for HTTP). Errors name the field whose file
// is bad. logger gets a line when a file changes.
func (c TLSConfig) Client(logger *slog.Logger) (*tlsfiles.Client, error) {
	if c.IsZero() {
		return nil, nil
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	cfg := tlsfiles.ClientConfig{
		CAFile: c.CAFile, CAField: "tls.ca_file",
		CertFile: c.CertFile, KeyFile: c.KeyFile, CertField: "tls.cert_file",
		ServerName:         c.ServerName,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: c.InsecureSkipVerify,
		Options:            tlsfiles.Options{Logger: logger},
	}
	if c.MinVersion == "1.3" {
		cfg.MinVersion = tls.VersionTLS13
	}
	return tlsfiles.NewClient(cfg)
}
