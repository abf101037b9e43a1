package sidecar_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/auditpipe/auditpipe/sidecar"
	"github.com/auditpipe/auditpipe/sidecar/config"
)

// BenchmarkServeSource measures a source request from the handler's
// point of view: admitted, transformed, labelled, queued (without fsync,
// so the disk does not dominate) and answered. No network and no
// delivery loops: what is left is the ingest path. Run with -cpu 1.
func BenchmarkServeSource(b *testing.B) {
	for _, bc := range []struct{ source, payload string }{
		{"spacelift", "spacelift-stack-create.json"},
		{"k8s", "k8s-audit-event.json"},
		{"alertmanager", "alertmanager-audit.json"},
		{"app", "yoq-entries.json"},
	} {
		b.Run(bc.source, func(b *testing.B) {
			dir := b.TempDir()
			yaml := `
data_dir: ` + dir + `
server: {listen: "127.0.0.1:0"}
queue: {fsync: false, max_bytes: 8589934592}
labels: {cluster: bench}
sources:
  - {name: k8s, format: k8s, auth: {none: true}, labels: {team: platform}}
  - {name: alertmanager, format: alertmanager, auth: {none: true}}
  - {name: app, format: app, auth: {none: true}}
  - {name: spacelift, format: spacelift, auth: {hmac: {secrets: ["` + spaceliftSecret + `"]}}}
outputs:
  - {name: events, type: file, file: {path: "` + dir + `/events.ndjson"}}
`
			cfg, err := config.Parse([]byte(yaml), func(string) (string, bool) { return "", false })
			if err != nil {
				b.Fatal(err)
			}
			s, err := sidecar.New(context.Background(), cfg, sidecar.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				// Run on a context already ended only shuts down: it
				// closes the queue, the store and the outputs.
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				s.Run(ctx)
			})
			h := s.Handler()
			body, err := os.ReadFile(filepath.Join("..", "examples", "payloads", bc.payload))
			if err != nil {
				b.Fatal(err)
			}
			url := "/v1/sources/" + bc.source
			sig := sign(body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Signature-256", sig)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatal(w.Code, w.Body.String())
				}
			}
		})
	}
}
