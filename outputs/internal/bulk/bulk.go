package bulk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fastjson"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/internal/jsonw"
	"github.com/auditpipe/auditpipe/outputs"
)

// Client sends the requests of a Writer; the output's HTTP client
// (go-elasticsearch, opensearch-go) implements it. It returns the response
// whatever its status, and an error only when there is none.
type Client interface {
	Bulk(ctx context.Context, body []byte, pipeline string) (*http.Response, error)
	PutIndexTemplate(ctx context.Context, name string, body []byte) (*http.Response, error)
}

// Config is what a Writer writes and how; the outputs fill it from their
// validated, defaulted configurations.
type Config struct {
	// Product names the destination in errors and logs: "elasticsearch".
	Product string
	// Index is the index name template; DataStream, when set, replaces it.
	Index, DataStream string
	// Pipeline is the ingest pipeline of every bulk request.
	Pipeline string
	// NoIDs sends index actions without _id instead of creates keyed by
	// the event id, for destinations that refuse document ids (OpenSearch
	// Serverless time series collections). An event sent twice is then
	// stored twice.
	NoIDs bool
	// BootstrapTemplate, TemplateName, TemplatePriority and Mapping
	// describe the index template installed before the first documents;
	// Mapping is its "template" (settings and mappings).
	BootstrapTemplate bool
	TemplateName      string
	TemplatePriority  int
	Mapping           []byte
	// Meta is the template's _meta.
	Meta map[string]string
	// Timeout bounds each request; MaxBulkBytes the size of one.
	Timeout      time.Duration
	MaxBulkBytes int
	// AuthHint, when set, is added to the error of a request refused
	// with 401 or 403: what the operator should check.
	AuthHint string
	// Encode appends the document of an event.
	Encode func(dst []byte, ev *auditpipe.Event) []byte
}

// templateRetry is how long a failed template bootstrap waits before a
// write tries it again.
const templateRetry = time.Minute

// Writer writes batches of events with the bulk API. It is safe for
// concurrent use.
type Writer struct {
	cfg    Config
	log    *slog.Logger
	client Client
	index  outputs.Template
	stream []byte // the data stream's name, quoted, when set

	bufs    sync.Pool // *[]byte request bodies
	resps   sync.Pool // *bytes.Buffer response bodies
	parsers fastjson.ParserPool

	tmplDone atomic.Bool
	tmplMu   sync.Mutex
	tmplNext time.Time // no bootstrap attempt before then
}

// New returns a Writer of cfg sending with client. cfg.Index must parse,
// as the outputs' Validate checks.
func New(cfg Config, client Client, logger *slog.Logger) (*Writer, error) {
	w := &Writer{cfg: cfg, client: client, log: logger}
	if cfg.DataStream != "" {
		w.stream = jsonw.AppendString(nil, cfg.DataStream)
	} else {
		t, err := outputs.ParseTemplate(cfg.Index)
		if err != nil {
			return nil, fmt.Errorf("%s: index: %w", cfg.Product, err)
		}
		w.index = t
	}
	return w, nil
}

// Target describes where documents go, for logs.
func (w *Writer) Target() string {
	if w.cfg.DataStream != "" {
		return "data_stream " + w.cfg.DataStream
	}
	return "index " + w.cfg.Index
}

// Write sends events with one or more bulk requests (see MaxBulkBytes) of
// create actions whose _id is the event id, so that an event sent twice is
// stored once: the second create gets a 409, which counts as delivered.
// Items rejected with 429 or 5xx are retryable, 4xx items are Permanent
// with the destination's error type and reason, and a request that fails
// as a whole is classified by its status as outputs.ClassifyHTTP does.
func (w *Writer) Write(ctx context.Context, events []auditpipe.Event) error {
	if len(events) == 0 {
		return nil
	}
	if err := w.ensureTemplate(ctx); err != nil {
		return err
	}

	bp := w.getBuf()
	defer w.bufs.Put(bp)
	body := (*bp)[:0]
	var (
		failures []outputs.Failure
		chunk    = make([]int, 0, len(events)) // indices of the events in body
		requests int
		local    int   // events failed before any request
		whole    error // the last request's request-level error
	)
	flush := func() {
		requests++
		var err error
		failures, err = w.send(ctx, body, chunk, events, failures)
		whole = err
		if err != nil {
			for _, i := range chunk {
				failures = append(failures, outputs.Failure{Index: i, Err: err})
			}
		}
		body, chunk = body[:0], chunk[:0]
	}
	for i := range events {
		ev := &events[i]
		if err := w.checkID(ev.ID); err != nil {
			failures = append(failures, outputs.Failure{Index: i, Err: outputs.Permanent(err)})
			local++
			continue
		}
		if ctx.Err() != nil && requests > 0 {
			// The attempt is over: report what was not sent rather than
			// fail each remaining request in turn.
			failures = append(failures, outputs.Failure{Index: i, Err: fmt.Errorf("%s: not sent: %w", w.cfg.Product, context.Cause(ctx))})
			continue
		}
		mark := len(body)
		body = w.appendAction(body, ev)
		if len(body) > w.cfg.MaxBulkBytes && len(chunk) > 0 {
			body = body[:mark]
			flush()
			body = w.appendAction(body, ev)
		}
		chunk = append(chunk, i)
	}
	if len(chunk) > 0 {
		flush()
	}
	*bp = body[:0]
	switch {
	case len(failures) == 0:
		return nil
	case requests == 1 && whole != nil && local == 0:
		// One request failed as a whole: say so, so that the caller
		// reports the destination's health rather than event failures.
		return whole
	}
	return &outputs.PartialError{Failures: failures}
}

// checkID rejects what the destination would refuse as a whole bulk
// request (action_request_validation_exception), taking the batch down
// with it.
func (w *Writer) checkID(id string) error {
	switch {
	case w.cfg.NoIDs:
		return nil
	case id == "":
		return fmt.Errorf("%s: event has no id (_id must not be empty)", w.cfg.Product)
	case len(id) > 512:
		return fmt.Errorf("%s: event id is %d bytes; _id is limited to 512", w.cfg.Product, len(id))
	}
	return nil
}

// appendAction appends the action and the document of ev.
func (w *Writer) appendAction(dst []byte, ev *auditpipe.Event) []byte {
	if w.cfg.NoIDs && w.stream == nil {
		// Without an id, create and index are the same; index is what
		// Serverless documents for time series collections. Data streams
		// take only create.
		dst = append(dst, `{"index":{"_index":`...)
	} else {
		dst = append(dst, `{"create":{"_index":`...)
	}
	if w.stream != nil {
		dst = append(dst, w.stream...)
	} else {
		dst = w.appendIndex(dst, ev)
	}
	if !w.cfg.NoIDs {
		dst = append(dst, `,"_id":`...)
		dst = jsonw.AppendString(dst, ev.ID)
	}
	dst = append(dst, "}}\n"...)
	dst = w.cfg.Encode(dst, ev)
	return append(dst, '\n')
}

// appendIndex renders the index name, lowercased (Elasticsearch refuses
// capitals, and a label or source name may have them), and quotes it.
func (w *Writer) appendIndex(dst []byte, ev *auditpipe.Event) []byte {
	dst = append(dst, '"')
	n := len(dst)
	dst = w.index.Append(dst, ev)
	plain := true
	for j := n; j < len(dst); j++ {
		c := dst[j]
		switch {
		case c >= 'A' && c <= 'Z':
			dst[j] = c + 'a' - 'A'
		case c < 0x20 || c == '"' || c == '\\' || c >= 0x80:
			plain = false
		}
	}
	if !plain {
		// Rare: quote it properly. Elasticsearch will refuse most such
		// names for the item, which then goes to the dead-letter store.
		name := string(dst[n:])
		dst = jsonw.AppendString(dst[:n-1], name)
		return dst
	}
	return append(dst, '"')
}

func (w *Writer) getBuf() *[]byte {
	if bp, ok := w.bufs.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, 64<<10)
	return &b
}

// send makes one bulk request of the events chunk names and appends the
// items that failed to failures. A request-level failure is returned
// instead, for the caller to apply to the whole chunk.
func (w *Writer) send(ctx context.Context, body []byte, chunk []int, events []auditpipe.Event, failures []outputs.Failure) ([]outputs.Failure, error) {
	p := w.cfg.Product
	rctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	res, err := w.client.Bulk(rctx, body, w.cfg.Pipeline)
	if err != nil {
		return failures, w.requestError(ctx, rctx, err)
	}
	rb, _ := w.resps.Get().(*bytes.Buffer)
	if rb == nil {
		rb = new(bytes.Buffer)
	}
	rb.Reset()
	defer w.resps.Put(rb)
	_, err = rb.ReadFrom(res.Body)
	_ = res.Body.Close()
	if err != nil {
		return failures, w.requestError(ctx, rctx, fmt.Errorf("reading the response: %w", err))
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		err := outputs.ClassifyHTTP(res.StatusCode, res.Header, ErrorSummary(rb.Bytes()))
		if (res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden) && w.cfg.AuthHint != "" {
			return failures, fmt.Errorf("%s bulk request: %w (%s)", p, err, w.cfg.AuthHint)
		}
		return failures, fmt.Errorf("%s bulk request: %w", p, err)
	}

	pr := w.parsers.Get()
	defer w.parsers.Put(pr)
	v, err := pr.ParseBytes(rb.Bytes())
	if err != nil {
		// Nothing tells which events arrived; creates are idempotent, so
		// sending them all again is safe.
		return failures, fmt.Errorf("%s: unreadable bulk response: %w", p, err)
	}
	items := v.GetArray("items")
	if len(items) != len(chunk) {
		return failures, fmt.Errorf("%s: bulk response has %d items for %d actions", p, len(items), len(chunk))
	}
	if !v.GetBool("errors") {
		return failures, nil
	}
	for k, it := range items {
		obj, err := it.Object()
		if err != nil || obj.Len() != 1 {
			return failures, fmt.Errorf("%s: unreadable bulk response item %d", p, k)
		}
		var item *fastjson.Value
		obj.Visit(func(_ []byte, v *fastjson.Value) { item = v })
		status := item.GetInt("status")
		if status >= 200 && status <= 299 {
			continue
		}
		ev := &events[chunk[k]]
		if id := item.GetStringBytes("_id"); !w.cfg.NoIDs && id != nil && string(id) != ev.ID {
			return failures, fmt.Errorf("%s: bulk response item %d is for _id %q, not %q", p, k, id, ev.ID)
		}
		if status == http.StatusConflict && !w.cfg.NoIDs {
			continue // the document exists: this event was delivered before
		}
		failures = append(failures, outputs.Failure{Index: chunk[k], Err: w.itemError(status, item.Get("error"))})
	}
	return failures, nil
}

// itemError classifies a rejected bulk item.
func (w *Writer) itemError(status int, e *fastjson.Value) error {
	typ := string(e.GetStringBytes("type"))
	msg := describe(e)
	if status == http.StatusNotFound && typ == "index_not_found_exception" {
		// The index cannot be created (action.auto_create_index, a
		// missing template for a data stream): a setting to fix, not an
		// event to drop.
		return fmt.Errorf("%s: HTTP 404: %s (the index does not exist and may not be created automatically)", w.cfg.Product, msg)
	}
	return fmt.Errorf("%s rejected the event: %w", w.cfg.Product, outputs.ClassifyHTTP(status, nil, msg))
}

// describe renders an Elasticsearch error object as "type: reason (caused
// by: type: reason)".
func describe(e *fastjson.Value) string {
	if e == nil {
		return "no error detail"
	}
	if e.Type() == fastjson.TypeString {
		return string(e.GetStringBytes())
	}
	s := string(e.GetStringBytes("type")) + ": " + WithoutPreview(string(e.GetStringBytes("reason")))
	if c := e.Get("caused_by"); c != nil {
		s += " (caused by " + string(c.GetStringBytes("type")) + ": " + WithoutPreview(string(c.GetStringBytes("reason"))) + ")"
	}
	return s
}

// WithoutPreview cuts the quote of the document's value from a mapping
// error ("... in document with id 'x'. Preview of field's value: '...'"):
// the reason is logged, and audit details can be sensitive. The event
// itself is in the dead letter for whoever needs it.
func WithoutPreview(reason string) string {
	if i := strings.Index(reason, " Preview of field's value:"); i >= 0 {
		return reason[:i]
	}
	return reason
}

// ErrorSummary reads the error of a failed request's body, or its start.
// AWS's own refusals (a bad SigV4 signature) are {"message": "..."}.
func ErrorSummary(body []byte) string {
	var p fastjson.Parser
	if v, err := p.ParseBytes(body); err == nil {
		if e := v.Get("error"); e != nil {
			return describe(e)
		}
		if m := v.GetStringBytes("message"); m != nil {
			return string(m)
		}
	}
	if len(body) > 512 {
		body = body[:512]
	}
	return strings.TrimSpace(string(body))
}

// requestError explains a request that got no answer.
func (w *Writer) requestError(ctx, rctx context.Context, err error) error {
	p := w.cfg.Product
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s bulk request: %w (%v)", p, context.Cause(ctx), err)
	case rctx.Err() != nil:
		return fmt.Errorf("%s bulk request: no answer within timeout %s: %w", p, w.cfg.Timeout, err)
	case errors.Is(err, ErrClosed):
		return err
	}
	return fmt.Errorf("%s bulk request to %s: %w", p, w.Target(), err)
}

// ErrClosed is what a Client returns, wrapped, once its output is closed;
// the Writer passes it on as it is.
var ErrClosed = errors.New("output closed")

// ensureTemplate installs the index template before the first documents
// if bootstrap_template is on and that has not been done. While the
// cluster cannot be reached it fails the write (retryable), so that no
// index is created with dynamic mappings in the meantime; when the cluster
// refuses the template (no privilege, a conflicting template) the write
// goes ahead and the template is tried again later.
func (w *Writer) ensureTemplate(ctx context.Context) error {
	if !w.cfg.BootstrapTemplate || w.tmplDone.Load() {
		return nil
	}
	return w.Bootstrap(ctx)
}

// Bootstrap installs the index template unless that was done, or was
// refused less than templateRetry ago. It returns an error only when the
// cluster gave no answer.
func (w *Writer) Bootstrap(ctx context.Context) error {
	w.tmplMu.Lock()
	defer w.tmplMu.Unlock()
	p := w.cfg.Product
	if w.tmplDone.Load() || time.Now().Before(w.tmplNext) {
		return nil
	}
	answered, err := w.putTemplate(ctx)
	switch {
	case err == nil:
		w.tmplDone.Store(true)
		w.log.Info(p+" index template installed", "template", w.cfg.TemplateName, "patterns", w.templatePatterns())
		return nil
	case answered:
		w.tmplNext = time.Now().Add(templateRetry)
		w.log.Error(p+" refused the index template; documents get dynamic mappings until it is installed",
			"template", w.cfg.TemplateName, "retry_in", templateRetry, "err", err)
		return nil
	}
	return fmt.Errorf("%s: installing index template %s before the first documents: %w", p, w.cfg.TemplateName, err)
}

func (w *Writer) templatePatterns() []string {
	if w.cfg.DataStream != "" {
		return []string{w.cfg.DataStream}
	}
	return []string{IndexPattern(w.cfg.Index)}
}

// TemplateBody returns the index template bootstrap_template installs
// (the composable _index_template both products take).
func (w *Writer) TemplateBody() ([]byte, error) {
	var tmpl json.RawMessage = w.cfg.Mapping
	body := map[string]any{
		"index_patterns": w.templatePatterns(),
		"priority":       w.cfg.TemplatePriority,
		"template":       tmpl,
		"_meta":          w.cfg.Meta,
	}
	if w.cfg.DataStream != "" {
		body["data_stream"] = map[string]any{}
	}
	return json.Marshal(body)
}

// putTemplate PUTs the index template and says whether the cluster
// answered.
func (w *Writer) putTemplate(ctx context.Context) (answered bool, err error) {
	body, err := w.TemplateBody()
	if err != nil {
		return false, err
	}
	rctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	res, err := w.client.PutIndexTemplate(rctx, w.cfg.TemplateName, body)
	if err != nil {
		return false, w.requestError(ctx, rctx, err)
	}
	defer func() { _ = res.Body.Close() }()
	var rb bytes.Buffer
	if _, err := rb.ReadFrom(io.LimitReader(res.Body, 1<<20)); err != nil {
		return false, fmt.Errorf("reading the response: %w", err)
	}
	if err := outputs.ClassifyHTTP(res.StatusCode, res.Header, ErrorSummary(rb.Bytes())); err != nil {
		return true, fmt.Errorf("PUT _index_template/%s: %w", w.cfg.TemplateName, err)
	}
	return true, nil
}

// IndexPattern is the index template pattern covering what an index
// template renders to: every placeholder as '*'.
func IndexPattern(index string) string {
	var b strings.Builder
	for index != "" {
		i := strings.IndexByte(index, '{')
		if i < 0 {
			b.WriteString(index)
			break
		}
		b.WriteString(index[:i])
		j := strings.IndexByte(index[i:], '}')
		if j < 0 {
			break
		}
		if !strings.HasSuffix(b.String(), "*") {
			b.WriteByte('*')
		}
		index = index[i+j+1:]
	}
	return strings.ToLower(b.String())
}

// CheckName applies Elasticsearch's and OpenSearch's rules for index, data
// stream and template names.
func CheckName(n string) error {
	switch {
	case strings.ToLower(n) != n:
		return fmt.Errorf("%q must be lowercase", n)
	case strings.ContainsAny(n[:1], "-_+."):
		return fmt.Errorf("%q must not start with '-', '_', '+' or '.'", n)
	case strings.ContainsAny(n, `\/*?"<>| ,#:`):
		return fmt.Errorf(`%q must not contain any of \ / * ? " < > | , # : or a space`, n)
	case len(n) > 255:
		return fmt.Errorf("%q is longer than 255 bytes", n)
	}
	return nil
}
