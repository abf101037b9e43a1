package sidecar_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawExchange writes req on conn and reads one response.
func rawExchange(t *testing.T, conn net.Conn, br *bufio.Reader, req string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// The listener keeps net/http's HTTP/1.1 behaviour for what senders rely
// on: kept-alive connections across refusals, chunked bodies, the header
// limit, and the routes the mux answers.
func TestFrontDoorHTTP(t *testing.T) {
	conf := strings.Replace(baseConfig, "max_body_bytes: 65536}", "max_body_bytes: 65536, max_inflight_bytes: 65536}", 1)
	r := start(t, conf, nil)
	ev := string(seed(t, "k8s-audit-event.json"))
	host := strings.TrimPrefix(r.url, "http://")
	post := func(path, hdrs, body string) string {
		return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s", path, hdrs, len(body), body)
	}
	chunked := func(body string) string {
		return fmt.Sprintf("POST /v1/sources/k8s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body)
	}
	tooBig := strings.Repeat(" ", 70000) + ev

	// One connection through a sequence of requests: each answer is
	// read, and the connection serves the next request.
	steps := []struct {
		name, req string
		code      int
		body      string
	}{
		{"accepted", post("/v1/sources/k8s", "", ev), 200, `{"accepted":1}`},
		{"chunked", chunked(ev), 200, `{"accepted":1}`},
		{"unknown source", post("/v1/sources/nope", "", ev), 404, `no source named \"nope\"`},
		{"bad content type", strings.Replace(post("/v1/sources/k8s", "", ev), "application/json", "text/html", 1), 415, "Content-Type"},
		{"large header", post("/v1/sources/k8s", "X-Trace: "+strings.Repeat("a", 12<<10)+"\r\n", ev), 200, `{"accepted":1}`},
		{"nested path", post("/v1/sources/k8s/x", "", ev), 404, ""},
		{"wrong method", "GET /v1/sources/k8s HTTP/1.1\r\nHost: x\r\n\r\n", 405, ""},
		{"healthz", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, "ok"},
		{"accepted again", post("/v1/sources/k8s", "", ev), 200, `{"accepted":1}`},
	}
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for _, st := range steps {
		resp, body := rawExchange(t, conn, br, st.req)
		if resp.StatusCode != st.code || !strings.Contains(body, st.body) {
			t.Fatalf("%s: %d %q, want %d with %q", st.name, resp.StatusCode, body, st.code, st.body)
		}
		if resp.Close {
			t.Fatalf("%s: the server closed the connection", st.name)
		}
	}

	// A body over max_body_bytes is refused unread; the sender still
	// reads the answer, and then the connection ends.
	c2, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	resp, body := rawExchange(t, c2, bufio.NewReader(c2), post("/v1/sources/k8s", "", tooBig))
	if resp.StatusCode != 413 || !strings.Contains(body, "max_body_bytes") {
		t.Fatalf("too large: %d %s", resp.StatusCode, body)
	}

	// Headers over the limit are refused with 431, on a fresh connection.
	c3, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	resp, _ = rawExchange(t, c3, bufio.NewReader(c3), post("/v1/sources/k8s", "X-Trace: "+strings.Repeat("a", 20<<10)+"\r\n", ev))
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("oversized headers: %d, want 431", resp.StatusCode)
	}
}

// A connection that never finishes its headers is closed after
// read_header_timeout, so a slow sender cannot hold a connection (and its
// buffers) for read_timeout or longer.
func TestHeaderTimeoutClosesTheConnection(t *testing.T) {
	conf := strings.Replace(baseConfig, "max_body_bytes: 65536}", "max_body_bytes: 65536, read_header_timeout: 200ms, read_timeout: 30s}", 1)
	r := start(t, conf, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(r.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /v1/sources/k8s HTTP/1.1\r\nHost: x\r\n")
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	start := time.Now()
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("the connection was not closed by the server: %v", err)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Fatalf("closed after %v, want about read_header_timeout", waited)
	}
	if len(b) > 0 && !bytes.HasPrefix(b, []byte("HTTP/1.1 ")) {
		t.Fatalf("answered %q", b)
	}
}
