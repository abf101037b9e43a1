package sidecar_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/outputs/dlq"
	"github.com/auditpipe/auditpipe/sidecar"
	"github.com/auditpipe/auditpipe/sidecar/config"
)

const spaceliftSecret = "spacelift-secret-0123456789"

// running is a sidecar served on a loopback port for one test.
type running struct {
	url  string
	dir  string
	stop func()
}

// start runs a sidecar from a configuration whose ${DIR} is the test's
// data directory.
func start(t *testing.T, yaml string, env map[string]string) *running {
	t.Helper()
	dir := t.TempDir()
	lookup := func(k string) (string, bool) {
		if k == "DIR" {
			return dir, true
		}
		v, ok := env[k]
		return v, ok
	}
	cfg, err := config.Parse([]byte(yaml), lookup)
	if err != nil {
		t.Fatal(err)
	}
	url, stop := serve(t, cfg, sidecar.Options{Env: lookup})
	r := &running{url: url, dir: dir, stop: stop}
	t.Cleanup(r.stop)
	return r
}

// serve runs a sidecar built from cfg until stop, which reports an error
// from Run and may be called more than once.
func serve(t *testing.T, cfg *config.Config, opts sidecar.Options) (url string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := sidecar.New(ctx, cfg, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once bool
	return "http://" + s.Addr().String(), func() {
		if once {
			return
		}
		once = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

const baseConfig = `
data_dir: ${DIR}
server: {listen: "127.0.0.1:0", max_body_bytes: 65536}
log: {level: debug, format: text}
sources:
  - name: spacelift
    format: spacelift
    auth: {hmac: {secrets: ["old-secret-0123456789", "` + spaceliftSecret + `"]}}
  - name: spacelift-legacy
    format: spacelift
    auth: {hmac: {secrets: ["` + spaceliftSecret + `"], allow_sha1: true}}
  - name: alertmanager
    format: alertmanager
    auth: {basic: {username: am, password: am-password-123}}
  - name: app
    format: app
    auth: {bearer: {tokens: ["app-token-0123456789"]}}
  - name: k8s
    format: k8s
    auth: {none: true}
outputs:
  - name: events
    type: file
    file: {path: "${DIR}/events.ndjson"}
`

func sign(body []byte) string {
	m := hmac.New(sha256.New, []byte(spaceliftSecret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func seed(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", "payloads", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type reply struct {
	code int
	body map[string]any
	raw  string
	hdr  http.Header
}

func post(t *testing.T, url string, body []byte, hdr map[string]string) reply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, raw: string(raw), hdr: resp.Header}
	json.Unmarshal(raw, &r.body)
	return r
}

// events waits until the file output holds at least n events and returns
// them.
func events(t *testing.T, path string, n int) []auditpipe.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var evs []auditpipe.Event
		if f, err := os.Open(path); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var ev auditpipe.Event
				if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				evs = append(evs, ev)
			}
			f.Close()
		}
		if len(evs) >= n {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d events, want %d", path, len(evs), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSeedPayloadsReachTheOutput(t *testing.T) {
	r := start(t, baseConfig, nil)
	sl := seed(t, "spacelift-stack-create.json")
	for _, tc := range []struct {
		source string
		body   []byte
		hdr    map[string]string
		want   int
	}{
		{"spacelift", sl, map[string]string{"X-Signature-256": sign(sl)}, 1},
		{"alertmanager", seed(t, "alertmanager-audit.json"), map[string]string{"Authorization": "Basic " + basic("am", "am-password-123")}, -1},
		{"app", seed(t, "yoq-entries.json"), map[string]string{"Authorization": "Bearer app-token-0123456789"}, -1},
		{"k8s", seed(t, "k8s-audit-event.json"), nil, 1},
	} {
		got := post(t, r.url+"/v1/sources/"+tc.source, tc.body, tc.hdr)
		if got.code != 200 {
			t.Fatalf("%s: %d %s", tc.source, got.code, got.raw)
		}
		if n := int(got.body["accepted"].(float64)); n < 1 || (tc.want > 0 && n != tc.want) {
			t.Errorf("%s: accepted %d", tc.source, n)
		}
	}
	evs := events(t, filepath.Join(r.dir, "events.ndjson"), 4)
	seen := map[string]bool{}
	for _, ev := range evs {
		seen[ev.Source.Type] = true
		if ev.Source.Name == "" || ev.Validate() != nil {
			t.Errorf("event %s: name %q, %v", ev.ID, ev.Source.Name, ev.Validate())
		}
	}
	for _, typ := range []string{"spacelift", "alertmanager", "app", "k8s"} {
		if !seen[typ] {
			t.Errorf("no %s event at the output", typ)
		}
	}
}

func basic(u, p string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(u, p)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

func TestSpaceliftSignatures(t *testing.T) {
	r := start(t, baseConfig, nil)
	body := seed(t, "spacelift-stack-create.json")
	sha1sig := func(secret string) string {
		m := hmac.New(sha1.New, []byte(secret))
		m.Write(body)
		return "sha1=" + hex.EncodeToString(m.Sum(nil))
	}
	oldSig := func() string {
		m := hmac.New(sha256.New, []byte("old-secret-0123456789"))
		m.Write(body)
		return "sha256=" + hex.EncodeToString(m.Sum(nil))
	}()
	for _, tc := range []struct {
		name, source string
		hdr          map[string]string
		want         int
	}{
		{"correctly signed", "spacelift", map[string]string{"X-Signature-256": sign(body)}, 200},
		{"rotated: the old secret still works", "spacelift", map[string]string{"X-Signature-256": oldSig}, 200},
		{"wrongly signed", "spacelift", map[string]string{"X-Signature-256": "sha256=" + strings.Repeat("ab", 32)}, 401},
		{"signed over other bytes", "spacelift", map[string]string{"X-Signature-256": sign(append([]byte(" "), body...))}, 401},
		{"unsigned", "spacelift", nil, 401},
		{"SHA-1 only, not allowed", "spacelift", map[string]string{"X-Signature": sha1sig(spaceliftSecret)}, 401},
		{"SHA-1 only, allowed", "spacelift-legacy", map[string]string{"X-Signature": sha1sig(spaceliftSecret)}, 200},
		{"SHA-1 with a wrong secret", "spacelift-legacy", map[string]string{"X-Signature": sha1sig("nope")}, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := post(t, r.url+"/v1/sources/"+tc.source, body, tc.hdr)
			if got.code != tc.want {
				t.Fatalf("%d %s, want %d", got.code, got.raw, tc.want)
			}
			if tc.want == 401 && (got.body["error"] == nil || strings.Contains(got.raw, spaceliftSecret)) {
				t.Errorf("401 body %s", got.raw)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	r := start(t, baseConfig, nil)
	deep := strings.Repeat("[", 200) + strings.Repeat("]", 200)
	am := func(s string) map[string]string {
		return map[string]string{"Authorization": "Basic " + basic("am", "am-password-123"), "Content-Type": s}
	}
	jsonAM := am("application/json")
	for _, tc := range []struct {
		name, source, body string
		hdr                map[string]string
		code               int
		msg                string // in the answer's error
		deadLettered       bool
	}{
		{"malformed JSON", "k8s", `{"kind": "Event",`, nil, 400, "malformed JSON", true},
		{"wrong content type", "k8s", `{}`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "Content-Type", false},
		{"body over the limit", "k8s", `{"x":"` + strings.Repeat("a", 70000) + `"}`, nil, 413, "max_body_bytes", false},
		{"deep nesting", "k8s", deep, nil, 400, "nesting too deep", true},
		{"invalid UTF-8", "k8s", "{\"kind\":\"\xff\"}", nil, 400, "invalid UTF-8", true},
		{"wrong Alertmanager version", "alertmanager", `{"version":"3","status":"firing","alerts":[]}`, jsonAM, 400, "version", true},
		{"empty array", "app", `[]`, map[string]string{"Authorization": "Bearer app-token-0123456789"}, 400, "holds no items", true},
		{"missing credentials", "alertmanager", `{}`, nil, 401, "", false},
		{"unknown source", "nope", `{}`, nil, 404, "no source named", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := post(t, r.url+"/v1/sources/"+tc.source, []byte(tc.body), tc.hdr)
			if got.code != tc.code {
				t.Fatalf("%d %s, want %d", got.code, got.raw, tc.code)
			}
			if msg, _ := got.body["error"].(string); !strings.Contains(msg, tc.msg) {
				t.Errorf("error %q lacks %q", msg, tc.msg)
			}
			if dl, _ := got.body["dead_lettered"].(bool); dl != tc.deadLettered {
				t.Errorf("dead_lettered = %v, want %v: %s", dl, tc.deadLettered, got.raw)
			}
			if tc.code == 400 && got.body["errors"] == nil {
				t.Errorf("400 without located errors: %s", got.raw)
			}
		})
	}
	// The server keeps serving, and every 400 payload is in the store.
	if got := post(t, r.url+"/v1/sources/k8s", seed(t, "k8s-audit-event.json"), nil); got.code != 200 {
		t.Fatalf("after bad input: %d %s", got.code, got.raw)
	}
	var letters int
	if err := dlq.Walk(filepath.Join(r.dir, "dlq"), func(e dlq.Entry) error {
		if len(e.Payload) == 0 || e.Source == "" || e.Error == "" {
			t.Errorf("letter %+v", e)
		}
		letters++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if letters != 5 {
		t.Errorf("%d dead letters, want 5 (one per 400)", letters)
	}
}

func TestOperations(t *testing.T) {
	r := start(t, baseConfig, nil)
	body := seed(t, "k8s-audit-event.json")
	if got := post(t, r.url+"/v1/sources/k8s", body, nil); got.code != 200 {
		t.Fatal(got.raw)
	}
	waitMetric(t, r.url, `auditpipe_delivered_events_total{output="events"} 1`)
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready"} {
		resp, err := http.Get(r.url + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d %s", path, resp.StatusCode, b)
		}
	}
	resp, err := http.Get(r.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`auditpipe_received_events_total{source="k8s"} 1`,
		`auditpipe_delivered_events_total{output="events"} 1`,
		`auditpipe_queue_bytes`, `auditpipe_output_lag_seconds{output="events"}`,
		`auditpipe_request_duration_seconds_bucket{code="200",source="k8s"`,
		`auditpipe_dead_lettered_events_total{output="events"} 0`,
		`auditpipe_retried_events_total{output="events"} 0`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grep(string(b), "auditpipe_"))
		}
	}
	if strings.Contains(string(b), spaceliftSecret) {
		t.Error("a secret appears in /metrics")
	}
	// Shutting down: new requests get 503 with Retry-After.
	r.stop()
	if _, err := http.Post(r.url+"/v1/sources/k8s", "application/json", bytes.NewReader(body)); err == nil {
		t.Error("server still answering after Run returned")
	}
}

func TestRestartResumesFromTheCursor(t *testing.T) {
	dir := t.TempDir()
	conf := strings.ReplaceAll(baseConfig, "${DIR}", dir)
	run := func() (string, func()) {
		cfg, err := config.Parse([]byte(conf), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		return serve(t, cfg, sidecar.Options{})
	}
	url, stop := run()
	body := seed(t, "k8s-audit.log.ndjson")
	got := post(t, url+"/v1/sources/k8s", body, nil)
	if got.code != 200 {
		t.Fatal(got.raw)
	}
	n := int(got.body["accepted"].(float64))
	events(t, filepath.Join(dir, "events.ndjson"), n)
	stop()
	url, stop = run()
	defer stop()
	// Another event after the restart; the earlier ones are not re-sent.
	if got := post(t, url+"/v1/sources/k8s", seed(t, "k8s-audit-event.json"), nil); got.code != 200 {
		t.Fatal(got.raw)
	}
	evs := events(t, filepath.Join(dir, "events.ndjson"), n+1)
	if len(evs) != n+1 {
		t.Errorf("%d events after restart, want %d: acknowledged events were re-sent", len(evs), n+1)
	}
	_ = fmt.Sprint()
}
