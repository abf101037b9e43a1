package sidecar_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	tft "github.com/auditpipe/auditpipe/internal/tlsfiles/tlsfilestest"
	"github.com/auditpipe/auditpipe/sidecar"
	"github.com/auditpipe/auditpipe/sidecar/config"
)

// The server's certificate and its client CAs are re-read when the
// mounted Secret changes, with the sidecar running: new connections get
// the new certificate, and clients of the new CA only.
func TestServerTLSFollowsSecret(t *testing.T) {
	serverCA, clients1, clients2 := tft.NewCA(t, "server-ca"), tft.NewCA(t, "clients-1"), tft.NewCA(t, "clients-2")
	a, b := serverCA.Server(t, "127.0.0.1"), serverCA.Server(t, "127.0.0.1")
	srvSec := tft.NewSecret(t, tft.Files(a, serverCA))
	caSec := tft.NewSecret(t, map[string][]byte{tft.CAFile: clients1.PEM})

	dir := t.TempDir()
	cfg, err := config.Parse([]byte(`
data_dir: `+dir+`
server:
  listen: "127.0.0.1:0"
  tls: {cert_file: `+srvSec.Path(tft.CertFile)+`, key_file: `+srvSec.Path(tft.KeyFile)+`, client_ca_file: `+caSec.Path(tft.CAFile)+`}
log: {level: debug, format: text}
sources:
  - {name: app, format: app, auth: {none: true}}
outputs:
  - {name: events, type: file, file: {path: "`+dir+`/events.ndjson"}}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	url, _ := serve(t, cfg, sidecar.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	url = strings.Replace(url, "http://", "https://", 1) + "/healthz"

	roots := x509.NewCertPool()
	roots.AddCert(serverCA.Cert)
	// get makes a new connection as the holder of leaf and returns the
	// serial of the server's certificate.
	get := func(leaf tft.Leaf) (string, error) {
		tr := &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{
			RootCAs: roots, MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{leaf.TLS(t)},
		}}
		defer tr.CloseIdleConnections()
		res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		_, _ = io.Copy(io.Discard, res.Body)
		if res.StatusCode != http.StatusOK {
			return "", errors.New(res.Status)
		}
		return res.TLS.PeerCertificates[0].SerialNumber.Text(16), nil
	}
	// served waits, with new connections, for the certificate with
	// serial to be served to leaf: files are checked at most once a
	// second.
	served := func(what string, leaf tft.Leaf, serial string) {
		t.Helper()
		var got string
		var err error
		waitFor(t, what, func() bool {
			got, err = get(leaf)
			return err == nil && got == serial
		})
	}
	c1, c2 := clients1.Client(t, "one"), clients2.Client(t, "two")
	if serial, err := get(c1); err != nil || serial != a.Serial() {
		t.Fatalf("before the rotation: %s, %v; want %s", serial, err, a.Serial())
	}
	if _, err := get(c2); err == nil {
		t.Fatal("a client of an untrusted CA was served")
	}

	srvSec.Update(t, tft.Files(b, serverCA))
	served("the new server certificate", c1, b.Serial())

	caSec.Update(t, map[string][]byte{tft.CAFile: clients2.PEM})
	served("a client of the new CA", c2, b.Serial())
	if _, err := get(c1); err == nil {
		t.Fatal("a client of the removed CA was still served")
	}

	// A broken update keeps what is served, and says so.
	srvSec.Update(t, map[string][]byte{tft.CertFile: a.CertPEM, tft.KeyFile: b.KeyPEM, tft.CAFile: serverCA.PEM})
	waitFor(t, "the broken update logged", func() bool {
		if serial, err := get(c2); err != nil || serial != b.Serial() {
			t.Fatalf("after a broken update: %s, %v; want %s", serial, err, b.Serial())
		}
		return strings.Contains(logs.String(), "keeping the previous server.tls.cert_file")
	})
}
