package outputs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe"
)

// Output writes batches of events to one destination.
//
// Write makes one attempt to deliver events and reports what happened:
//   - nil: every event was accepted by the destination;
//   - a *PartialError: the events it lists failed, each with its own error,
//     and every other event of the batch was accepted;
//   - any other error: the whole batch failed.
//
// Errors are retryable unless wrapped with Permanent, which an output uses
// only when the destination rejected the event itself (a mapping error, a
// 4xx other than 401/403/408/429). Connectivity, timeouts, throttling and bad
// credentials are retryable: the data is kept until an operator fixes them.
// An output may wrap an error with RetryAfter when the destination said how
// long to wait.
//
// Write must not retain events or modify them after it returns, and must be
// safe to call from several goroutines at once (the Fluent Bit plugin
// flushes from several workers). Close flushes anything the output buffers
// and releases its connections.
type Output interface {
	Write(ctx context.Context, events []auditpipe.Event) error
	Close(ctx context.Context) error
}

// Failure is one event of a batch that was not delivered.
type Failure struct {
	// Index is the event's position in the slice passed to Write.
	Index int
	Err   error
}

// PartialError reports the events of a batch that failed; the others were
// delivered.
type PartialError struct {
	Failures []Failure
}

func (e *PartialError) Error() string {
	if len(e.Failures) == 0 {
		return "no events failed"
	}
	perm := 0
	for _, f := range e.Failures {
		if IsPermanent(f.Err) {
			perm++
		}
	}
	return fmt.Sprintf("%d events failed (%d permanently), first: event %d: %v",
		len(e.Failures), perm, e.Failures[0].Index, e.Failures[0].Err)
}

// permanentError marks an error the destination will give again for the
// same event, however often it is sent.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as a rejection of the event itself: retrying will not
// help, and the event goes to the dead-letter store. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.err, e.after)
}
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter marks err as retryable no sooner than d from now, as the
// destination asked (an HTTP Retry-After header, a broker's throttle time).
// A d of zero or less leaves err as it is.
func RetryAfter(err error, d time.Duration) error {
	if err == nil || d <= 0 {
		return err
	}
	return &retryAfterError{err: err, after: d}
}

// RetryAfterOf returns the wait err asks for, if it carries one.
func RetryAfterOf(err error) (time.Duration, bool) {
	var r *retryAfterError
	if errors.As(err, &r) {
		return r.after, true
	}
	return 0, false
}

// StatusError is an HTTP answer that was not a success.
type StatusError struct {
	Code int
	// Body is the start of the response body, for the log and the
	// dead-letter record.
	Body string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("HTTP %d %s", e.Code, http.StatusText(e.Code))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// ClassifyHTTP turns an HTTP status into an error an Output can return:
// nil for 2xx; retryable for 5xx, 429 and 408 (honouring Retry-After), and
// for 401 and 403, because bad credentials are fixed by an operator, not by
// dropping the data; Permanent for every other status, which rejects the
// request itself.
func ClassifyHTTP(code int, header http.Header, body string) error {
	if code >= 200 && code < 300 {
		return nil
	}
	err := error(&StatusError{Code: code, Body: body})
	switch {
	case code >= 500, code == http.StatusTooManyRequests, code == http.StatusRequestTimeout:
		return RetryAfter(err, ParseRetryAfter(header.Get("Retry-After"), time.Now()))
	case code == http.StatusUnauthorized, code == http.StatusForbidden:
		return fmt.Errorf("credentials rejected: %w", err)
	default:
		return Permanent(err)
	}
}

// ParseRetryAfter reads an HTTP Retry-After value, either delay-seconds or
// an HTTP date, as a duration from now. It returns 0 when the value is
// missing or unreadable.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
