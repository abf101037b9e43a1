package sidecar_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/auditpipe/auditpipe/integrity"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/testenv/alertmanagertest"
	"github.com/auditpipe/auditpipe/testenv/webhooktest"
)

// buildBinary builds cmd/auditpipe once per test binary.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "auditpipe-e2e-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "auditpipe")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/auditpipe").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestCrashLosesNothingAcknowledged runs the sidecar as its own process,
// posts events from concurrent clients, kills it with SIGKILL mid-stream,
// starts it again and checks that every event that got a 2xx reaches the
// output.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	conf := filepath.Join(dir, "sidecar.yaml")
	// Sealed, so that the crash is also shown not to fork the chain.
	privPEM, pubPEM, err := integrity.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "signing.pem"), privPEM, 0o600)
	os.WriteFile(conf, []byte(fmt.Sprintf(`
data_dir: %s
server: {listen: %q}
log: {level: warn, format: text}
integrity: {signing_key_file: %s/signing.pem, instance: gw-0}
sources:
  - {name: k8s, format: k8s, auth: {none: true}}
outputs:
  - {name: events, type: file, file: {path: %s/events.ndjson}}
`, dir, addr, dir, dir)), 0o600)
	startProc := func() *exec.Cmd {
		cmd := exec.Command(bin, "sidecar", "--config", conf)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return cmd
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("sidecar not ready: %s", stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	tmpl := seed(t, "k8s-audit-event.json")
	var ev map[string]any
	json.Unmarshal(tmpl, &ev)

	cmd := startProc()
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		sent  atomic.Int64
		wg    sync.WaitGroup
	)
	killed := make(chan struct{})
	client := &http.Client{Timeout: 5 * time.Second}
	for c := range 8 {
		wg.Go(func() {
			local := maps.Clone(ev)
			for i := 0; ; i++ {
				select {
				case <-killed:
					return
				default:
				}
				id := fmt.Sprintf("crash-%d-%d", c, i)
				local["auditID"] = id
				body, _ := json.Marshal(local)
				sent.Add(1)
				resp, err := client.Post("http://"+addr+"/v1/sources/k8s", "application/json", bytes.NewReader(body))
				if err != nil {
					continue
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
			}
		})
	}
	// Kill once a good number of requests has been acknowledged.
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 3000 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	close(killed)
	wg.Wait()

	cmd = startProc()
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	mu.Lock()
	want := len(acked)
	mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := map[string]bool{}
		b, _ := os.ReadFile(filepath.Join(dir, "events.ndjson"))
		for _, line := range bytes.Split(b, []byte("\n")) {
			var e struct {
				Resource struct{ ID string } `json:"resource"`
				Details  struct {
					AuditID string `json:"auditID"`
				} `json:"details"`
			}
			if len(line) > 0 && json.Unmarshal(line, &e) == nil {
				got[e.Details.AuditID] = true
			}
		}
		missing := 0
		for id := range acked {
			if !got[id] {
				missing++
			}
		}
		if missing == 0 {
			t.Logf("%d requests sent, %d acknowledged, all at the output after the crash", sent.Load(), want)
			verifySealed(t, filepath.Join(dir, "events.ndjson"), pubPEM)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged events missing after the crash", missing, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// verifySealed checks what the crash left in file: one chain, continued
// across the restart, with duplicates at most (the batch in flight when
// the process died went again), and no gap, fork or altered event.
func verifySealed(t *testing.T, file string, pubPEM []byte) {
	t.Helper()
	pub, err := integrity.ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := integrity.NewVerifier(pub)
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := v.ReadNDJSON(f, file); err != nil {
		t.Fatal(err)
	}
	r := v.Report()
	var b strings.Builder
	r.WriteText(&b)
	if !r.OK || len(r.Streams) != 1 || r.Verified+r.UnsignedTail != r.Entries-r.Duplicates {
		t.Fatalf("the sealed output does not verify after the crash:\n%s", b.String())
	}
	t.Logf("verify after kill -9: %d entries, %d verified, %d duplicates, %d unsigned tail, 0 gaps, 0 forks", r.Entries, r.Verified, r.Duplicates, r.UnsignedTail)
}

// TestOutageThenRecovery takes the destination away, keeps accepting, and
// brings it back: everything arrives once, and the metrics show retries.
func TestOutageThenRecovery(t *testing.T) {
	hookAddr := freeAddr(t)
	r := start(t, `
data_dir: ${DIR}
server: {listen: "127.0.0.1:0"}
sources:
  - {name: k8s, format: k8s, auth: {none: true}}
outputs:
  - name: hook
    type: webhook
    retry: {initial_interval: 10ms, max_interval: 100ms}
    webhook: {url: "http://${HOOK}/audit", secret: "hook-secret-0123456789"}
`, map[string]string{"HOOK": hookAddr})
	tmpl := seed(t, "k8s-audit-event.json")
	var ev map[string]any
	json.Unmarshal(tmpl, &ev)
	for i := range 20 {
		ev["auditID"] = fmt.Sprintf("outage-%d", i)
		body, _ := json.Marshal(ev)
		if got := post(t, r.url+"/v1/sources/k8s", body, nil); got.code != 200 {
			t.Fatalf("%d %s", got.code, got.raw)
		}
	}
	// The destination is down: the retries show in the metrics, and
	// readiness reports the output lag only when configured (it is not).
	waitMetric(t, r.url, `auditpipe_output_up{output="hook"} 0`)
	sink, err := webhooktest.Start(webhooktest.Config{Addr: hookAddr, Secret: "hook-secret-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sink.WaitEvents(ctx, 20); err != nil {
		t.Fatal(err)
	}
	if raw := len(sink.RawEvents()); raw != 20 {
		t.Errorf("the sink received %d events, want each of the 20 once", raw)
	}
	waitMetric(t, r.url, `auditpipe_output_pending_events{output="hook"} 0`)
	m := metricsText(t, r.url)
	if !strings.Contains(m, `auditpipe_delivered_events_total{output="hook"} 20`) || strings.Contains(m, `auditpipe_failed_attempts_total{output="hook"} 0`) {
		t.Errorf("metrics after the outage:\n%s", grep(m, `output="hook"`))
	}
}

func metricsText(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String()
}

func waitMetric(t *testing.T, base, line string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("metric %q", line), func() bool { return strings.Contains(metricsText(t, base), line) })
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAlertmanagerEndToEnd sends audit alerts through a real Alertmanager
// to the sidecar: they become events, a resolved notification does not,
// and while the sidecar answers 503 Alertmanager retries and the event
// still arrives once.
func TestAlertmanagerEndToEnd(t *testing.T) {
	alertmanagertest.Require(t)
	r := start(t, `
data_dir: ${DIR}
server: {listen: "127.0.0.1:0"}
sources:
  - name: alertmanager
    format: alertmanager
    auth: {basic: {username: am, password: am-password-123}}
outputs:
  - {name: events, type: file, file: {path: "${DIR}/events.ndjson"}}
`, nil)
	// A proxy in front of the sidecar answers 503 to the first two
	// notifications of the alert "unavailable-1", as the sidecar does when
	// its queue is full.
	target, _ := url.Parse(r.url)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var refused atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var buf bytes.Buffer
		buf.ReadFrom(req.Body)
		req.Body.Close()
		if strings.Contains(buf.String(), "unavailable-1") && refused.Load() < 2 {
			refused.Add(1)
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":"queue full; retry"}`, http.StatusServiceUnavailable)
			return
		}
		req.Body = ioNopCloser(&buf)
		req.ContentLength = int64(buf.Len())
		proxy.ServeHTTP(w, req)
	}))
	defer front.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	am, err := alertmanagertest.Start(ctx, alertmanagertest.Config{
		WebhookURL: front.URL + "/v1/sources/alertmanager", Username: "am", Password: "am-password-123", SendResolved: true})
	if err != nil {
		t.Fatal(err)
	}
	defer am.Close()
	alert := func(id string, ends time.Time) alertmanagertest.Alert {
		return alertmanagertest.Alert{
			Labels: map[string]string{"alertname": "audit", "audit_id": id, "operation": "CREATE", "gvk": "apps/v1/Deployment",
				"name": "web", "namespace": "team-a", "actor": "alice", "admission_status": "denied"},
			Annotations: map[string]string{"summary": "alice performed CREATE on Deployment team-a/web", "reason": "policy"},
			StartsAt:    time.Now().Add(-time.Minute), EndsAt: ends,
		}
	}
	if err := am.PostAlerts(ctx, alert("audit-1", time.Time{})); err != nil {
		t.Fatal(err)
	}
	evs := events(t, filepath.Join(r.dir, "events.ndjson"), 1)
	if evs[0].ID != "audit-1" && !strings.Contains(string(evs[0].Details), "audit-1") {
		t.Logf("event id %s", evs[0].ID)
	}
	if evs[0].Outcome != "denied" || evs[0].Source.Type != "alertmanager" {
		t.Errorf("event %+v", evs[0])
	}
	// Resolve it: Alertmanager sends a resolved notification, which is not
	// a new event.
	if err := am.PostAlerts(ctx, alert("audit-1", time.Now().Add(-time.Second))); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, r.url, `auditpipe_skipped_items_total{reason="resolved",source="alertmanager"} 1`)

	// Refused twice with 503, then accepted: it arrives once.
	if err := am.PostAlerts(ctx, alert("unavailable-1", time.Time{})); err != nil {
		t.Fatal(err)
	}
	evs = events(t, filepath.Join(r.dir, "events.ndjson"), 2)
	if refused.Load() != 2 {
		t.Errorf("the proxy refused %d notifications, want 2 (Alertmanager retried)", refused.Load())
	}
	count := 0
	for _, ev := range evs {
		if strings.Contains(string(ev.Details), "unavailable-1") || ev.ID == "unavailable-1" {
			count++
		}
	}
	time.Sleep(0)
	if len(evs) != 2 || count != 1 {
		t.Errorf("%d events, %d for the refused alert; want 2 and 1", len(evs), count)
	}
}
