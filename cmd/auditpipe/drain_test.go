package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/testenv/webhooktest"
)

// TestDrainDeliversTheQueue is the preStop hook of the Helm chart's
// gateway end to end: events are queued while the webhook destination is
// down, `auditpipe drain` takes the sidecar out of service and waits, the
// destination comes back, and the drain exits 0 only once every event is
// delivered, one of them dead-lettered by the destination.
func TestDrainDeliversTheQueue(t *testing.T) {
	dir := t.TempDir()
	hookAddr, addr := freeAddr(t), freeAddr(t)
	conf := filepath.Join(dir, "config.yaml")
	writeFile(t, conf, fmt.Sprintf(`
data_dir: %s/data
server: {listen: "%s"}
log: {level: debug}
sources:
  - {name: k8s, format: k8s, auth: {none: true}}
outputs:
  - name: hook
    type: webhook
    batch: {max_events: 1}
    retry: {initial_interval: 10ms, max_interval: 100ms}
    webhook: {url: "http://%s/audit"}
  - name: archive
    type: file
    file: {path: %s/archive.ndjson}
`, dir, addr, hookAddr, dir))

	ctx, cancel := context.WithCancel(context.Background())
	// The logs are read only once the sidecar has exited.
	var sidecarOut, sidecarErr bytes.Buffer
	ran := make(chan int, 1)
	go func() { ran <- run(ctx, []string{"sidecar", "--config", conf}, nil, &sidecarOut, &sidecarErr) }()
	t.Cleanup(func() {
		cancel()
		if code := <-ran; code != exitOK {
			t.Errorf("sidecar exit %d:\n%s", code, sidecarErr.String())
		}
	})
	base := "http://" + addr
	waitFor(t, "the sidecar ready", func() bool { return status(base+"/readyz") == http.StatusOK })

	// 20 events while the destination is down; the last one is one the
	// destination will refuse for good.
	const n = 20
	tmpl, err := os.ReadFile("../../examples/payloads/k8s-audit-event.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(tmpl, &ev); err != nil {
		t.Fatal(err)
	}
	var poison []byte
	for i := range n {
		ev["auditID"] = fmt.Sprintf("drain-%d", i)
		body, _ := json.Marshal(ev)
		if code := postJSON(t, base+"/v1/sources/k8s", body); code != http.StatusOK {
			t.Fatalf("event %d: %d", i, code)
		}
		poison = body
	}
	out, _, code := runCLI(t, string(poison), "normalize", "--format", "k8s")
	if code != exitOK {
		t.Fatalf("normalize: exit %d", code)
	}
	poisonID := events(t, out)[0].ID

	// The file output has everything; the webhook output nothing.
	waitFor(t, "the file output caught up", func() bool {
		return strings.Contains(get(base+"/metrics"), `auditpipe_output_pending_events{output="archive"} 0`)
	})

	// A drain with a short timeout while the destination is down answers
	// that the queue is not empty, and says how much is left.
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"drain", "--url", base, "--timeout", "200ms"}, nil, &stdout, &stderr); code != exitFailed {
		t.Fatalf("drain with the destination down: exit %d, want %d\n%s%s", code, exitFailed, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), `"drained":false`) || !strings.Contains(stderr.String(), fmt.Sprintf(`"hook":%d`, n)) ||
		!strings.Contains(stderr.String(), `"archive":0`) {
		t.Errorf("drain's report: %s", stderr.String())
	}
	// It took the sidecar out of service: not ready, and new events are
	// refused so that senders go to another replica.
	if c := status(base + "/readyz"); c != http.StatusServiceUnavailable {
		t.Errorf("/readyz after a drain: %d, want 503", c)
	}
	if c := postJSON(t, base+"/v1/sources/k8s", poison); c != http.StatusServiceUnavailable {
		t.Errorf("a new event during the drain: %d, want 503", c)
	}

	// The real drain waits while the destination is down ...
	drained := make(chan string, 1)
	go func() {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"drain", "--url", base, "--timeout", "2m"}, nil, &out, &errb)
		drained <- fmt.Sprintf("exit %d: %s%s", code, out.String(), errb.String())
	}()
	select {
	case r := <-drained:
		t.Fatalf("the drain ended with the destination down: %s", r)
	default:
	}
	// ... and ends once it is back and has taken or refused everything.
	sink, err := webhooktest.Start(webhooktest.Config{Addr: hookAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	sink.Reject(http.StatusBadRequest, poisonID)
	var r string
	select {
	case r = <-drained:
	case <-time.After(time.Minute):
		t.Fatal("the drain did not end within a minute of the destination's return")
	}
	if !strings.HasPrefix(r, "exit 0: ") || !strings.Contains(r, `"drained":true`) || !strings.Contains(r, `"hook":0`) {
		t.Fatalf("drain: %s", r)
	}
	got := map[string]int{}
	for _, e := range sink.RawEvents() {
		got[e.ID]++
	}
	if len(got) != n-1 || len(sink.RawEvents()) != n-1 || got[poisonID] != 0 {
		t.Errorf("the destination got %d events (%d distinct), want each of the %d not refused once", len(sink.RawEvents()), len(got), n-1)
	}
	dead, _, code := runCLI(t, "", "dlq", "list", "--config", conf, "--json")
	if code != exitOK || strings.Count(dead, "\n") != 1 || !strings.Contains(dead, poisonID) {
		t.Errorf("dead letters (exit %d): %s", code, dead)
	}
	archived, err := os.ReadFile(filepath.Join(dir, "archive.ndjson"))
	if err != nil || bytes.Count(archived, []byte("\n")) != n {
		t.Errorf("the file output holds %d lines, want %d (%v)", bytes.Count(archived, []byte("\n")), n, err)
	}
}

func TestDrainUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	for _, args := range [][]string{
		{"drain", "--url", "ftp://127.0.0.1:1"},
		{"drain", "--timeout", "0s"},
		{"drain", "--cert-file", "x.pem"},
		{"drain", "extra"},
	} {
		if code := run(context.Background(), args, nil, &stdout, &stderr); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
	}
	// Nothing listens: the drain reports it and fails.
	if code := run(context.Background(), []string{"drain", "--url", "http://" + freeAddr(t)}, nil, &stdout, &stderr); code != exitFailed {
		t.Errorf("drain of nothing: exit %d, want %d", code, exitFailed)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func status(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func get(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String()
}

func postJSON(t *testing.T, url string, body []byte) int {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitFor polls cond until it holds, for at most 20 s: the condition is
// the synchronisation, the poll interval only its granularity.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s never happened", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
