package pull

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/transformers"
)

// maxBodyBytes bounds a response: a page of 500 yoq entries is about
// 75 KB, so anything near this is a misconfigured URL, not audit entries.
const maxBodyBytes = 64 << 20

// Options are what the sidecar provides a Poller besides its Config.
type Options struct {
	// Source is the source name: event.source.name and the watermark's
	// file name. Required; a plain file name (no path separators).
	Source string
	// Transformer turns one entry into events (the app transformer, yoq
	// flavor, or any transformer that accepts one JSON object). Required.
	Transformer transformers.Transformer
	// Enqueue durably queues events, oldest first; nil means durable. A
	// non-nil error leaves the watermark where it was. Required.
	Enqueue func(ctx context.Context, events []auditpipe.Event) error
	// Reject, when set, keeps a new entry the transformer could not map
	// (the raw entry and its errors, paths relative to the entry), for
	// example in the dead-letter store. A non-nil error leaves the
	// watermark where it was, like Enqueue's. Without it such entries are
	// only logged, counted and returned in Result.Errors.
	Reject func(ctx context.Context, entry []byte, errs []*transformers.Error) error
	// StateDir holds the watermark, <StateDir>/<Source>.json; created when
	// missing. Required.
	StateDir string
	// Logger receives the poller's logs; nil discards them. The poller
	// adds no source attribute: pass logger.With("source", name).
	Logger *slog.Logger
	// Metrics, when set, is updated with this source's label.
	Metrics *Metrics
	// HTTPClient replaces the client built from the Config (TLS, timeout);
	// for tests. Config.Timeout still bounds each poll.
	HTTPClient *http.Client
	// Now is the clock (observed time of the events); default time.Now.
	Now func() time.Time
}

// Result is what one poll did.
type Result struct {
	// Fetched is how many entries the page held.
	Fetched int
	// New is how many of them had not been seen before.
	New int
	// Queued is how many events the new entries became (and were queued).
	Queued int
	// Gap reports that entries may have been missed: the page came back
	// full of new entries, or could not be matched with the last one
	// unambiguously (logged with the reason, counted in
	// auditpipe_pull_gaps_total).
	Gap bool
	// Errors are the new entries the transformer could not map; Item is
	// the entry's index in the page (newest first) and Path starts at the
	// response body ($[3].recorded_at).
	Errors []*transformers.Error
}

// Poller polls one pull source. Poll and Run are safe for concurrent use;
// polls are serialised.
type Poller struct {
	cfg       Config
	opts      Options
	log       *slog.Logger
	reqURL    string // holds no credentials (Validate), so it is logged
	client    *http.Client
	ownClient bool
	statePath string

	mu     sync.Mutex // serialises polls; guards the fields below
	st     state
	loaded bool // a watermark exists (false until the first successful poll)
	dirty  bool // st is ahead of the file: the last save failed
	// failing: the last poll failed (its warning was logged).
	failing bool
}

// New applies the defaults, validates cfg and opts, reads the watermark
// and builds the HTTP client. It does not poll.
func New(cfg Config, opts Options) (*Poller, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var errs []error
	if opts.Source == "" || opts.Source == "." || opts.Source == ".." || filepath.Base(opts.Source) != opts.Source {
		errs = append(errs, fmt.Errorf("pull source name %q: must be a plain file name", opts.Source))
	}
	if opts.Transformer == nil {
		errs = append(errs, errors.New("pull: a transformer is required"))
	}
	if opts.Enqueue == nil {
		errs = append(errs, errors.New("pull: an Enqueue function is required"))
	}
	if opts.StateDir == "" {
		errs = append(errs, errors.New("pull: a state directory is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	u, _ := url.Parse(cfg.URL) // validated
	q := u.Query()
	q.Set("limit", strconv.Itoa(cfg.Limit))
	u.RawQuery = q.Encode()
	p := &Poller{cfg: cfg, opts: opts, log: opts.Logger, reqURL: u.String(), client: opts.HTTPClient}
	if p.client == nil {
		tlsClient, err := cfg.TLS.Client(p.log)
		if err != nil {
			return nil, err
		}
		if cfg.TLS.InsecureSkipVerify {
			p.log.Warn("pull: tls.insecure_skip_verify is set: the server's certificate is not checked")
		}
		tr := tlsClient.Transport(http.DefaultTransport.(*http.Transport).Clone())
		// No Client.Timeout: each poll's context has the deadline, and a
		// client timeout over a transport http.Client does not know
		// would cancel through a goroutine per request instead.
		p.client, p.ownClient = &http.Client{Transport: tr}, true
	}
	if err := mkdirState(opts.StateDir); err != nil {
		return nil, err
	}
	p.statePath = filepath.Join(opts.StateDir, opts.Source+".json")
	var err error
	if p.st, p.loaded, err = loadState(p.statePath); err != nil {
		return nil, err
	}
	opts.Metrics.init(opts.Source)
	return p, nil
}

// Run polls at once and then every Interval until ctx ends, and returns
// nil then. Failed polls are logged and counted, and retried at the next
// interval; they never end Run.
func (p *Poller) Run(ctx context.Context) error {
	if p.ownClient {
		defer p.client.CloseIdleConnections()
	}
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for ctx.Err() == nil {
		// Poll logs and counts its own failures.
		_, _ = p.Poll(ctx)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return nil
}

// Poll fetches the newest page once, queues the entries not seen before
// (oldest first), hands unmappable ones to Reject, and then advances and
// persists the watermark. On error nothing advanced, unless the error is
// about persisting the watermark: then the events are queued and the
// watermark advanced in memory only (a restart would queue them again).
func (p *Poller) Poll(ctx context.Context) (Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	res, err := p.poll(ctx)
	m := p.opts.Metrics
	if err != nil {
		if ctx.Err() != nil {
			return res, err // shutting down: not the source's failure
		}
		// One warning per outage, not one per interval.
		level := slog.LevelWarn
		if p.failing {
			level = slog.LevelDebug
		}
		p.failing = true
		p.log.Log(ctx, level, "pull: poll failed; retrying at the next interval", "url", p.reqURL, "err", err)
		if m != nil {
			m.Polls.WithLabelValues(p.opts.Source, "error").Inc()
		}
		return res, err
	}
	if p.failing {
		p.failing = false
		p.log.Info("pull: polling again", "url", p.reqURL)
	}
	if m != nil {
		m.Polls.WithLabelValues(p.opts.Source, "ok").Inc()
		m.LastSuccess.WithLabelValues(p.opts.Source).Set(float64(p.opts.Now().UnixNano()) / 1e9)
	}
	return res, nil
}

func (p *Poller) poll(ctx context.Context) (Result, error) {
	var res Result
	body, err := p.fetch(ctx)
	if err != nil {
		return res, err
	}
	page, err := parsePage(body)
	if err != nil {
		return res, err
	}
	res.Fetched = len(page)
	d := diff(page, p.st, p.cfg.Limit)
	res.New = d.newCount
	now := p.opts.Now()

	// Oldest first, so the queue holds the app's order.
	type rejected struct {
		raw  []byte
		errs []*transformers.Error
	}
	var events []auditpipe.Event
	var rejects []rejected
	newest := p.st.Newest
	for i := len(page) - 1; i >= 0; i-- {
		v := d.verdicts[i]
		if !v.isNew {
			continue
		}
		e := page[i]
		tr, err := transformers.Run(ctx, p.opts.Transformer, transformers.Input{
			Body: e.raw,
			Meta: transformers.Meta{SourceName: p.opts.Source, ReceivedAt: now},
		})
		if err != nil {
			var te *transformers.Error
			if ctx.Err() != nil || errors.Is(err, transformers.ErrUnavailable) || !errors.As(err, &te) {
				return res, fmt.Errorf("transform entry %d: %w", i, err)
			}
			tr.Errors = append(tr.Errors, te)
		}
		for _, ev := range tr.Events {
			if e.canonical && ev.ID == e.key {
				// An id derived from the content: identical copies are told
				// apart by the order they were written, not by where this
				// page happened to start.
				ev.ID = auditpipe.NthDuplicateID(e.key, v.ordinal)
			}
			if ev.Time.After(newest) {
				newest = ev.Time
			}
			if s := &d.seen[d.index[e.key]]; s.Time.IsZero() {
				s.Time = ev.Time
			}
			events = append(events, ev)
		}
		if len(tr.Errors) > 0 {
			rejects = append(rejects, rejected{e.raw, tr.Errors})
			for _, te := range tr.Errors {
				res.Errors = append(res.Errors, rebase(te, i))
			}
		}
	}

	var gap string
	if p.loaded {
		gap = gapReason(page, d, p.cfg.Limit, p.st.Newest)
	}
	if !p.loaded && len(page) >= p.cfg.Limit {
		p.log.Info("pull: first poll; entries older than this page are not fetched", "url", p.reqURL, "limit", p.cfg.Limit)
	}

	if len(events) > 0 {
		if err := p.opts.Enqueue(ctx, events); err != nil {
			return res, fmt.Errorf("queue %d events: %w", len(events), err)
		}
	}
	res.Queued = len(events)
	if m := p.opts.Metrics; m != nil {
		m.Events.WithLabelValues(p.opts.Source).Add(float64(len(events)))
	}
	for _, r := range rejects {
		p.log.Warn("pull: entry could not be mapped", "errors", len(r.errs), "first", r.errs[0].Error())
		if p.opts.Reject != nil {
			if err := p.opts.Reject(ctx, r.raw, r.errs); err != nil {
				return res, fmt.Errorf("keep an unmappable entry: %w", err)
			}
		}
	}
	if m := p.opts.Metrics; m != nil {
		m.ItemErrors.WithLabelValues(p.opts.Source).Add(float64(len(rejects)))
	}
	if gap != "" {
		res.Gap = true
		if m := p.opts.Metrics; m != nil {
			m.Gaps.WithLabelValues(p.opts.Source).Inc()
		}
		p.log.Warn("pull: entries may have been missed: "+gap+"; poll faster (interval) or raise the limit",
			"limit", p.cfg.Limit, "interval", p.cfg.Interval, "new", d.newCount)
	}
	if d.newCount > 0 {
		p.log.Debug("pull: queued new entries", "new", d.newCount, "events", len(events), "fetched", len(page))
	}

	// The queue has the events: only now may the watermark move. An
	// unchanged page leaves it as it is, sparing an fsync per idle poll.
	prune(&d, newest)
	next := state{Version: stateVersion, Newest: newest, PolledAt: now.UTC(), Limit: p.cfg.Limit, Page: d.page, Seen: d.seen}
	if p.loaded && !p.dirty && next.Limit == p.st.Limit && slices.Equal(next.Page, p.st.Page) && slices.Equal(next.Seen, p.st.Seen) {
		return res, nil
	}
	p.st = next
	p.loaded, p.dirty = true, true
	if err := saveState(p.statePath, p.st); err != nil {
		return res, err
	}
	p.dirty = false
	return res, nil
}

// gapReason says why entries may have been missed, or "" when none can
// have been:
//   - the last page reappears at more than one place (a run of identical
//     entries), and the nearest was taken;
//   - or the page is full and every entry on it is new: entries older than
//     the page may never have been seen;
//   - or, when the page could only be judged by counting copies, it is
//     full, holds new entries, and does not reach back before the second
//     of the newest entry seen before, so more entries of that second may
//     lie below it.
//
// A full page with nothing new is not a gap.
func gapReason(page []entry, d diffResult, limit int, lastNewest time.Time) string {
	switch {
	case d.ambiguous:
		return "a run of identical entries makes the page ambiguous"
	case len(page) < limit || d.newCount == 0:
		return ""
	case d.newCount == len(page):
		return "the page came back full of new entries"
	case d.aligned:
		return ""
	}
	oldest := d.seen[d.page[len(page)-1]].Time
	if !oldest.IsZero() && !oldest.Truncate(time.Second).Before(lastNewest.Truncate(time.Second)) {
		return "the page does not reach back before the newest second seen"
	}
	return ""
}

// fetch GETs the page. The token is set as a header, never put in an
// error or a log.
func (p *Poller) fetch(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.reqURL, nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "auditpipe-pull")
	for name, v := range p.cfg.Headers {
		if http.CanonicalHeaderKey(name) == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(name, v)
	}
	if p.cfg.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+p.cfg.BearerToken)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", p.reqURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			hint = " (check bearer_token)"
		}
		return nil, fmt.Errorf("GET %s: %s%s: %q", p.reqURL, resp.Status, hint, snippet)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: read body: %w", p.reqURL, err)
	}
	if len(body) > maxBodyBytes {
		return nil, fmt.Errorf("GET %s: response body over %d bytes", p.reqURL, maxBodyBytes)
	}
	return body, nil
}

// rebase makes an error about a single entry an error about the page: the
// entry's index, and a path from the response body's root.
func rebase(te *transformers.Error, i int) *transformers.Error {
	c := *te
	c.Item = i
	c.Line = 0
	prefix := "$[" + strconv.Itoa(i) + "]"
	if len(c.Path) > 0 && c.Path[0] == '$' {
		c.Path = prefix + c.Path[1:]
	} else {
		c.Path = prefix
	}
	return &c
}
