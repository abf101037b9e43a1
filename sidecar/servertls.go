package sidecar

import (
	"crypto/tls"
	"log/slog"

	"github.com/auditpipe/auditpipe/internal/tlsfiles"
	"github.com/auditpipe/auditpipe/sidecar/config"
)

// serverTLS is the listener's TLS, or nil for plain HTTP. The certificate,
// its key and the client CAs are re-read when their files change, so
// that a certificate cert-manager renews is served without a restart.
func serverTLS(c config.ServerTLS, logger *slog.Logger) (*tls.Config, error) {
	if c.CertFile == "" {
		return nil, nil
	}
	cfg := tlsfiles.ServerConfig{
		CertFile: c.CertFile, KeyFile: c.KeyFile, CertField: "server.tls.cert_file",
		ClientCAFile: c.ClientCAFile, ClientCAField: "server.tls.client_ca_file",
		MinVersion: tls.VersionTLS12,
		Options:    tlsfiles.Options{Logger: logger},
	}
	if c.MinVersion == "1.3" {
		cfg.MinVersion = tls.VersionTLS13
	}
	return tlsfiles.NewServer(cfg)
}
