package webhook_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
	"github.com/auditpipe/auditpipe/outputs/webhook"

	tft "github.com/auditpipe/auditpipe/internal/tlsfiles/tlsfilestest"
)

// The output follows its mounted Secret: a rotated client certificate is
// presented on the next connection, and a rotated CA bundle verifies the
// server's new certificate, while a certificate for another host is still
// refused.
func TestTLSFilesFollowSecret(t *testing.T) {
	serverCA1, serverCA2, clientCA := tft.NewCA(t, "server-1"), tft.NewCA(t, "server-2"), tft.NewCA(t, "clients")
	var served atomic.Pointer[tls.Certificate]
	use := func(l tft.Leaf) { c := l.TLS(t); served.Store(&c) }
	use(serverCA1.Server(t, "127.0.0.1"))
	clients := x509.NewCertPool()
	clients.AddCert(clientCA.Cert)
	var presented atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		presented.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
		// A new connection, and so a handshake, for every request.
		w.Header().Set("Connection", "close")
	}))
	// Through GetConfigForClient: httptest adds its own certificate to
	// Certificates, which a client connecting to an IP address gets
	// ahead of GetCertificate.
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return &tls.Config{
			Certificates: []tls.Certificate{*served.Load()}, MinVersion: tls.VersionTLS12,
			ClientCAs: clients, ClientAuth: tls.RequireAndVerifyClientCert,
		}, nil
	}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)

	x, y := clientCA.Client(t, "x"), clientCA.Client(t, "y")
	sec := tft.NewSecret(t, tft.Files(x, serverCA1))
	out := newOutput(t, webhook.Config{URL: srv.URL, TLS: outputs.TLSConfig{
		CAFile: sec.Path(tft.CAFile), CertFile: sec.Path(tft.CertFile), KeyFile: sec.Path(tft.KeyFile),
	}})
	evs := outputstest.Events(1)
	write := func() error { return out.Write(testCtx(t), evs) }
	// eventually retries until cond holds: files are checked at most
	// once a second.
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s never happened", what)
			}
		}
	}
	if err := write(); err != nil || presented.Load() != "x" {
		t.Fatalf("first write: %v, presented %v", err, presented.Load())
	}

	sec.Update(t, tft.Files(y, serverCA1))
	eventually("the new client certificate presented", func() bool { return write() == nil && presented.Load() == "y" })

	// The server moves to a certificate of a CA the output does not trust
	// yet: refused until the output's ca.crt has it.
	use(serverCA2.Server(t, "127.0.0.1"))
	if err := write(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("write to a server of an untrusted CA: %v", err)
	}
	sec.Update(t, tft.Files(y, serverCA2))
	eventually("the server of the new CA trusted", func() bool { return write() == nil })

	// Trusted CA, wrong host, and the old CA: still refused.
	use(serverCA2.Server(t, "127.0.0.2", "siem.example.com"))
	if err := write(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("write to a server with another host's certificate: %v", err)
	}
	use(serverCA1.Server(t, "127.0.0.1"))
	if err := write(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("write to a server of the CA taken out: %v", err)
	}
}
