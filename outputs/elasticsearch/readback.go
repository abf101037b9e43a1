package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/internal/bulk"
)

// readBackPage is how many documents one search of ReadBack returns.
const readBackPage = 1000

// readBackKeepAlive keeps the point in time open between two pages; each
// search renews it.
const readBackKeepAlive = "5m"

// ReadBack calls fn once per stored unit (object, file, partition, index)
// with a reader of the NDJSON event lines it holds, in the order the
// output wrote them.
//
// For Elasticsearch the units are the concrete indices behind the
// output's target, in name order: the index pattern (the index template
// with '*' for each placeholder, as bootstrap_template's template
// covers) or the data stream, whose backing indices are read. source is
// "es://" and the index name. Everything is read through one point in
// time opened at the call, sorted by _index and then _shard_doc (the
// order documents were indexed in each shard), page by page with
// search_after, and the point in time is closed at the end; documents
// indexed later, or within the refresh interval before the call (1s by
// default), are not seen. A search that did not reach every shard fails
// rather than leave documents out.
//
// Each hit's _source is an ECS document, turned back into the event with
// FromECS and written as its JSON form. A document that does not convert
// is written as its raw _source, which is not an event's JSON form, so a
// verifier reports it as malformed instead of passing over it.
//
// The index pattern matches any index whose name fits it, including ones
// another writer made: their documents fail verification. New, which
// builds the output, installs the index template when bootstrap_template
// is on; a read-back run does that too.
func (o *Output) ReadBack(ctx context.Context, fn func(source string, r io.Reader) error) error {
	return o.readBack(ctx, readBackPage, fn)
}

// readBack is ReadBack with pageSize documents a search.
func (o *Output) readBack(ctx context.Context, pageSize int, fn func(source string, r io.Reader) error) error {
	if o.closed.Load() {
		return errClosed
	}
	target := o.cfg.DataStream
	if target == "" {
		target = indexPattern(o.cfg.Index)
	}
	pit, err := o.openPIT(ctx, target)
	if err != nil {
		return fmt.Errorf("elasticsearch: read back %s: opening a point in time: %w", target, err)
	}
	cur := &hitCursor{o: o, ctx: ctx, pit: pit, size: pageSize, target: target}
	defer o.closePIT(ctx, cur)
	for {
		h, err := cur.peek()
		if err != nil || h == nil {
			return err
		}
		index := h.Index
		if err := fn("es://"+index, &indexReader{cur: cur, index: index}); err != nil {
			return err
		}
		// What fn left unread of this index.
		for {
			h, err := cur.peek()
			if err != nil {
				return err
			}
			if h == nil || h.Index != index {
				break
			}
			cur.i++
		}
	}
}

func (o *Output) openPIT(ctx context.Context, target string) (string, error) {
	rctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	req := esapi.OpenPointInTimeRequest{Index: []string{target}, KeepAlive: readBackKeepAlive}
	b, err := o.readBackDo(ctx, rctx, req)
	if err != nil {
		return "", err
	}
	var r struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.ID == "" {
		return "", fmt.Errorf("unreadable answer: %.200s", b)
	}
	return r.ID, nil
}

// closePIT releases the point in time, even when ctx has ended; a failure
// only leaves it to expire after the keep-alive.
func (o *Output) closePIT(ctx context.Context, cur *hitCursor) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.cfg.Timeout)
	defer cancel()
	body, _ := json.Marshal(map[string]string{"id": cur.pit})
	if _, err := o.readBackDo(ctx, ctx, esapi.ClosePointInTimeRequest{Body: bytes.NewReader(body)}); err != nil {
		o.log.Debug("elasticsearch: closing the read-back point in time", "err", err)
	}
}

// readBackDo makes one request and returns the body of a 2xx answer.
func (o *Output) readBackDo(ctx, rctx context.Context, req esapi.Request) ([]byte, error) {
	res, err := req.Do(rctx, o.client)
	if err != nil {
		return nil, o.requestError(ctx, rctx, err)
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, o.requestError(ctx, rctx, fmt.Errorf("reading the response: %w", err))
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil, outputs.ClassifyHTTP(res.StatusCode, res.Header, bulk.ErrorSummary(b))
	}
	return b, nil
}

// readBackHit is a search hit as ReadBack uses it.
type readBackHit struct {
	Index  string          `json:"_index"`
	Source json.RawMessage `json:"_source"`
	Sort   json.RawMessage `json:"sort"`
}

// hitCursor walks the point in time's documents, sorted by index, a page
// at a time.
type hitCursor struct {
	o      *Output
	ctx    context.Context
	pit    string // the latest id Elasticsearch gave
	target string
	size   int
	after  json.RawMessage // the last hit's sort values
	page   []readBackHit
	i      int
	done   bool
}

// peek returns the next hit, fetching a page when needed, or nil at the
// end.
func (c *hitCursor) peek() (*readBackHit, error) {
	for c.i == len(c.page) {
		if c.done {
			return nil, nil
		}
		if err := c.fetch(); err != nil {
			return nil, fmt.Errorf("elasticsearch: read back %s: %w", c.target, err)
		}
	}
	return &c.page[c.i], nil
}

func (c *hitCursor) fetch() error {
	q := map[string]any{
		"size":             c.size,
		"query":            map[string]any{"match_all": map[string]any{}},
		"pit":              map[string]string{"id": c.pit, "keep_alive": readBackKeepAlive},
		"sort":             []any{map[string]string{"_index": "asc"}, map[string]string{"_shard_doc": "asc"}},
		"track_total_hits": false,
	}
	if c.after != nil {
		q["search_after"] = c.after
	}
	body, err := json.Marshal(q)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(c.ctx, c.o.cfg.Timeout)
	defer cancel()
	partial := false
	b, err := c.o.readBackDo(c.ctx, rctx, esapi.SearchRequest{Body: bytes.NewReader(body), AllowPartialSearchResults: &partial})
	if err != nil {
		return err
	}
	var r struct {
		PitID    string `json:"pit_id"`
		TimedOut bool   `json:"timed_out"`
		Shards   struct {
			Total  int `json:"total"`
			Failed int `json:"failed"`
		} `json:"_shards"`
		Hits struct {
			Hits []readBackHit `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("unreadable search answer: %w", err)
	}
	if r.TimedOut || r.Shards.Failed > 0 {
		return fmt.Errorf("the search reached %d of %d shards (timed out: %v): documents would be missing",
			r.Shards.Total-r.Shards.Failed, r.Shards.Total, r.TimedOut)
	}
	if r.PitID != "" {
		c.pit = r.PitID
	}
	c.page, c.i = r.Hits.Hits, 0
	if n := len(c.page); n > 0 {
		c.after = c.page[n-1].Sort
		if c.after == nil {
			return errors.New("search hits carry no sort values")
		}
	}
	c.done = len(c.page) < c.size
	return nil
}

// indexReader reads one index's hits from the cursor as NDJSON lines.
type indexReader struct {
	cur   *hitCursor
	index string
	line  []byte
	off   int
}

func (r *indexReader) Read(p []byte) (int, error) {
	for r.off == len(r.line) {
		h, err := r.cur.peek()
		if err != nil {
			return 0, err
		}
		if h == nil || h.Index != r.index {
			return 0, io.EOF
		}
		r.line, r.off = appendHitLine(r.line[:0], h.Source), 0
		r.cur.i++
	}
	n := copy(p, r.line[r.off:])
	r.off += n
	return n, nil
}

// appendHitLine appends the event source was made from, as one NDJSON
// line, or, when it does not convert, source itself on one line: not an
// event's JSON form (FromECS reads any ECS document auditpipe writes), so
// the verifier reports it as malformed rather than missing.
func appendHitLine(dst []byte, source json.RawMessage) []byte {
	ev, err := FromECS(source)
	if err == nil {
		return append(eventjson.Append(dst, &ev), '\n')
	}
	var buf bytes.Buffer
	if json.Compact(&buf, source) == nil {
		return append(append(dst, buf.Bytes()...), '\n')
	}
	return append(append(dst, strings.ReplaceAll(string(source), "\n", " ")...), '\n')
}
