package sidecar

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/auditpipe/auditpipe/sidecar/auth"
)

// inflight is a budget of request bytes being read and transformed at
// once. Bodies are held whole while they are transformed, so without a
// bound memory grows with the number of concurrent senders: 32 clients
// posting 8 MB each took the process past 4 GB. A request that does not
// fit is answered 503 before its body is read, and the sender retries.
type inflight struct {
	limit int64
	used  atomic.Int64
}

func newInflight(limit int64) *inflight { return &inflight{limit: limit} }

// acquire reserves n bytes, or reports false when they do not fit. A
// limit of 0 or less admits everything.
func (f *inflight) acquire(n int64) bool {
	if f.limit <= 0 {
		f.used.Add(n)
		return true
	}
	for {
		u := f.used.Load()
		if u+n > f.limit && u > 0 {
			return false
		}
		if f.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (f *inflight) release(n int64) { f.used.Add(-n) }

// acceptedTypes are the media types a source accepts. A missing
// Content-Type is accepted too: some senders omit it.
var acceptedTypes = map[string]bool{
	"application/json":                   true,
	"application/x-ndjson":               true,
	"application/jsonl":                  true,
	"application/cloudevents+json":       true,
	"application/cloudevents-batch+json": true,
	"text/plain":                         true, // Fluent Bit's and curl-based senders' NDJSON
}

// admit decides whether src takes the request, cheapest refusal first:
// shutting down, the source's rate limit, the Content-Type, then the body
// (Content-Encoding, size, in-flight budget, the read) and last the
// credentials, which an HMAC checks against the body. What readBody
// reserved is returned even with a refusal, for the caller to release
// once the answer is written.
func (s *Sidecar) admit(w http.ResponseWriter, r *http.Request, src *source) ([]byte, bodyReservation, *refusal) {
	if s.draining.Load() {
		return nil, bodyReservation{}, &refusal{http.StatusServiceUnavailable, "shutting_down", "shutting down; retry"}
	}
	if src.limiter != nil && !src.limiter.Allow() {
		return nil, bodyReservation{}, &refusal{http.StatusServiceUnavailable, "rate_limited", "rate limit of this source exceeded; retry"}
	}
	// A bare accepted type, as nearly every sender writes it, needs no
	// parsing (ParseMediaType allocates a map for the parameters).
	if ct := r.Header.Get("Content-Type"); ct != "" && !acceptedTypes[ct] {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !acceptedTypes[mt] {
			return nil, bodyReservation{}, &refusal{http.StatusUnsupportedMediaType, "content_type",
				fmt.Sprintf("Content-Type %q is not accepted: send application/json, application/x-ndjson or a CloudEvents type", ct)}
		}
	}
	body, held, ref := s.readBody(w, r, src.maxBody)
	if ref != nil {
		return nil, held, ref
	}
	if err := src.auth.Verify(r, body); err != nil {
		var ae *auth.Error
		msg := "authentication failed"
		if errors.As(err, &ae) {
			msg = ae.Error()
		}
		return nil, held, &refusal{http.StatusUnauthorized, "auth", msg}
	}
	return body, held, nil
}

// refusal is a request the sidecar will not take, with the status, the
// metric's reason and the message the sender sees.
type refusal struct {
	code   int
	reason string
	msg    string
}

// bodyReservation is what readBody reserved; release gives it back once
// the request is answered.
type bodyReservation struct {
	f *inflight
	n int64
}

func (b bodyReservation) release() {
	if b.f != nil {
		b.f.release(b.n)
	}
}

// readBody admits a request's body against max (the source's
// max_body_bytes, which bounds the body after decompression too) and the
// in-flight budget, and reads it. Every failure that a retry may fix
// (budget exhausted, a read that timed out or broke off) is a 503: a
// sender must never take a transient failure for a final 4xx.
func (s *Sidecar) readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, bodyReservation, *refusal) {
	gz := false
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		gz = true
	default:
		return nil, bodyReservation{}, &refusal{http.StatusUnsupportedMediaType, "content_encoding",
			fmt.Sprintf("Content-Encoding %q is not supported: send the body as is or with gzip", enc)}
	}
	if r.ContentLength > max {
		return nil, bodyReservation{}, tooLarge(max)
	}
	// A body of unknown length, or a compressed one, may grow to max.
	n := max
	if r.ContentLength >= 0 && !gz {
		n = r.ContentLength
	}
	if !s.inflight.acquire(n) {
		return nil, bodyReservation{}, &refusal{http.StatusServiceUnavailable, "busy",
			fmt.Sprintf("too many request bytes in flight (server.max_inflight_bytes %d); retry", s.inflight.limit)}
	}
	res := bodyReservation{s.inflight, n}
	rd := r.Body
	if r.ContentLength < 0 || gz {
		// The server (fasthttp's stream, or net/http behind the mux) ends a
		// body of known length there, and that length is within max: only
		// the others need the limit.
		rd = http.MaxBytesReader(w, r.Body, max)
	}
	body, err := readAll(rd, r.ContentLength, gz, max)
	if err != nil {
		res.release()
		return nil, bodyReservation{}, readRefusal(err, max)
	}
	return body, res, nil
}

var errInflated = errors.New("inflated body too large")

func readAll(body io.Reader, length int64, gz bool, max int64) ([]byte, error) {
	if !gz {
		if length >= 0 {
			// One allocation of the exact size instead of ReadAll's
			// doublings, which leave up to twice the body as garbage.
			b := make([]byte, length)
			_, err := io.ReadFull(body, b)
			return b, err
		}
		return io.ReadAll(body)
	}
	zr, err := gzip.NewReader(body)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(zr, max+1))
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, errInflated
	}
	return buf.Bytes(), zr.Close()
}

func tooLarge(max int64) *refusal {
	return &refusal{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body exceeds %d bytes (max_body_bytes)", max)}
}

// readRefusal tells a body that can never be accepted (too large, not
// gzip) from a read that failed on the way (a timeout, a connection that
// broke off), which the sender should retry.
func readRefusal(err error, max int64) *refusal {
	var tooBig *http.MaxBytesError
	var corrupt flate.CorruptInputError
	var ne net.Error
	switch {
	case errors.As(err, &tooBig):
		return tooLarge(max)
	case errors.Is(err, errInflated):
		return &refusal{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body exceeds %d bytes (max_body_bytes) once decompressed", max)}
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, gzip.ErrChecksum), errors.As(err, &corrupt):
		return &refusal{http.StatusBadRequest, "content_encoding", "Content-Encoding gzip, but the body is not valid gzip: " + err.Error()}
	case errors.As(err, &ne) && ne.Timeout(): // os.ErrDeadlineExceeded among them
		return &refusal{http.StatusServiceUnavailable, "read_timeout", "reading the body timed out (server.read_timeout); retry"}
	default:
		return &refusal{http.StatusServiceUnavailable, "read", "reading the body failed; retry: " + err.Error()}
	}
}
