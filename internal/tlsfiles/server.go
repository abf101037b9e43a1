package tlsfiles

import (
	"crypto/tls"
	"sync"
)

// ServerConfig is a TLS server's settings and the files it re-reads.
type ServerConfig struct {
	// CertFile and KeyFile are the server's certificate chain and key;
	// CertField names them in errors and logs (server.tls.cert_file).
	CertFile, KeyFile, CertField string
	// ClientCAFile, when set, requires client certificates signed by one
	// of its CAs; ClientCAField names it (server.tls.client_ca_file).
	ClientCAFile, ClientCAField string
	// MinVersion and NextProtos are those of tls.Config.
	MinVersion uint16
	NextProtos []string
	Options
}

// NewServer loads the files cfg names and returns a configuration whose
// handshakes use their current content: the certificate through
// GetCertificate, the client CAs through GetConfigForClient, so that Go
// verifies client certificates itself against the pool loaded last.
func NewServer(cfg ServerConfig) (*tls.Config, error) {
	pair, err := NewKeyPair(cfg.CertField, cfg.CertFile, cfg.KeyFile, cfg.Options)
	if err != nil {
		return nil, err
	}
	base := &tls.Config{
		MinVersion:     cfg.MinVersion,
		NextProtos:     cfg.NextProtos,
		GetCertificate: pair.GetCertificate,
	}
	if cfg.ClientCAFile == "" {
		return base, nil
	}
	pool, err := NewPool(cfg.ClientCAField, cfg.ClientCAFile, cfg.Options)
	if err != nil {
		return nil, err
	}
	var (
		mu     sync.Mutex
		gen    uint64
		forGen *tls.Config
	)
	// One configuration per pool, shared by the handshakes while the pool
	// lasts. The returned configuration is the connection's whole
	// configuration, hence the copy of every field set above.
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		p, g := pool.Current()
		mu.Lock()
		defer mu.Unlock()
		if forGen == nil || g != gen {
			forGen = &tls.Config{
				MinVersion:     cfg.MinVersion,
				NextProtos:     cfg.NextProtos,
				GetCertificate: pair.GetCertificate,
				ClientCAs:      p,
				ClientAuth:     tls.RequireAndVerifyClientCert,
			}
			gen = g
		}
		return forGen, nil
	}
	// Set too, so that the configuration reads as what it does.
	base.ClientAuth = tls.RequireAndVerifyClientCert
	base.ClientCAs, _ = pool.Current()
	return base, nil
}
