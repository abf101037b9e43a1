package elastictest

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Point in time, sorting and search_after, as Elasticsearch 8 documents
// them (the point in time API and "Paginate search results"): a PIT is a
// snapshot of its target's documents taken when it is opened, searched
// through POST /_search with "pit" and no index in the path, and kept for
// keep_alive after each use. With a PIT every search is sorted with the
// _shard_doc tiebreaker (shard index in the PIT << 32 | Lucene doc id),
// added implicitly after the sort the request gives (after _score when
// it gives none), and each hit carries its sort values for search_after.
//
// The emulation has one shard per index, numbered in index name order,
// and a shard's Lucene doc ids follow arrival order (an updated document
// moves to the end, as a reindexed one does). Sorting is emulated on the
// metadata fields _index, _doc, _shard_doc and _score (every match_all
// hit scores 1).

// pointInTime is an open PIT.
type pointInTime struct {
	keepAlive time.Duration
	expires   time.Time
	shards    []shardSnapshot
}

// shardSnapshot is an index's documents as they were, in doc id order.
type shardSnapshot struct {
	index string
	ids   []string
	docs  []*doc // documents are never modified in place, only replaced
}

func snapshot(idx []*index) []shardSnapshot {
	out := make([]shardSnapshot, len(idx))
	for i, ix := range idx {
		sh := shardSnapshot{index: ix.name, ids: make([]string, 0, len(ix.docs))}
		for id := range ix.docs {
			sh.ids = append(sh.ids, id)
		}
		slices.SortFunc(sh.ids, func(a, b string) int { return cmp.Compare(ix.docs[a].seqNo, ix.docs[b].seqNo) })
		for _, id := range sh.ids {
			sh.docs = append(sh.docs, ix.docs[id])
		}
		out[i] = sh
	}
	return out
}

// PointsInTime is the number of open points in time, expired ones left
// out.
func (s *Server) PointsInTime() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.expirePITs(time.Now())
	return len(s.st.pits)
}

func (st *store) expirePITs(now time.Time) {
	for id, p := range st.pits {
		if now.After(p.expires) {
			delete(st.pits, id)
		}
	}
}

// timeValue is Elasticsearch's time unit syntax.
var timeValue = regexp.MustCompile(`^([0-9]+)(d|h|m|s|ms|micros|nanos)$`)

func parseKeepAlive(v string) (time.Duration, error) {
	m := timeValue.FindStringSubmatch(strings.TrimSpace(v))
	if m == nil {
		return 0, errStatus(http.StatusBadRequest, "parse_exception",
			"failed to parse setting [keep_alive] with value [%s] as a time value: unit is missing or unrecognized", v)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, errStatus(http.StatusBadRequest, "parse_exception", "failed to parse [%s]", v)
	}
	unit := map[string]time.Duration{"d": 24 * time.Hour, "h": time.Hour, "m": time.Minute, "s": time.Second,
		"ms": time.Millisecond, "micros": time.Microsecond, "nanos": time.Nanosecond}[m[2]]
	return time.Duration(n) * unit, nil
}

func validationError(reason string) *statusError {
	return errStatus(http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: %s;", reason)
}

// openPIT serves POST /{target}/_pit?keep_alive=...
func (s *Server) openPIT(w http.ResponseWriter, r *http.Request, target string) {
	q := r.URL.Query()
	if q.Get("keep_alive") == "" {
		writeStatusError(w, validationError("[keep_alive] is not specified"))
		return
	}
	ka, err := parseKeepAlive(q.Get("keep_alive"))
	if err != nil {
		writeStatusError(w, err)
		return
	}
	var b [24]byte
	_, _ = rand.Read(b[:])
	id := base64.URLEncoding.EncodeToString(b[:])
	s.mu.Lock()
	idx, err := s.st.resolve(target, q.Get("ignore_unavailable") == "true")
	if err != nil {
		s.mu.Unlock()
		writeStatusError(w, err)
		return
	}
	now := time.Now()
	s.st.expirePITs(now)
	if s.st.pits == nil {
		s.st.pits = map[string]*pointInTime{}
	}
	s.st.pits[id] = &pointInTime{keepAlive: ka, expires: now.Add(ka), shards: snapshot(idx)}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "_shards": shardCounts(len(idx))})
}

// closePIT serves DELETE /_pit with {"id": ...}.
func (s *Server) closePIT(w http.ResponseWriter, body []byte) {
	var req struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.ID == "" {
		writeStatusError(w, validationError("point in time id is missing"))
		return
	}
	s.mu.Lock()
	s.st.expirePITs(time.Now())
	_, ok := s.st.pits[req.ID]
	delete(s.st.pits, req.ID)
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"succeeded": true, "num_freed": 0})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"succeeded": true, "num_freed": 1})
}

func shardCounts(n int) map[string]int {
	return map[string]int{"total": n, "successful": n, "skipped": 0, "failed": 0}
}

// sortedBody is what a search with a PIT, a sort or search_after reads.
type sortedBody struct {
	Size           *int                       `json:"size"`
	From           *int                       `json:"from"`
	Query          map[string]json.RawMessage `json:"query"`
	Sort           json.RawMessage            `json:"sort"`
	SearchAfter    []json.RawMessage          `json:"search_after"`
	TrackTotalHits json.RawMessage            `json:"track_total_hits"`
	PIT            *struct {
		ID        string `json:"id"`
		KeepAlive string `json:"keep_alive"`
	} `json:"pit"`
}

// sortField is one sort key.
type sortField struct {
	name string
	desc bool
}

// sortedHit is a document with its sort key parts.
type sortedHit struct {
	shard    int
	doc      int
	index    string
	id       string
	source   []byte
	shardDoc int64
}

func (h *sortedHit) value(f string) any {
	switch f {
	case "_index":
		return h.index
	case "_doc":
		return h.doc
	case "_shard_doc":
		return h.shardDoc
	}
	return 1.0 // _score
}

// searchSorted serves a search that uses a PIT, a sort or search_after,
// and reports whether it did; other searches are search's.
func (s *Server) searchSorted(w http.ResponseWriter, r *http.Request, target string, body []byte) bool {
	var sb sortedBody
	if len(bytes.TrimSpace(body)) == 0 || json.Unmarshal(body, &sb) != nil {
		return false
	}
	if sb.PIT == nil && len(sb.Sort) == 0 && sb.SearchAfter == nil {
		return false
	}
	if err := s.sortedSearch(w, r, target, &sb); err != nil {
		writeStatusError(w, err)
	}
	return true
}

func (s *Server) sortedSearch(w http.ResponseWriter, r *http.Request, target string, sb *sortedBody) error {
	for k := range sb.Query {
		if k != "match_all" {
			return errStatus(http.StatusBadRequest, "parsing_exception", "elastictest emulates only the match_all query, got [%s]", k)
		}
	}
	q := r.URL.Query()
	size, from := 10, 0
	if sb.Size != nil {
		size = *sb.Size
	}
	if sb.From != nil {
		from = *sb.From
	}
	for key, dst := range map[string]*int{"size": &size, "from": &from} {
		if v := q.Get(key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return errStatus(http.StatusBadRequest, "illegal_argument_exception", "[%s] must be a non-negative integer, got [%s]", key, v)
			}
			*dst = n
		}
	}
	sorts, err := parseSort(sb.Sort)
	if err != nil {
		return err
	}
	hasIndex := strings.Trim(r.URL.Path, "/") != "_search"
	switch {
	case sb.PIT != nil && hasIndex:
		return validationError("[indices] cannot be used with point in time. Do not specify any index with point in time.")
	case sb.PIT == nil && slices.ContainsFunc(sorts, func(f sortField) bool { return f.name == "_shard_doc" }):
		return validationError("[_shard_doc] sort field cannot be used without [point in time]")
	case sb.SearchAfter != nil && from > 0:
		return validationError("[from] parameter must be set to 0 when [search_after] is used")
	case size < 0 || from < 0 || from+size > 10000:
		return errStatus(http.StatusBadRequest, "illegal_argument_exception", "Result window is too large, from + size must be less than or equal to: [10000]")
	}
	if sb.PIT != nil {
		// The tiebreaker every PIT search gets, after _score when no sort
		// is given.
		if len(sorts) == 0 {
			sorts = append(sorts, sortField{name: "_score", desc: true})
		}
		if !slices.ContainsFunc(sorts, func(f sortField) bool { return f.name == "_shard_doc" }) {
			sorts = append(sorts, sortField{name: "_shard_doc"})
		}
	}
	if sb.SearchAfter != nil {
		if len(sorts) == 0 {
			return errStatus(http.StatusBadRequest, "illegal_argument_exception", "`sort` must be specified when `search_after` is used.")
		}
		if len(sb.SearchAfter) != len(sorts) {
			return errStatus(http.StatusBadRequest, "illegal_argument_exception", "search_after has %d value(s) but sort has %d.", len(sb.SearchAfter), len(sorts))
		}
	}
	after, err := parseAfter(sb.SearchAfter, sorts)
	if err != nil {
		return err
	}

	var shards []shardSnapshot
	now := time.Now()
	s.mu.Lock()
	s.st.expirePITs(now)
	pitID := ""
	if sb.PIT != nil {
		p, ok := s.st.pits[sb.PIT.ID]
		if !ok {
			s.mu.Unlock()
			writeJSON(w, http.StatusNotFound, map[string]any{"status": http.StatusNotFound, "error": map[string]any{
				"type": "search_phase_execution_exception", "reason": "all shards failed", "phase": "query", "grouped": true,
				"root_cause": []esError{{Type: "search_context_missing_exception", Reason: fmt.Sprintf("No search context found for id [%s]", sb.PIT.ID)}},
			}})
			return nil
		}
		if sb.PIT.KeepAlive != "" {
			ka, err := parseKeepAlive(sb.PIT.KeepAlive)
			if err != nil {
				s.mu.Unlock()
				return err
			}
			p.keepAlive = ka
		}
		p.expires = now.Add(p.keepAlive)
		shards, pitID = p.shards, sb.PIT.ID
	} else {
		idx, err := s.st.resolve(target, q.Get("ignore_unavailable") == "true")
		if err != nil {
			s.mu.Unlock()
			return err
		}
		shards = snapshot(idx)
	}
	s.mu.Unlock()

	var all []sortedHit
	for si, sh := range shards {
		for di, d := range sh.docs {
			all = append(all, sortedHit{shard: si, doc: di, index: sh.index, id: sh.ids[di], source: d.source, shardDoc: int64(si)<<32 | int64(di)})
		}
	}
	total := len(all)
	cmpHits := func(a, b *sortedHit) int {
		for _, f := range sorts {
			c := compareValues(a.value(f.name), b.value(f.name))
			if f.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		// Equal keys: the shard, then the doc id, as Elasticsearch's merge.
		return cmp.Or(cmp.Compare(a.shard, b.shard), cmp.Compare(a.doc, b.doc))
	}
	slices.SortStableFunc(all, func(a, b sortedHit) int { return cmpHits(&a, &b) })
	if after != nil {
		all = slices.DeleteFunc(all, func(h sortedHit) bool { return !afterKey(&h, sorts, after) })
	}
	page := all[min(from, len(all)):min(from+size, len(all))]

	scored := slices.ContainsFunc(sorts, func(f sortField) bool { return f.name == "_score" })
	hits := make([]map[string]any, len(page))
	for i := range page {
		h := &page[i]
		var score any
		if scored {
			score = 1.0
		}
		values := make([]any, len(sorts))
		for k, f := range sorts {
			values[k] = h.value(f.name)
		}
		hits[i] = map[string]any{"_index": h.index, "_id": h.id, "_score": score, "_source": json.RawMessage(h.source), "sort": values}
	}
	var maxScore any
	if scored && total > 0 {
		maxScore = 1.0
	}
	hitsObj := map[string]any{"max_score": maxScore, "hits": hits}
	if string(sb.TrackTotalHits) != "false" {
		hitsObj["total"] = map[string]any{"value": total, "relation": "eq"}
	}
	resp := map[string]any{"took": 0, "timed_out": false, "_shards": shardCounts(len(shards)), "hits": hitsObj}
	if pitID != "" {
		resp["pit_id"] = pitID
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// parseSort reads "sort": a field name, {"field": "asc"}, {"field":
// {"order": "desc"}}, or an array of those.
func parseSort(raw json.RawMessage) ([]sortField, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var items []json.RawMessage
	if raw[0] == '[' {
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, errStatus(http.StatusBadRequest, "parsing_exception", "malformed sort: %v", err)
		}
	} else {
		items = []json.RawMessage{raw}
	}
	var out []sortField
	for _, it := range items {
		var name, order string
		var asString string
		var asObject map[string]json.RawMessage
		switch {
		case json.Unmarshal(it, &asString) == nil:
			name = asString
		case json.Unmarshal(it, &asObject) == nil && len(asObject) == 1:
			for k, v := range asObject {
				name = k
				var o struct {
					Order string `json:"order"`
				}
				if json.Unmarshal(v, &order) != nil {
					if err := json.Unmarshal(v, &o); err != nil {
						return nil, errStatus(http.StatusBadRequest, "parsing_exception", "malformed sort for [%s]", k)
					}
					order = o.Order
				}
			}
		default:
			return nil, errStatus(http.StatusBadRequest, "parsing_exception", "malformed sort: %s", it)
		}
		switch name {
		case "_index", "_doc", "_shard_doc", "_score":
		default:
			return nil, errStatus(http.StatusBadRequest, "illegal_argument_exception",
				"elastictest emulates sorting only on _index, _doc, _shard_doc and _score, got [%s]", name)
		}
		f := sortField{name: name, desc: name == "_score"}
		switch strings.ToLower(order) {
		case "":
		case "asc":
			f.desc = false
		case "desc":
			f.desc = true
		default:
			return nil, errStatus(http.StatusBadRequest, "illegal_argument_exception", "Unknown SortOrder [%s]", order)
		}
		out = append(out, f)
	}
	return out, nil
}

// parseAfter reads search_after values as the sort fields' types.
func parseAfter(raw []json.RawMessage, sorts []sortField) ([]any, error) {
	if raw == nil {
		return nil, nil
	}
	out := make([]any, len(raw))
	for i, v := range raw {
		f := sorts[i].name
		bad := errStatus(http.StatusBadRequest, "illegal_argument_exception",
			"Failed to parse search_after value for field [%s].", f)
		switch f {
		case "_index":
			var s string
			if json.Unmarshal(v, &s) != nil {
				return nil, bad
			}
			out[i] = s
		case "_doc":
			var n int
			if json.Unmarshal(v, &n) != nil {
				return nil, bad
			}
			out[i] = n
		case "_shard_doc":
			var n int64
			if json.Unmarshal(v, &n) != nil {
				return nil, bad
			}
			out[i] = n
		default:
			var x float64
			if json.Unmarshal(v, &x) != nil {
				return nil, bad
			}
			out[i] = x
		}
	}
	return out, nil
}

// afterKey reports whether h sorts strictly after the search_after key.
func afterKey(h *sortedHit, sorts []sortField, after []any) bool {
	for i, f := range sorts {
		c := compareValues(h.value(f.name), after[i])
		if f.desc {
			c = -c
		}
		if c != 0 {
			return c > 0
		}
	}
	return false
}

func compareValues(a, b any) int {
	switch x := a.(type) {
	case string:
		return strings.Compare(x, b.(string))
	case int:
		return cmp.Compare(x, b.(int))
	case int64:
		return cmp.Compare(x, b.(int64))
	case float64:
		return cmp.Compare(x, b.(float64))
	}
	return 0
}
