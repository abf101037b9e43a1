package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
)

// KeyPair is a certificate chain and its private key, from two PEM files.
type KeyPair struct {
	w *watched[*tls.Certificate]
}

// NewKeyPair loads certFile and keyFile. field names the certificate's key
// in the configuration (server.tls.cert_file), for errors and log lines.
func NewKeyPair(field, certFile, keyFile string, opts Options) (*KeyPair, error) {
	w, err := newWatched(field, []string{certFile, keyFile}, parseKeyPair, describeKeyPair, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return &KeyPair{w: w}, nil
}

func parseKeyPair(data [][]byte) (*tls.Certificate, error) {
	cert, err := tls.X509KeyPair(data[0], data[1])
	if err != nil {
		return nil, err
	}
	return &cert, nil
}

// describeKeyPair names the certificate for a log line: its subject,
// serial and expiry are public.
func describeKeyPair(c *tls.Certificate) []any {
	if c.Leaf == nil {
		return nil
	}
	return []any{"subject", c.Leaf.Subject.String(), "serial", c.Leaf.SerialNumber.Text(16), "not_after", c.Leaf.NotAfter}
}

// Certificate returns the key pair loaded last, re-reading the files
// first if they changed.
func (k *KeyPair) Certificate() *tls.Certificate { return k.w.get().val }

// GetCertificate is for tls.Config.GetCertificate: a server presents the
// current certificate.
func (k *KeyPair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return k.Certificate(), nil
}

// GetClientCertificate is for tls.Config.GetClientCertificate: a client
// presents the current certificate whenever the server asks for one, as
// it would with the certificate alone in tls.Config.Certificates.
func (k *KeyPair) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return k.Certificate(), nil
}

// Pool is a bundle of CA certificates from one PEM file.
type Pool struct {
	w *watched[*x509.CertPool]
}

// NewPool loads file. field names it in the configuration (tls.ca_file).
func NewPool(field, file string, opts Options) (*Pool, error) {
	w, err := newWatched(field, []string{file}, parsePool, describePool, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return &Pool{w: w}, nil
}

func parsePool(data [][]byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data[0]) {
		return nil, fmt.Errorf("no PEM certificate in it")
	}
	return pool, nil
}

func describePool(*x509.CertPool) []any { return nil }

// Current returns the pool loaded last, re-reading the file first if it
// changed, and its generation: a number that changes when the pool does.
func (p *Pool) Current() (*x509.CertPool, uint64) {
	l := p.w.get()
	return l.val, l.gen
}
