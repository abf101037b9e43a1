package sidecar_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/auditpipe/auditpipe/sidecar"
	"github.com/auditpipe/auditpipe/sidecar/config"
)

// TestDrainFromLoopbackOnly: a drain takes the pod out of service for
// good, so a client on the network must not be able to ask for one.
func TestDrainFromLoopbackOnly(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(`
data_dir: `+dir+`
server: {listen: "127.0.0.1:0"}
sources:
  - {name: k8s, format: k8s, auth: {none: true}}
outputs:
  - {name: events, type: file, file: {path: "`+dir+`/events.ndjson"}}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := sidecar.New(ctx, cfg, sidecar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	serve := func(method, target, remote string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, target, nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec
	}
	if rec := serve("POST", "/-/drain", "192.0.2.7:40000"); rec.Code != http.StatusForbidden {
		t.Errorf("drain from 192.0.2.7: %d, want 403", rec.Code)
	}
	if rec := serve("GET", "/readyz", "192.0.2.7:40000"); rec.Code != http.StatusOK {
		t.Errorf("/readyz after a refused drain: %d %s", rec.Code, rec.Body)
	}
	if rec := serve("POST", "/-/drain?timeout=soon", "127.0.0.1:40000"); rec.Code != http.StatusBadRequest {
		t.Errorf("drain?timeout=soon: %d, want 400", rec.Code)
	}
	// An empty queue is drained at once, over IPv6 loopback too.
	if rec := serve("POST", "/-/drain?timeout=1m", "[::1]:40000"); rec.Code != http.StatusOK || rec.Body.String() == "" {
		t.Errorf("drain of an empty queue: %d %s", rec.Code, rec.Body)
	}
	if rec := serve("GET", "/readyz", "127.0.0.1:40000"); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("/readyz after a drain: %d, want 503", rec.Code)
	}
}
