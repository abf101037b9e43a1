package pull

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/transformers"
)

// entry is one element of a fetched page.
type entry struct {
	raw json.RawMessage
	// key identifies the entry's content: the SHA-256 of its canonical
	// JSON, which is also the transformer's base id for it; for an entry
	// that cannot be canonicalized (it will fail the transformer too), a
	// hash of its raw bytes, marked so it never matches an event id.
	key string
	// canonical reports whether key is the canonical hash.
	canonical bool
}

// parsePage splits a response body into entries, newest first as the
// server sent them. The body is a JSON array of entries, or an object
// with exactly one member, an array of entries ({"entries": [...]});
// null and an empty body are an empty page.
func parsePage(body []byte) ([]entry, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || string(body) == "null" {
		return nil, nil
	}
	var raws []json.RawMessage
	switch body[0] {
	case '[':
		if err := json.Unmarshal(body, &raws); err != nil {
			return nil, fmt.Errorf("response body: %w", err)
		}
	case '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(body, &obj); err != nil {
			return nil, fmt.Errorf("response body: %w", err)
		}
		if len(obj) != 1 {
			return nil, fmt.Errorf("response body: expected a JSON array of entries, or an object holding only one, got an object with %d members", len(obj))
		}
		for name, v := range obj {
			if err := json.Unmarshal(v, &raws); err != nil {
				return nil, fmt.Errorf("response body: member %q: expected an array of entries: %w", name, err)
			}
		}
	default:
		return nil, errors.New("response body: expected a JSON array of entries")
	}
	page := make([]entry, len(raws))
	var buf []byte
	for i, raw := range raws {
		page[i].raw = raw
		// The transformers' canonical encoder, so that the key is exactly
		// the base id the transformer derives.
		var err error
		if buf, err = transformers.AppendCanonicalJSON(buf[:0], raw); err == nil {
			page[i].key, page[i].canonical = auditpipe.IDFromCanonical(buf), true
		} else {
			page[i].key = "raw:" + auditpipe.RawSHA256(raw)
		}
	}
	return page, nil
}

// verdict is what diff decided about one entry of a page.
type verdict struct {
	isNew bool
	// ordinal numbers identical copies in the order they were written,
	// oldest first, across polls: the n-th copy ever queued gets n.
	ordinal int
}

// diffResult is the outcome of comparing a page with the last one.
type diffResult struct {
	verdicts []verdict // by page index
	newCount int
	// aligned: the page continued the last one (the new entries are the
	// ones above where the last page reappears). When false, the page was
	// judged by counting copies.
	aligned bool
	// ambiguous: the last page reappears at more than one place (a run of
	// identical entries); the nearest was taken, so entries may be missed.
	ambiguous bool
	// seen is the watermark's content after this page: the page's distinct
	// entries, newest first, then those carried over for their numbering
	// (see prune). Time is carried over, and zero for content first seen
	// now (the caller fills it in).
	seen []seen
	// page is the page as indices into seen.
	page []int
	// index maps a key to its record in seen.
	index map[string]int
}

// diff decides which entries of page (newest first) are new, given the
// watermark of the last poll and the limit both polls asked for.
//
// The log is append-only and served newest first in the order written
// (yoq: ORDER BY id DESC), so the page is the entries written since the
// last poll followed by the start of the last page: the new entries are
// those above the nearest point where the last page reappears. Where the
// last page does not reappear (the server orders otherwise, or every
// entry is new), copies are counted instead: the page's copies of a
// content beyond those the last page held are new, and the newest copies
// are taken to be the new ones.
func diff(page []entry, last state, limit int) diffResult {
	// Keys as small integers: the alignment compares many pairs.
	ids := make(map[string]int, len(last.Seen)+len(page))
	for _, s := range last.Seen {
		ids[s.Key] = len(ids)
	}
	cur := make([]int, len(page))
	for i, e := range page {
		id, ok := ids[e.key]
		if !ok {
			id = len(ids)
			ids[e.key] = id
		}
		cur[i] = id
	}
	prev := last.Page // ids of last.Seen are their indices

	r := diffResult{verdicts: make([]verdict, len(page))}
	k0, n := align(cur, prev, last.Limit, limit)
	switch {
	case len(prev) == 0:
		k0, r.aligned = len(page), true // nothing before: all new
	case n > 0:
		r.aligned, r.ambiguous = true, n > 1
	default:
		k0 = -1
	}
	if k0 >= 0 {
		for i := range k0 {
			r.verdicts[i].isNew = true
		}
		r.newCount = k0
	} else {
		r.newCount = countNew(cur, prev, r.verdicts)
	}

	// Number the new copies oldest first, continuing each content's count.
	total := make(map[int]int, len(ids))
	for i, s := range last.Seen {
		total[i] = s.Total
	}
	for i := len(page) - 1; i >= 0; i-- {
		if r.verdicts[i].isNew {
			r.verdicts[i].ordinal = total[cur[i]]
			total[cur[i]]++
		}
	}

	r.index = make(map[string]int, len(ids))
	r.page = make([]int, len(page))
	r.seen = make([]seen, 0, len(ids))
	add := func(key string, id int) int {
		if at, ok := r.index[key]; ok {
			return at
		}
		s := seen{Key: key, Total: total[id]}
		if id < len(last.Seen) {
			s.Time = last.Seen[id].Time
		}
		r.index[key] = len(r.seen)
		r.seen = append(r.seen, s)
		return len(r.seen) - 1
	}
	for i, e := range page {
		r.page[i] = add(e.key, cur[i])
	}
	for id, s := range last.Seen {
		add(s.Key, id)
	}
	return r
}

// align finds where the last page (prev, asked with lastLimit) reappears
// in the current one (cur, asked with limit): the smallest k such that
// cur[k:] continues as prev does, and how many such k there are (0: it
// does not reappear). A page that is not full holds the whole log, so the
// whole last page must be on it; a last page that was not full was the
// whole log then, so nothing lies below it; otherwise (a raised limit) the
// page may reach below the last one.
func align(cur, prev []int, lastLimit, limit int) (k0, matches int) {
	pageFull := len(cur) >= limit
	lastFull := len(prev) >= lastLimit
	k0 = -1
	for k := range len(cur) {
		rest := len(cur) - k
		switch {
		case !pageFull && rest < len(prev):
			continue
		case !lastFull && rest > len(prev):
			continue
		}
		m := min(rest, len(prev))
		if !slices.Equal(cur[k:k+m], prev[:m]) {
			continue
		}
		if matches == 0 {
			k0 = k
		}
		matches++
	}
	return k0, matches
}

// countNew judges the page by counting: for each content, the copies
// beyond those the last page held are new, and the newest ones are taken
// to be them. It marks verdicts and returns how many are new.
func countNew(cur, prev []int, verdicts []verdict) int {
	fresh := make(map[int]int, len(cur))
	for _, id := range cur {
		fresh[id]++
	}
	for _, id := range prev {
		fresh[id]--
	}
	n := 0
	for i, id := range cur {
		if fresh[id] > 0 {
			fresh[id]--
			verdicts[i].isNew = true
			n++
		}
	}
	return n
}

// prune drops the records of content no longer on the page that are older
// than the second of newest: no copy can be written into a second already
// past (short of a clock stepping back), so their numbering is no longer
// needed. What is kept is bounded by the entries of one second.
func prune(r *diffResult, newest time.Time) {
	since := newest.Truncate(time.Second)
	onPage := make([]bool, len(r.seen))
	for _, at := range r.page {
		onPage[at] = true
	}
	keep := make([]int, len(r.seen)) // old index -> new index
	out := r.seen[:0]
	for i, s := range r.seen {
		if !onPage[i] && (s.Time.IsZero() || s.Time.Before(since)) {
			keep[i] = -1
			delete(r.index, s.Key)
			continue
		}
		keep[i] = len(out)
		r.index[s.Key] = len(out)
		out = append(out, s)
	}
	r.seen = out
	for i, at := range r.page {
		r.page[i] = keep[at]
	}
}
