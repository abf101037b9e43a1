package tlsfiles_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/internal/tlsfiles"
	tft "github.com/auditpipe/auditpipe/internal/tlsfiles/tlsfilestest"
)

// logBuf is a logger's output, safe for the server's goroutines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// everyUse checks the files on every use, so that a test sees a change at
// its next handshake.
func everyUse(l *logBuf) tlsfiles.Options {
	return tlsfiles.Options{Interval: -1, Logger: l.logger()}
}

// serve accepts TLS connections on loopback with cfg and completes their
// handshakes, until the test ends.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				_, _ = c.Write([]byte("ok"))
			}()
		}
	}()
	return ln.Addr().String()
}

// dial connects to addr and returns the serial of the server's
// certificate once a byte from the server shows the handshake done on
// both ends.
func dial(addr string, cfg *tls.Config) (string, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := io.ReadFull(c, make([]byte, 2)); err != nil {
		return "", err
	}
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Text(16), nil
}

func pool(cas ...*tft.CA) *x509.CertPool {
	p := x509.NewCertPool()
	for _, ca := range cas {
		p.AddCert(ca.Cert)
	}
	return p
}

func TestServerCertificateFollowsSecret(t *testing.T) {
	ca := tft.NewCA(t, "ca")
	a, b := ca.Server(t, "localhost", "127.0.0.1"), ca.Server(t, "localhost", "127.0.0.1")
	sec := tft.NewSecret(t, tft.Files(a, ca))
	var logs logBuf
	cfg, err := tlsfiles.NewServer(tlsfiles.ServerConfig{
		CertFile: sec.Path(tft.CertFile), KeyFile: sec.Path(tft.KeyFile), CertField: "server.tls.cert_file",
		MinVersion: tls.VersionTLS12, Options: everyUse(&logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, cfg)
	client := &tls.Config{RootCAs: pool(ca), ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if got, err := dial(addr, client); err != nil || got != a.Serial() {
		t.Fatalf("first certificate: %s, %v; want %s", got, err, a.Serial())
	}

	sec.Update(t, tft.Files(b, ca))
	if got, err := dial(addr, client); err != nil || got != b.Serial() {
		t.Fatalf("after the swap: %s, %v; want %s", got, err, b.Serial())
	}
	if !strings.Contains(logs.String(), "re-read server.tls.cert_file") {
		t.Errorf("no log line for the change:\n%s", logs.String())
	}

	// Bad content keeps b, and is logged once however many handshakes
	// find it, without the key.
	c := ca.Server(t, "localhost")
	for _, bad := range []map[string][]byte{
		{tft.CertFile: c.CertPEM, tft.KeyFile: a.KeyPEM, tft.CAFile: ca.PEM},                   // key of another certificate
		{tft.CertFile: c.CertPEM, tft.KeyFile: c.KeyPEM[:len(c.KeyPEM)/2], tft.CAFile: ca.PEM}, // half-written key
		{tft.CertFile: []byte("garbage"), tft.KeyFile: c.KeyPEM, tft.CAFile: ca.PEM},
		{tft.CertFile: c.CertPEM, tft.KeyFile: nil, tft.CAFile: ca.PEM}, // empty
	} {
		before := strings.Count(logs.String(), "level=WARN")
		sec.Update(t, bad)
		for range 3 {
			if got, err := dial(addr, client); err != nil || got != b.Serial() {
				t.Fatalf("after a bad update: %s, %v; want the previous %s", got, err, b.Serial())
			}
		}
		if n := strings.Count(logs.String(), "level=WARN") - before; n != 1 {
			t.Errorf("%d warnings for one bad update, want 1:\n%s", n, logs.String())
		}
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") || strings.Contains(logs.String(), string(c.KeyPEM[40:80])) {
		t.Errorf("the log shows key material:\n%s", logs.String())
	}

	// A good update after bad ones is taken.
	sec.Update(t, tft.Files(c, ca))
	if got, err := dial(addr, client); err != nil || got != c.Serial() {
		t.Fatalf("after a good update: %s, %v; want %s", got, err, c.Serial())
	}
}

// A file rewritten in place, not through a symlink swap, is seen too:
// first half of it (kept the old pair), then all of it.
func TestServerCertificateRewrittenInPlace(t *testing.T) {
	ca := tft.NewCA(t, "ca")
	a, b := ca.Server(t, "localhost"), ca.Server(t, "localhost")
	dir := t.TempDir()
	certFile, keyFile := dir+"/cert.pem", dir+"/key.pem"
	write := func(name string, b []byte, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
		// Distinct times, as writes a clock tick apart would have.
		if err := os.Chtimes(name, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now().Add(-time.Hour)
	write(certFile, a.CertPEM, t0)
	write(keyFile, a.KeyPEM, t0)
	var logs logBuf
	kp, err := tlsfiles.NewKeyPair("tls.cert_file", certFile, keyFile, everyUse(&logs))
	if err != nil {
		t.Fatal(err)
	}
	serialOf := func() string { return kp.Certificate().Leaf.SerialNumber.Text(16) }
	write(certFile, b.CertPEM, t0.Add(time.Second)) // the key is still a's
	if serialOf() != a.Serial() {
		t.Fatal("a certificate without its key was taken")
	}
	write(keyFile, b.KeyPEM, t0.Add(2*time.Second))
	if serialOf() != b.Serial() {
		t.Fatalf("the rewritten pair was not taken:\n%s", logs.String())
	}
	// A removed file keeps the pair too.
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	if serialOf() != b.Serial() || !strings.Contains(logs.String(), "no such file") {
		t.Fatalf("removed key file:\n%s", logs.String())
	}
}

func TestServerClientCAFollowsSecret(t *testing.T) {
	ca1, ca2 := tft.NewCA(t, "clients-1"), tft.NewCA(t, "clients-2")
	srvCA := tft.NewCA(t, "server-ca")
	leaf := srvCA.Server(t, "localhost")
	srvSec := tft.NewSecret(t, tft.Files(leaf, srvCA))
	caSec := tft.NewSecret(t, map[string][]byte{tft.CAFile: ca1.PEM})
	var logs logBuf
	cfg, err := tlsfiles.NewServer(tlsfiles.ServerConfig{
		CertFile: srvSec.Path(tft.CertFile), KeyFile: srvSec.Path(tft.KeyFile), CertField: "server.tls.cert_file",
		ClientCAFile: caSec.Path(tft.CAFile), ClientCAField: "server.tls.client_ca_file",
		MinVersion: tls.VersionTLS12, Options: everyUse(&logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, cfg)
	as := func(l tft.Leaf) *tls.Config {
		return &tls.Config{RootCAs: pool(srvCA), ServerName: "localhost", MinVersion: tls.VersionTLS12,
			Certificates: []tls.Certificate{l.TLS(t)}}
	}
	c1, c2 := ca1.Client(t, "one"), ca2.Client(t, "two")
	if _, err := dial(addr, as(c1)); err != nil {
		t.Fatalf("client of ca1: %v", err)
	}
	if _, err := dial(addr, as(c2)); err == nil {
		t.Fatal("client of ca2 accepted before its CA was")
	}
	if _, err := dial(addr, &tls.Config{RootCAs: pool(srvCA), ServerName: "localhost", MinVersion: tls.VersionTLS12}); err == nil {
		t.Fatal("client without a certificate accepted")
	}

	caSec.Update(t, map[string][]byte{tft.CAFile: ca2.PEM})
	if _, err := dial(addr, as(c2)); err != nil {
		t.Fatalf("client of ca2 after the rotation: %v", err)
	}
	if _, err := dial(addr, as(c1)); err == nil {
		t.Fatal("client of ca1 accepted after its CA was removed")
	}
	caSec.Update(t, map[string][]byte{tft.CAFile: []byte("not a certificate")})
	if _, err := dial(addr, as(c2)); err != nil {
		t.Fatalf("a bad CA file replaced the pool: %v", err)
	}
	if !strings.Contains(logs.String(), "keeping the previous server.tls.client_ca_file") {
		t.Errorf("bad CA file not logged:\n%s", logs.String())
	}
}

// The client presents its rotated certificate to a server that requires
// one, through DialContext and through Transport.
func TestClientCertificateFollowsSecret(t *testing.T) {
	ca := tft.NewCA(t, "ca")
	x, y := ca.Client(t, "x"), ca.Client(t, "y")
	sec := tft.NewSecret(t, tft.Files(x, ca))

	seen := make(chan string, 16)
	srvCfg := &tls.Config{
		Certificates: []tls.Certificate{ca.Server(t, "127.0.0.1").TLS(t)},
		ClientCAs:    pool(ca), ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			seen <- cs.PeerCertificates[0].Subject.CommonName
			return nil
		},
	}
	addr := serve(t, srvCfg)
	var logs logBuf
	cl, err := tlsfiles.NewClient(tlsfiles.ClientConfig{
		CAFile: sec.Path(tft.CAFile), CAField: "tls.ca_file",
		CertFile: sec.Path(tft.CertFile), KeyFile: sec.Path(tft.KeyFile), CertField: "tls.cert_file",
		MinVersion: tls.VersionTLS12, Options: everyUse(&logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	d := cl.DialContext((&net.Dialer{}).DialContext)
	handshake := func() string {
		t.Helper()
		c, err := d(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return <-seen
	}
	if got := handshake(); got != "x" {
		t.Fatalf("presented %q, want x", got)
	}
	sec.Update(t, tft.Files(y, ca))
	if got := handshake(); got != "y" {
		t.Fatalf("after the rotation presented %q, want y", got)
	}
}

// A client's CA bundle is replaced: a server whose CA was not trusted is
// once it is, and Go's verification still refuses a certificate for
// another host or from an untrusted CA, for names and IP addresses.
func TestClientCAFollowsSecret(t *testing.T) {
	ca1, ca2, rogue := tft.NewCA(t, "ca1"), tft.NewCA(t, "ca2"), tft.NewCA(t, "rogue")
	start := func(leaf tft.Leaf) string {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "ok")
		}))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS(t)}, MinVersion: tls.VersionTLS12}
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.URL // https://127.0.0.1:port
	}
	good := start(ca2.Server(t, "127.0.0.1", "localhost"))
	wrongIP := start(ca2.Server(t, "127.0.0.2", "localhost"))     // trusted CA, not this address
	wrongName := start(ca2.Server(t, "127.0.0.1", "example.com")) // asked for as localhost
	untrusted := start(rogue.Server(t, "127.0.0.1", "localhost"))

	sec := tft.NewSecret(t, map[string][]byte{tft.CAFile: ca1.PEM})
	var logs logBuf
	cl, err := tlsfiles.NewClient(tlsfiles.ClientConfig{
		CAFile: sec.Path(tft.CAFile), CAField: "tls.ca_file", MinVersion: tls.VersionTLS12, Options: everyUse(&logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	base := &http.Transport{ForceAttemptHTTP2: true}
	tr := cl.Transport(base)
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	get := func(url string) error {
		res, err := hc.Get(url)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		_, err = io.Copy(io.Discard, res.Body)
		return err
	}
	var cv *tls.CertificateVerificationError
	if err := get(good); !errors.As(err, &cv) {
		t.Fatalf("server of an untrusted CA: %v, want a verification error", err)
	}
	sec.Update(t, map[string][]byte{tft.CAFile: append(ca2.PEM, ca1.PEM...)})
	if err := get(good); err != nil {
		t.Fatalf("after the CA rotation: %v", err)
	}
	localhost := strings.Replace(wrongName, "127.0.0.1", "localhost", 1)
	for name, url := range map[string]string{"another address": wrongIP, "another name": localhost, "an untrusted CA": untrusted} {
		if err := get(url); !errors.As(err, &cv) {
			t.Errorf("certificate for %s: %v, want a verification error", name, err)
		}
	}
	// The same through DialContext, with the host taken from the address.
	d := cl.DialContext((&net.Dialer{}).DialContext)
	for url, ok := range map[string]bool{good: true, wrongIP: false, localhost: false, untrusted: false} {
		c, err := d(context.Background(), "tcp", strings.TrimPrefix(url, "https://"))
		if err == nil {
			c.Close()
		}
		if (err == nil) != ok {
			t.Errorf("DialContext %s: %v, want success %v", url, err, ok)
		}
	}
	// A bad bundle keeps the good one.
	sec.Update(t, map[string][]byte{tft.CAFile: []byte("-----BEGIN CERTIFICATE-----\nAAAA")})
	tr.CloseIdleConnections()
	if err := get(good); err != nil {
		t.Fatalf("after a bad CA file: %v", err)
	}
}

// BenchmarkCertificate is the cost a handshake pays for the files'
// check: a clock read and an atomic load between checks, a stat of both
// files at a check.
func BenchmarkCertificate(b *testing.B) {
	ca := tft.NewCA(b, "ca")
	sec := tft.NewSecret(b, tft.Files(ca.Server(b, "localhost"), ca))
	for _, bc := range []struct {
		name     string
		interval time.Duration
	}{{"cached", time.Hour}, {"stat-every-call", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			kp, err := tlsfiles.NewKeyPair("tls.cert_file", sec.Path(tft.CertFile), sec.Path(tft.KeyFile), tlsfiles.Options{Interval: bc.interval})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if kp.Certificate() == nil {
					b.Fatal("no certificate")
				}
			}
		})
	}
}
