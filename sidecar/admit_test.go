package sidecar_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/sidecar"
	"github.com/auditpipe/auditpipe/sidecar/config"
)

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Content-Encoding: gzip is inflated within max_body_bytes (which bounds
// the inflated size, so a small bomb cannot take memory); any other
// encoding is refused by name rather than parsed as JSON.
func TestContentEncoding(t *testing.T) {
	r := start(t, baseConfig, nil)
	ev := seed(t, "k8s-audit-event.json")
	bomb := gzipped(t, bytes.Repeat([]byte(" "), 1<<20)) // 1 MiB of spaces in about 1 KB
	for _, tc := range []struct {
		name     string
		body     []byte
		encoding string
		code     int
		msg      string
		reason   string
	}{
		{"gzip", gzipped(t, ev), "gzip", 200, "", ""},
		{"x-gzip", gzipped(t, ev), "x-gzip", 200, "", ""},
		{"identity", ev, "identity", 200, "", ""},
		{"brotli", ev, "br", 415, `Content-Encoding "br" is not supported`, "content_encoding"},
		{"not gzip", ev, "gzip", 400, "not valid gzip", "content_encoding"},
		{"truncated gzip", gzipped(t, ev)[:40], "gzip", 503, "retry", "read"},
		{"bomb", bomb, "gzip", 413, "once decompressed", "too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := post(t, r.url+"/v1/sources/k8s", tc.body, map[string]string{"Content-Encoding": tc.encoding})
			if got.code != tc.code {
				t.Fatalf("%d %s, want %d", got.code, got.raw, tc.code)
			}
			if tc.code == 200 {
				if n, _ := got.body["accepted"].(float64); n != 1 {
					t.Errorf("accepted %v, want 1: %s", got.body["accepted"], got.raw)
				}
				return
			}
			if msg, _ := got.body["error"].(string); !strings.Contains(msg, tc.msg) {
				t.Errorf("error %q lacks %q", msg, tc.msg)
			}
			if want := fmt.Sprintf(`auditpipe_rejected_requests_total{reason=%q,source="k8s"}`, tc.reason); !strings.Contains(metricsText(t, r.url), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		})
	}
}

// A body that is admitted holds its bytes against server.max_inflight_bytes
// until it is answered; a request that does not fit meanwhile gets 503 with
// Retry-After before its body is read, and goes through once the first one
// is done.
func TestInflightBytesBound(t *testing.T) {
	conf := strings.Replace(baseConfig, "max_body_bytes: 65536}", "max_body_bytes: 65536, max_inflight_bytes: 65536}", 1)
	r := start(t, conf, nil)
	ev := seed(t, "k8s-audit-event.json")

	// The first request declares 60000 bytes and sends only its start, so
	// its handler holds the reservation while it waits for the rest. The
	// start is more than the 8 KiB the server reads with the headers.
	big := append(append([]byte{}, ev...), bytes.Repeat([]byte(" "), 60000-len(ev))...)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, r.url+"/v1/sources/k8s", pr)
	req.ContentLength = int64(len(big))
	req.Header.Set("Content-Type", "application/json")
	first := make(chan reply, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			first <- reply{code: -1, raw: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		first <- reply{code: resp.StatusCode, raw: string(b)}
	}()
	defer pw.Close()
	pw.Write(big[:10000])
	waitMetric(t, r.url, "auditpipe_inflight_bytes 60000")

	second := append(append([]byte{}, ev...), bytes.Repeat([]byte(" "), 10000)...)
	got := post(t, r.url+"/v1/sources/k8s", second, nil)
	if got.code != http.StatusServiceUnavailable || got.hdr.Get("Retry-After") == "" || !strings.Contains(got.raw, "max_inflight_bytes") {
		t.Fatalf("second request while the budget is taken: %d %v %s", got.code, got.hdr, got.raw)
	}
	if !strings.Contains(metricsText(t, r.url), `auditpipe_rejected_requests_total{reason="busy",source="k8s"} 1`) {
		t.Error("busy rejection not counted")
	}
	pw.Write(big[10000:])
	pw.Close()
	if f := <-first; f.code != 200 {
		t.Fatalf("first request: %d %s", f.code, f.raw)
	}
	waitMetric(t, r.url, "auditpipe_inflight_bytes 0")
	if got := post(t, r.url+"/v1/sources/k8s", second, nil); got.code != 200 {
		t.Fatalf("after the budget is free: %d %s", got.code, got.raw)
	}
}

// A body that stops arriving is a transient failure: 503 with Retry-After,
// never a 4xx that a sender would take as final.
func TestSlowBodyIsRetryable(t *testing.T) {
	conf := strings.Replace(baseConfig, "max_body_bytes: 65536}", "max_body_bytes: 65536, read_timeout: 300ms}", 1)
	r := start(t, conf, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(r.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/sources/k8s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"kind\":")
	// The server's read deadline ends the body read; the answer is then
	// written on the same connection.
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "timed out") {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, b)
	}
}

// A rejection's debug log line carries one msg key: the refusal's text is
// under "error", not a second "msg" that JSON readers would drop.
func TestRejectionLogHasOneMsg(t *testing.T) {
	var logs lockedBuffer
	cfg, err := config.Parse([]byte(strings.ReplaceAll(baseConfig, "${DIR}", t.TempDir())), nil)
	if err != nil {
		t.Fatal(err)
	}
	url, stop := serve(t, cfg, sidecar.Options{
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	defer stop()
	got := post(t, url+"/v1/sources/k8s", []byte(`{}`), map[string]string{"Content-Type": "text/html"})
	if got.code != http.StatusUnsupportedMediaType {
		t.Fatalf("%d %s", got.code, got.raw)
	}
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "request rejected") {
			line = l
		}
	}
	if n := strings.Count(line, `"msg":`); n != 1 || !strings.Contains(line, `"error":"Content-Type`) {
		t.Errorf("%d msg keys in %s", n, line)
	}
}
