package sidecar

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/auditpipe/auditpipe/sidecar/config"
)

// The listener is served by fasthttp, not net/http. Measured side by side
// on a 2-core machine (wrk -t2 -c64, a 1.5 KB body), a handler that reads
// the body and answers costs 25-28 µs of CPU per request on net/http and
// 10-12 on fasthttp: net/http builds a Request, a header map and a
// response per request and starts a background read for each. Through
// the sidecar's whole request path that is 12 % fewer instructions and
// 16 % less CPU per request (docs/performance.md).
//
// Only the hot route, POST /v1/sources/{name}, is served natively: it
// gets a lean http.Request over fasthttp's (ingestRequest) and goes to
// the same serveSourceNamed the net/http mux's route does, so the ingest
// path is one. The other routes (health, readiness, metrics, drain,
// reload) go to the mux through fasthttp's adaptor, which costs what
// net/http did and does not matter there.
//
// What changes for senders: HTTP/2 is not offered over TLS (webhook
// senders speak HTTP/1.1), request headers are limited to maxHeaderBytes,
// and the first 8 KiB of a body are read with the headers.

// maxHeaderBytes bounds a request's line and headers (fasthttp's read
// buffer): room for long bearer tokens and CloudEvents' binary headers.
const maxHeaderBytes = 16 << 10

// sourcesPrefix is the path of the ingest route up to the source's name.
var sourcesPrefix = []byte("/v1/sources/")

// newServer is the listener's server. Its timeouts keep net/http's
// meaning: read_header_timeout bounds the request line and headers,
// read_timeout the body after them, write_timeout the handling and the
// answer, idle_timeout the wait between requests on a kept-alive
// connection.
func (s *Sidecar) newServer(base context.Context, sc config.Server) *fasthttp.Server {
	slow := fasthttpadaptor.NewFastHTTPHandler(s.handler)
	bodyTimeout := sc.ReadTimeout
	return &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			if name, ok := sourceName(ctx); ok {
				s.serveIngest(base, ctx, name)
				return
			}
			slow(ctx)
		},
		ReadTimeout: sc.ReadHeaderTimeout,
		HeaderReceived: func(*fasthttp.RequestHeader) fasthttp.RequestConfig {
			return fasthttp.RequestConfig{ReadTimeout: bodyTimeout}
		},
		WriteTimeout: sc.WriteTimeout,
		IdleTimeout:  sc.IdleTimeout,
		// Bodies are read by serveSource, against the source's
		// max_body_bytes and the in-flight budget: fasthttp reads the
		// first 8 KiB with the headers and streams the rest.
		StreamRequestBody:  true,
		MaxRequestBodySize: math.MaxInt32,
		ReadBufferSize:     maxHeaderBytes,
		// Kept-alive connections are closed at shutdown, as
		// http.Server.Shutdown does.
		CloseOnShutdown:       true,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		Logger:                fasthttpLogger{s.log},
		ErrorHandler:          serveReadError,
	}
}

// serveReadError answers a request fasthttp could not read. fasthttp
// reads the headers and the first 8 KiB of a body before the handler runs:
// a request that stops arriving there is a transient failure, answered
// 503 with Retry-After as readBody answers a body that stops later, never
// a 4xx that a sender would take as final. fasthttp has reset the request
// by then, so the answer cannot name the source, nor count it.
func serveReadError(ctx *fasthttp.RequestCtx, err error) {
	var ne net.Error
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.As(err, &small):
		ctx.Error(fmt.Sprintf("request line and headers exceed %d bytes", maxHeaderBytes), fasthttp.StatusRequestHeaderFieldsTooLarge)
	case errors.As(err, &ne) && ne.Timeout():
		w := responseWriter{ctx: ctx}
		writeRefusal(&w, &refusal{http.StatusServiceUnavailable, "read_timeout",
			"reading the request timed out (server.read_header_timeout, server.read_timeout); retry"})
	default:
		ctx.Error("malformed request: "+err.Error(), fasthttp.StatusBadRequest)
	}
}

// sourceName is the source a request to the ingest route names; ok is
// false for any other request, which the mux then answers (404 for a name
// with a slash in it, 405 for another method, as before).
func sourceName(ctx *fasthttp.RequestCtx) (string, bool) {
	if !ctx.IsPost() {
		return "", false
	}
	path := ctx.Path()
	if !bytes.HasPrefix(path, sourcesPrefix) {
		return "", false
	}
	name := path[len(sourcesPrefix):]
	if len(name) == 0 || bytes.IndexByte(name, '/') >= 0 {
		return "", false
	}
	return string(name), true
}

// serveIngest serves one ingest request through serveSourceNamed, then
// deals with what it left of the body.
func (s *Sidecar) serveIngest(base context.Context, ctx *fasthttp.RequestCtx, name string) {
	r := ingestRequest(base, ctx)
	w := responseWriter{ctx: ctx}
	s.serveSourceNamed(&w, r, name)
	if w.code == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if body, ok := r.Body.(*countingBody); ok && !body.done() {
		discardRest(ctx, body)
	}
}

// unreadBodyLimit is how much of a refused request's body is read and
// dropped so that the connection can serve the next request, as net/http
// does (256 KiB there).
const unreadBodyLimit = 256 << 10

// lingerDelay is how long a connection whose body was refused unread
// stays half-open before it is closed: closing a socket with unread bytes
// sends a reset, which can destroy the answer before the sender reads it.
// The rest of the body is not read meanwhile, as net/http does not: a
// sender blocked in its write reads the answer first, where one whose
// write goes through may see the reset before the answer (a broken pipe
// in the 64 x 8 MB test under -race, and draining 8 MB bodies cost it
// enough CPU to time out other connections).
const lingerDelay = 500 * time.Millisecond

// discardRest handles a body the handler did not read to its end (a
// refusal before the read: busy, rate limited, too large). A short rest
// is read and dropped; a long one closes the connection after the answer,
// gracefully: the write side first, so the sender reads the answer, then
// the rest after lingerDelay.
func discardRest(ctx *fasthttp.RequestCtx, body *countingBody) {
	if n, err := io.CopyN(io.Discard, body, unreadBodyLimit+1); n <= unreadBodyLimit && err == io.EOF {
		return
	}
	// Not Connection: close, which would make fasthttp close the socket
	// at once; the half-close tells the sender just as well.
	ctx.Hijack(func(c net.Conn) {
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		time.Sleep(lingerDelay)
	})
}

// countingBody is a request body that knows whether it was read to its
// end: to its EOF, or to its Content-Length, where readBody stops without
// asking for the EOF. So an accepted request costs no further read.
type countingBody struct {
	r      io.Reader
	length int64 // Content-Length, or -1 (chunked)
	read   int64
	eof    bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read += int64(n)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *countingBody) done() bool {
	return b.eof || (b.length >= 0 && b.read >= b.length)
}

func (b *countingBody) Close() error { return nil }

// ingestRequest is the http.Request serveSource reads: the headers, the
// body as a stream, its length, the peer and the TLS state. Its context
// is base, not the RequestCtx: fasthttp cancels that at shutdown, while
// the requests in flight are meant to finish within shutdown_grace.
func ingestRequest(base context.Context, ctx *fasthttp.RequestCtx) *http.Request {
	h := requestHeader(&ctx.Request.Header)
	n := int64(ctx.Request.Header.ContentLength())
	if n < 0 {
		n = -1 // chunked: unknown, as net/http says it
	}
	var body io.ReadCloser = http.NoBody
	if n != 0 {
		var rd io.Reader = ctx.RequestBodyStream()
		if rd == nil {
			rd = bytes.NewReader(ctx.Request.Body())
		}
		body = &countingBody{r: rd, length: n}
	}
	r := &http.Request{
		Method:        http.MethodPost,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          body,
		ContentLength: n,
		Host:          string(ctx.Host()),
		RemoteAddr:    ctx.RemoteAddr().String(),
		RequestURI:    string(ctx.RequestURI()),
		TLS:           ctx.TLSConnectionState(),
	}
	return r.WithContext(base)
}

// requestHeader copies fasthttp's request header into an http.Header in
// four allocations, whatever the number of headers: the map, one []string
// all the values are cut from, one string holding every value, and the
// names only when they are not among the usual ones. A string and a slice
// per header were a fifth of the request's allocations.
func requestHeader(rh *fasthttp.RequestHeader) http.Header {
	n, size := 0, 0
	for _, v := range rh.All() {
		n++
		size += len(v)
	}
	h := make(http.Header, n)
	vals := make([]string, n)
	buf := make([]byte, 0, size)
	for _, v := range rh.All() {
		buf = append(buf, v...)
	}
	// buf is never written again: the string shares its bytes.
	all := unsafe.String(unsafe.SliceData(buf), len(buf))
	i, off := 0, 0
	for k, v := range rh.All() {
		// fasthttp gives the names in canonical form (its default), as
		// http.Header keys them.
		key := headerName(k)
		vals[i] = all[off : off+len(v)]
		off += len(v)
		if prev, ok := h[key]; ok {
			h[key] = append(prev, vals[i])
		} else {
			h[key] = vals[i : i+1 : i+1]
		}
		i++
	}
	return h
}

// headerName is k as a string, without an allocation for the names
// senders usually send.
func headerName(k []byte) string {
	switch string(k) {
	case "Host":
		return "Host"
	case "Content-Type":
		return "Content-Type"
	case "Content-Length":
		return "Content-Length"
	case "Content-Encoding":
		return "Content-Encoding"
	case "User-Agent":
		return "User-Agent"
	case "Accept":
		return "Accept"
	case "Accept-Encoding":
		return "Accept-Encoding"
	case "Authorization":
		return "Authorization"
	case "Connection":
		return "Connection"
	case "X-Signature-256":
		return "X-Signature-256"
	case "X-Signature":
		return "X-Signature"
	}
	return string(k)
}

// responseWriter is the http.ResponseWriter serveSource answers
// through; it writes into fasthttp's response.
type responseWriter struct {
	ctx  *fasthttp.RequestCtx
	h    http.Header
	code int
}

func (w *responseWriter) Header() http.Header {
	if w.h == nil {
		w.h = make(http.Header, 2)
	}
	return w.h
}

func (w *responseWriter) WriteHeader(code int) {
	if w.code != 0 {
		return
	}
	w.code = code
	w.ctx.SetStatusCode(code)
	for k, vs := range w.h {
		for _, v := range vs {
			w.ctx.Response.Header.Add(k, v)
		}
	}
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ctx.Write(b)
}

// fasthttpLogger sends fasthttp's own messages (connections it gave up
// on) to the debug log, as http.Server's ErrorLog did.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug("http server: " + fmt.Sprintf(format, args...))
}
