package s3

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/testenv/s3test"
)

const bucket = "audit"

// startServer runs versitygw for one test, with the bucket created.
func startServer(t testing.TB, tls bool) *s3test.Server {
	t.Helper()
	s3test.Require(t)
	srv, err := s3test.Start(t.Context(), s3test.Config{TLS: tls})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	if err := srv.CreateBucket(t.Context(), bucket); err != nil {
		t.Fatal(err)
	}
	return srv
}

// serverConfig is an output configuration for srv: static credentials,
// path style, and the server's CA over TLS.
func serverConfig(srv *s3test.Server) Config {
	return Config{
		Bucket:          bucket,
		Region:          srv.Region(),
		Endpoint:        srv.Endpoint(),
		ForcePathStyle:  true,
		AccessKeyID:     srv.AccessKey(),
		SecretAccessKey: srv.SecretKey(),
		TLS:             outputs.TLSConfig{CAFile: srv.CAFile()},
	}
}

func newOutput(t testing.TB, cfg Config) *Output {
	t.Helper()
	o, err := New(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close(context.Background()) })
	return o
}

// lines returns the events' NDJSON lines as eventjson.Append writes them.
func lines(events []auditpipe.Event) []string {
	out := make([]string, len(events))
	for i := range events {
		out[i] = string(eventjson.Append(nil, &events[i]))
	}
	return out
}

// decodeObject returns an object's NDJSON lines, gunzipped when its key
// says it is compressed.
func decodeObject(t testing.TB, key string, body []byte) []string {
	t.Helper()
	if strings.HasSuffix(key, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	if len(body) == 0 || body[len(body)-1] != '\n' {
		t.Fatalf("%s: NDJSON does not end in a newline: %q", key, body)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// stored returns every object in the bucket, decoded, by key.
func stored(t testing.TB, srv *s3test.Server) map[string][]string {
	t.Helper()
	ctx := context.Background()
	keys, err := srv.ListKeys(ctx, bucket, "")
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]string, len(keys))
	for _, k := range keys {
		b, err := srv.GetObject(ctx, bucket, k)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = decodeObject(t, k, b)
	}
	return out
}

// allLines returns every stored line and fails on a line stored twice.
func allLines(t testing.TB, objs map[string][]string) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	for k, ls := range objs {
		for _, l := range ls {
			if seen[l] {
				t.Errorf("%s: line stored twice: %.80s", k, l)
			}
			seen[l] = true
		}
	}
	return seen
}

// wantDelivered checks that exactly events are stored, each once.
func wantDelivered(t testing.TB, srv *s3test.Server, events []auditpipe.Event) {
	t.Helper()
	got := allLines(t, stored(t, srv))
	want := lines(events)
	for _, l := range want {
		if !got[l] {
			t.Errorf("event not stored: %.80s", l)
		}
		delete(got, l)
	}
	for l := range got {
		t.Errorf("unexpected line stored: %.80s", l)
	}
}

// fastRetry retries quickly and, unless a test sets it, forever.
func fastRetry() outputs.RetryConfig {
	return outputs.RetryConfig{InitialInterval: 5 * time.Millisecond, MaxInterval: 20 * time.Millisecond, AttemptTimeout: 10 * time.Second}
}

// gateProxy is a TCP proxy that holds every connection until Open is
// called: a peer that accepts connections but answers nothing, until it
// does.
type gateProxy struct {
	ln     net.Listener
	target string
	gate   chan struct{}
	once   sync.Once
	done   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
	n      int
}

func newGateProxy(t testing.TB, target string) *gateProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &gateProxy{ln: ln, target: target, gate: make(chan struct{}), done: make(chan struct{})}
	p.wg.Go(p.serve)
	t.Cleanup(p.Close)
	return p
}

func (p *gateProxy) Addr() string { return p.ln.Addr().String() }

// Open lets held and future connections through.
func (p *gateProxy) Open() { p.once.Do(func() { close(p.gate) }) }

// Accepted is the number of connections accepted so far.
func (p *gateProxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

func (p *gateProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *gateProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.n++
		p.mu.Unlock()
		p.track(c)
		p.wg.Go(func() { p.handle(c) })
	}
}

func (p *gateProxy) handle(c net.Conn) {
	defer c.Close()
	select {
	case <-p.gate:
	case <-p.done:
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	p.track(up)
	defer up.Close()
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = io.Copy(up, c); _ = up.(*net.TCPConn).CloseWrite() })
	_, _ = io.Copy(c, up)
	_ = c.(*net.TCPConn).CloseWrite()
	wg.Wait()
}

// Close stops the proxy and every connection through it, and waits for
// its goroutines.
func (p *gateProxy) Close() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// s3Proxy is an HTTP proxy in front of a plain-HTTP server that records
// the PUT requests' headers and can answer some requests itself with an S3
// error, as a store that refuses or throttles would.
type s3Proxy struct {
	srv *http.Server
	url string
	rp  *httputil.ReverseProxy

	mu   sync.Mutex
	puts []http.Header
	// fault, when it returns a status, answers the request with that
	// status and an S3 error document with code.
	fault func(r *http.Request) (status int, code string, header http.Header)
}

func newS3Proxy(t testing.TB, target string) *s3Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &s3Proxy{url: "http://" + ln.Addr().String()}
	p.rp = httputil.NewSingleHostReverseProxy(u)
	// The client signed the request for the proxy's host, which the
	// default director keeps in r.Host, so the server's check passes.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	p.rp.Transport = tr
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = p.srv.Close()
		tr.CloseIdleConnections()
	})
	return p
}

func (p *s3Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	if r.Method == http.MethodPut {
		p.puts = append(p.puts, r.Header.Clone())
	}
	fault := p.fault
	p.mu.Unlock()
	if fault != nil {
		if status, code, h := fault(r); status != 0 {
			_, _ = io.Copy(io.Discard, r.Body)
			for k, v := range h {
				w.Header()[k] = v
			}
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(status)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected by the test proxy</Message><RequestId>test</RequestId></Error>`, code)
			return
		}
	}
	p.rp.ServeHTTP(w, r)
}

func (p *s3Proxy) setFault(f func(r *http.Request) (int, string, http.Header)) {
	p.mu.Lock()
	p.fault = f
	p.mu.Unlock()
}

func (p *s3Proxy) putHeaders() []http.Header {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]http.Header(nil), p.puts...)
}

// logRecorder is a slog.Handler that keeps the records, to check what an
// operator would see.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

// count returns how many records at level have a message containing msg.
func (h *logRecorder) count(level slog.Level, msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.recs {
		if r.Level == level && strings.Contains(r.Message, msg) {
			n++
		}
	}
	return n
}
