// Package testcert is what the HTTP peers of testenv (elastictest,
// webhooktest) share to start: a self-signed certificate a client trusts
// through one PEM file, and a listener that serves HTTP, or HTTPS with that
// certificate.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// SelfSigned makes a certificate for localhost, 127.0.0.1, ::1 and host (an
// IP or a name; empty adds nothing), signed by its own key, so that the
// certificate is also the CA a client trusts: one PEM file is all a client
// needs, or it pins the certificate's fingerprint. It returns the
// certificate with its key and the certificate as PEM.
func SelfSigned(subject pkix.Name, host string) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		// An hour back absorbs clock skew between the server and a client
		// in another container; a month covers a long demo session.
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if host != "" && host != "localhost" {
		if ip := net.ParseIP(host); ip != nil {
			if !ip.IsLoopback() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, host)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("create certificate: %w", err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pemBytes, nil
}

// Config says where and how Listen listens.
type Config struct {
	// Addr is the address to listen on, host:port.
	Addr string
	// TLS makes the listener serve HTTPS with a SelfSigned certificate for
	// Addr's host, with Subject as its subject.
	TLS     bool
	Subject pkix.Name
	// CertDir is where the certificate is written as ca.pem when TLS is
	// on. Default: a new temporary directory named after TempPattern (an
	// os.MkdirTemp pattern), which RemoveTemp removes.
	CertDir, TempPattern string
}

// Listener is a listening socket, with its certificate when it serves
// HTTPS: Serve serves it, Close stops that and RemoveTemp removes the
// certificate's temporary directory.
type Listener struct {
	// Addr is the address listened on, with the port chosen.
	Addr string
	// URL is "http://" or "https://" and Addr.
	URL string
	// Certificate is the certificate served, CAFile where its PEM was
	// written and CAPEM that PEM; all empty without TLS.
	Certificate tls.Certificate
	CAFile      string
	CAPEM       []byte

	ln        net.Listener
	tlsConfig *tls.Config
	tmpDir    string
	srv       *http.Server
	served    chan error
}

// Listen makes the certificate when cfg.TLS is set, writes it to ca.pem,
// and listens on cfg.Addr. On error it leaves nothing behind.
func Listen(cfg Config) (*Listener, error) {
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("addr %q: %w", cfg.Addr, err)
	}
	l := &Listener{}
	if cfg.TLS {
		cert, pemBytes, err := SelfSigned(cfg.Subject, host)
		if err != nil {
			return nil, err
		}
		dir := cfg.CertDir
		if dir == "" {
			if dir, err = os.MkdirTemp("", cfg.TempPattern); err != nil {
				return nil, err
			}
			l.tmpDir = dir
		}
		l.CAFile = filepath.Join(dir, "ca.pem")
		if err := os.WriteFile(l.CAFile, pemBytes, 0o644); err != nil {
			l.RemoveTemp()
			return nil, err
		}
		l.Certificate, l.CAPEM = cert, pemBytes
		l.tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	l.ln, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		l.RemoveTemp()
		return nil, err
	}
	scheme := "http"
	if cfg.TLS {
		scheme = "https"
	}
	l.Addr = l.ln.Addr().String()
	l.URL = scheme + "://" + l.Addr
	return l, nil
}

// Serve serves h on l, over TLS when l has a certificate, in a new
// goroutine, until Close. The server logs its own errors to logger at
// debug level.
func (l *Listener) Serve(h http.Handler, logger *slog.Logger) {
	l.srv = &http.Server{
		Handler:           h,
		TLSConfig:         l.tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	l.served = make(chan error, 1)
	go func() {
		if l.tlsConfig != nil {
			l.served <- l.srv.ServeTLS(l.ln, "", "")
		} else {
			l.served <- l.srv.Serve(l.ln)
		}
	}()
}

// Close stops what Serve started: it closes the listener and every
// connection, and returns once serving has stopped. Like
// http.Server.Close it does not wait for handlers to return.
func (l *Listener) Close() error {
	err := l.srv.Close()
	if serr := <-l.served; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// RemoveTemp removes the temporary directory Listen made for CAFile, if it
// made one.
func (l *Listener) RemoveTemp() {
	if l.tmpDir != "" {
		_ = os.RemoveAll(l.tmpDir)
	}
}
