package splunkhec

import (
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/internal/tlsfiles"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/internal/inflight"
	"github.com/auditpipe/auditpipe/outputs/internal/reqbody"
)

// Output sends events to one Splunk HTTP Event Collector.
type Output struct {
	cfg       Config
	enc       *encoder
	eventURL  string
	ackURL    string
	endpoint  string // scheme://host[/prefix], for errors and logs
	header    http.Header
	client    *http.Client
	transport *tlsfiles.Transport
	log       *slog.Logger
	timeout   error // the cause a request's deadline is given
	bufs      *reqbody.Pool
	gzips     sync.Pool // *gzip.Writer
	noAckWarn atomic.Bool

	// gate lets Close wait for the Writes in progress.
	gate *inflight.Gate
}

var _ outputs.Output = (*Output)(nil)

// New applies the defaults to cfg, validates it and returns the output. It
// makes no request: a collector that is down at start is retried like any
// other failure. A nil logger discards.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Output, error) {
	_ = ctx // nothing to reach at start; kept for the constructor convention
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("splunk_hec: %w", err)
	}
	if cfg.Channel == "" {
		cfg.Channel = newGUID()
	}
	enc, err := newEncoder(cfg)
	if err != nil {
		return nil, fmt.Errorf("splunk_hec: %w", err)
	}
	tlsClient, err := cfg.TLS.Client(logger)
	if err != nil {
		return nil, fmt.Errorf("splunk_hec: %w", err)
	}
	u, _ := url.Parse(cfg.URL) // Validate parsed it
	base := strings.TrimSuffix(u.Scheme+"://"+u.Host+u.EscapedPath(), "/")
	o := &Output{
		cfg:      cfg,
		enc:      enc,
		eventURL: base + "/services/collector/event",
		ackURL:   base + "/services/collector/ack",
		endpoint: base,
		log:      logger.With("endpoint", base),
		timeout:  &timeoutError{cfg.Timeout},
	}
	o.gate = inflight.New()
	o.transport = tlsClient.Transport(&http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.Timeout,
		ExpectContinueTimeout: time.Second,
	})
	o.client = &http.Client{
		Transport: o.transport,
		// A redirect would turn the POST into a GET or take the token
		// elsewhere; it is reported instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	o.bufs = reqbody.NewPool(keepBuffer)
	o.gzips.New = func() any {
		zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
		return zw
	}
	o.header = http.Header{
		"Authorization": {"Splunk " + cfg.Token},
		"Content-Type":  {"application/json"},
		"User-Agent":    {"auditpipe/" + cfg.Version},
	}
	if cfg.Version == "" {
		o.header.Set("User-Agent", "auditpipe/dev")
	}
	if cfg.AckOn() {
		o.header.Set("X-Splunk-Request-Channel", cfg.Channel)
	}
	if cfg.TLS.InsecureSkipVerify {
		o.log.Warn("splunk_hec: tls.insecure_skip_verify is set: the server's certificate is not checked")
	}
	if u.Scheme == "http" {
		o.log.Warn("splunk_hec: the token is sent over plain http")
	}
	o.log.Info("splunk_hec output ready", "ack", cfg.AckOn(), "channel", cfg.Channel, "gzip", cfg.Gzip)
	return o, nil
}

// Channel is the data channel the output sends on.
func (o *Output) Channel() string { return o.cfg.Channel }

// Write sends events in one request and, with ack on, waits until HEC
// acknowledges them or ack_timeout passes. An event whose index template
// gives an invalid name fails alone and is not sent. When HEC rejects an
// event of the request (invalid data, index or fields: codes 6, 7, 12, 13,
// 15), that event fails permanently and the others of the request fail
// retryably: Splunk indexed those before it and dropped those after, and
// neither group is acknowledged, so both are sent again.
func (o *Output) Write(ctx context.Context, events []auditpipe.Event) error {
	if len(events) == 0 {
		return nil
	}
	if !o.gate.Enter() {
		return errors.New("splunk_hec: output is closed")
	}
	defer o.gate.Leave()

	bf := o.bufs.Get()
	defer bf.Release()
	var failures []outputs.Failure
	var sent []int // the events in the request, by position in events
	for i := range events {
		var err error
		bf.B, err = o.enc.appendEvent(bf.B, &events[i])
		if err != nil {
			if sent == nil {
				sent = make([]int, 0, len(events))
				for k := range i {
					sent = append(sent, k)
				}
			}
			failures = append(failures, outputs.Failure{Index: i, Err: fmt.Errorf("splunk_hec: event %s: %w", events[i].ID, err)})
			continue
		}
		if sent != nil {
			sent = append(sent, i)
		}
	}
	if failures != nil && len(sent) == 0 {
		return &outputs.PartialError{Failures: failures}
	}
	err := o.post(ctx, bf)
	var rej *hecError
	perEvent := err != nil && errors.As(err, &rej) && rej.Event >= 0 && rej.Event < len(events)-len(failures)
	if failures == nil && !perEvent {
		return err
	}
	if err == nil {
		return &outputs.PartialError{Failures: failures}
	}
	if sent == nil {
		sent = make([]int, len(events))
		for i := range sent {
			sent[i] = i
		}
	}
	for k, i := range sent {
		switch {
		case perEvent && rej.Event == k:
			failures = append(failures, outputs.Failure{Index: i, Err: err})
		case perEvent:
			failures = append(failures, outputs.Failure{Index: i, Err: notAcked(err)})
		default:
			failures = append(failures, outputs.Failure{Index: i, Err: err})
		}
	}
	slices.SortFunc(failures, func(a, b outputs.Failure) int { return a.Index - b.Index })
	return &outputs.PartialError{Failures: failures}
}

// notAcked is the error of the events of a request HEC rejected for
// another of its events: retryable, since they were not acknowledged.
func notAcked(err error) error {
	return fmt.Errorf("not acknowledged: another event of the request was rejected: %s", err)
}

// Close waits for the Writes in progress, or cancels them when ctx ends
// first, and closes every connection.
func (o *Output) Close(ctx context.Context) error {
	var err error
	if cerr := o.gate.Close(ctx); cerr != nil {
		err = fmt.Errorf("splunk_hec: close: requests in flight cancelled: %w", cerr)
	}
	o.transport.CloseIdleConnections()
	return err
}

// post sends one request body and, with ack on, waits for its ack. When
// HEC rejected one event of the request, the error is a Permanent one
// wrapping a *hecError whose Event is that event's position.
func (o *Output) post(ctx context.Context, bf *reqbody.Buffer) error {
	body := bf
	if o.cfg.Gzip {
		zb := o.bufs.Get()
		defer zb.Release()
		zw := o.gzips.Get().(*gzip.Writer)
		zw.Reset((*appender)(&zb.B))
		_, _ = zw.Write(bf.B)
		_ = zw.Close()
		zw.Reset(nil)
		o.gzips.Put(zw)
		body = zb
	}
	ans, err := o.request(ctx, o.eventURL, body, o.cfg.Gzip)
	if err != nil {
		return fmt.Errorf("splunk_hec: POST %s/services/collector/event: %w", o.endpoint, err)
	}
	if !o.cfg.AckOn() {
		return nil
	}
	if ans.AckID == nil {
		// The events were accepted; re-sending them would only index
		// them again.
		if !o.noAckWarn.Swap(true) {
			o.log.Warn("splunk_hec: ack is on but HEC gave no ackId: enable indexer acknowledgement on the token, or set ack: false; events count as delivered when accepted")
		}
		return nil
	}
	if err := o.waitAck(ctx, *ans.AckID); err != nil {
		return fmt.Errorf("splunk_hec: %s: %w", o.endpoint, err)
	}
	return nil
}

// answer is what HEC answers, on every endpoint.
type answer struct {
	Text        string          `json:"text"`
	Code        *int            `json:"code"`
	AckID       *int64          `json:"ackId"`
	InvalidItem *int            `json:"invalid-event-number"`
	Acks        map[string]bool `json:"acks"`
}

// hecError is an answer of HEC other than success.
type hecError struct {
	Status int
	Code   int // -1: the answer had no HEC code
	Text   string
	// Event is the position in the request of the event HEC rejected,
	// -1 when the answer names none.
	Event int
}

func (e *hecError) Error() string {
	msg := fmt.Sprintf("HTTP %d", e.Status)
	if e.Code >= 0 {
		msg += fmt.Sprintf(", HEC code %d", e.Code)
	}
	if e.Text != "" {
		msg += ": " + e.Text
	}
	if e.Event >= 0 {
		msg += fmt.Sprintf(" (event %d of the request)", e.Event)
	}
	return msg
}

// maxAnswer is how much of an answer is read.
const maxAnswer = 64 << 10

// request POSTs bf once and returns HEC's answer, or the classified error.
func (o *Output) request(ctx context.Context, u string, bf *reqbody.Buffer, gzipped bool) (*answer, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, o.cfg.Timeout, o.timeout)
	defer cancel()
	stop := context.AfterFunc(o.gate.Stopped(), cancel) // Close gave up waiting
	defer stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return nil, err
	}
	req.Body = bf.Reader()
	req.GetBody = func() (io.ReadCloser, error) { return bf.Reader(), nil }
	req.ContentLength = int64(len(bf.B))
	req.Header = o.header.Clone()
	if gzipped {
		req.Header["Content-Encoding"] = []string{"gzip"}
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return nil, o.transportError(ctx, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	var ans answer
	jerr := json.Unmarshal(b, &ans)
	if err := classify(resp.StatusCode, resp.Header, &ans, jerr == nil, b); err != nil {
		return nil, err
	}
	if jerr != nil {
		return nil, fmt.Errorf("HTTP %d with an answer that is not HEC's JSON: %w", resp.StatusCode, jerr)
	}
	return &ans, nil
}

// classify turns HEC's answer into an error an Output returns. HEC's code
// decides where it has one; the HTTP status otherwise.
func classify(status int, h http.Header, ans *answer, parsed bool, body []byte) error {
	code := -1
	if parsed && ans.Code != nil {
		code = *ans.Code
	}
	if status >= 200 && status < 300 && code <= 0 {
		return nil
	}
	e := &hecError{Status: status, Code: code, Text: ans.Text, Event: -1}
	if !parsed {
		e.Text = strings.ToValidUTF8(strings.TrimSpace(string(body[:min(len(body), 512)])), "\uFFFD")
	}
	switch {
	case code == 9 || status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout:
		// Busy or failing: back off, as long as it asked.
		return outputs.RetryAfter(e, outputs.ParseRetryAfter(h.Get("Retry-After"), time.Now()))
	case code >= 1 && code <= 4, status == http.StatusUnauthorized, status == http.StatusForbidden:
		// The data is kept until the token is fixed.
		return fmt.Errorf("token rejected: %w", e)
	case code == 10 || code == 11:
		return fmt.Errorf("data channel refused (check channel): %w", e)
	case code == 14:
		return fmt.Errorf("indexer acknowledgement is off for the token: enable it or set ack: false: %w", e)
	case code == 6 || code == 7 || code == 12 || code == 13 || code == 15:
		if parsed && ans.InvalidItem != nil {
			e.Event = *ans.InvalidItem
		}
		return outputs.Permanent(e)
	case status >= 300 && status < 400:
		return fmt.Errorf("%w: redirects are not followed; set url to the final address", e)
	}
	return outputs.ClassifyHTTP(status, h, e.Text)
}

// ackTimeoutError is the cause of an ack that did not come in time.
type ackTimeoutError struct {
	id int64
	d  time.Duration
}

func (e *ackTimeoutError) Error() string {
	return fmt.Sprintf("ackId %d not acknowledged within ack_timeout %s; the batch is sent again", e.id, e.d)
}

// waitAck queries the ack endpoint until id is acknowledged, right away
// and then every ack_poll_interval, for at most ack_timeout.
func (o *Output) waitAck(ctx context.Context, id int64) error {
	ctx, cancel := context.WithTimeoutCause(ctx, o.cfg.AckTimeout, &ackTimeoutError{id, o.cfg.AckTimeout})
	defer cancel()
	bf := o.bufs.Get()
	defer bf.Release()
	bf.B = append(bf.B, `{"acks":[`...)
	bf.B = strconv.AppendInt(bf.B, id, 10)
	bf.B = append(bf.B, "]}"...)
	key := strconv.FormatInt(id, 10)
	var timer *time.Timer
	for {
		ans, err := o.request(ctx, o.ackURL, bf, false)
		if err != nil {
			if cause := context.Cause(ctx); cause != nil {
				return cause
			}
			return fmt.Errorf("POST /services/collector/ack: %w", err)
		}
		if ans.Acks[key] {
			return nil
		}
		if timer == nil {
			timer = time.NewTimer(o.cfg.AckPollInterval)
			defer timer.Stop()
		} else {
			timer.Reset(o.cfg.AckPollInterval)
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// timeoutError is the cause of a request that hit Config.Timeout.
type timeoutError struct{ d time.Duration }

func (e *timeoutError) Error() string { return fmt.Sprintf("no answer within timeout %s", e.d) }
func (e *timeoutError) Unwrap() error { return context.DeadlineExceeded }

// transportError words a request that got no answer; it stays retryable.
func (o *Output) transportError(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil {
		if o.gate.Stopped().Err() != nil && !errors.Is(cause, o.timeout) {
			return fmt.Errorf("output closing: %w", cause)
		}
		return cause
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err
}

// newGUID returns a random (version 4) UUID, the form HEC wants for a
// channel.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hx = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hx[c>>4], hx[c&0xf])
	}
	return string(out)
}

// keepBuffer is the largest body put back in the pool.
const keepBuffer = 16 << 20

// appender lets a gzip.Writer write into a byte slice.
type appender []byte

func (a *appender) Write(p []byte) (int, error) {
	*a = append(*a, p...)
	return len(p), nil
}
