package elastictest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fastjson"
)

// bulkAction is one action of a bulk body.
type bulkAction struct {
	op       string // create, index, delete or update
	index    string
	id       string
	pipeline string
	source   []byte
}

// bulkMeta lists the action metadata Elasticsearch accepts; any other key
// fails the whole request, as it does there.
var bulkMeta = map[string]bool{
	"_index": true, "_id": true, "pipeline": true, "routing": true, "if_seq_no": true, "if_primary_term": true,
	"version": true, "version_type": true, "require_alias": true, "require_data_stream": true,
	"dynamic_templates": true, "op_type": true, "list_executed_pipelines": true, "retry_on_conflict": true, "_source": true,
}

// parseBulk reads an NDJSON bulk body. Errors are request-level, as
// Elasticsearch gives them before it applies any item.
func parseBulk(body []byte, defIndex, defPipeline string) ([]bulkAction, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errStatus(http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: no requests added;")
	}
	if body[len(body)-1] != '\n' {
		return nil, errStatus(http.StatusBadRequest, "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]")
	}
	var lines [][]byte
	for len(body) > 0 {
		i := bytes.IndexByte(body, '\n')
		lines = append(lines, bytes.TrimRight(body[:i], "\r"))
		body = body[i+1:]
	}
	var actions []bulkAction
	var problems []string
	var p fastjson.Parser
	for ln := 0; ln < len(lines); ln++ {
		line := lines[ln]
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		v, err := p.ParseBytes(line)
		var outer *fastjson.Object
		if err == nil {
			outer, err = v.Object()
		}
		if err != nil || outer.Len() != 1 {
			return nil, errStatus(http.StatusBadRequest, "illegal_argument_exception",
				"Malformed action/metadata line [%d], expected START_OBJECT with a single action", ln+1)
		}
		var a bulkAction
		var metaV *fastjson.Value
		outer.Visit(func(k []byte, v *fastjson.Value) { a.op, metaV = string(k), v })
		switch a.op {
		case "create", "index", "delete", "update":
		default:
			return nil, errStatus(http.StatusBadRequest, "illegal_argument_exception",
				"Malformed action/metadata line [%d], expected one of [create, delete, index, update] but found [%s]", ln+1, a.op)
		}
		meta, err := metaV.Object()
		if err != nil {
			return nil, errStatus(http.StatusBadRequest, "illegal_argument_exception", "Malformed action/metadata line [%d], expected START_OBJECT", ln+1)
		}
		var unknown string
		meta.Visit(func(k []byte, _ *fastjson.Value) {
			if !bulkMeta[string(k)] && unknown == "" {
				unknown = string(k)
			}
		})
		if unknown != "" {
			return nil, errStatus(http.StatusBadRequest, "illegal_argument_exception", "Action/metadata line [%d] contains an unknown parameter [%s]", ln+1, unknown)
		}
		a.index, a.pipeline = defIndex, defPipeline
		str := func(key string, dst *string) bool {
			v := meta.Get(key)
			if v == nil {
				return false
			}
			if b, err := v.StringBytes(); err == nil {
				*dst = string(b)
			} else {
				*dst = string(v.MarshalTo(nil)) // numbers are accepted as ids
			}
			return true
		}
		str("_index", &a.index)
		str("pipeline", &a.pipeline)
		var opType string
		if str("op_type", &opType) && a.op == "index" && opType == "create" {
			a.op = "create"
		}
		hasID := str("_id", &a.id)
		n := len(actions) + 1
		switch {
		case a.index == "":
			problems = append(problems, "index is missing")
		case hasID && a.id == "":
			problems = append(problems, "if _id is specified it must not be empty")
		case len(a.id) > 512:
			problems = append(problems, fmt.Sprintf("id [%s] is too long, must be no longer than 512 bytes but was: %d", a.id, len(a.id)))
		case (a.op == "delete" || a.op == "update") && !hasID:
			problems = append(problems, "id is missing")
		}
		if a.op != "delete" {
			ln++
			if ln >= len(lines) {
				problems = append(problems, fmt.Sprintf("source is missing (action %d)", n))
				break
			}
			a.source = lines[ln]
		}
		actions = append(actions, a)
	}
	if len(problems) > 0 {
		var b strings.Builder
		b.WriteString("Validation Failed: ")
		for i, p := range problems {
			fmt.Fprintf(&b, "%d: %s;", i+1, p)
		}
		return nil, errStatus(http.StatusBadRequest, "action_request_validation_exception", "%s", b.String())
	}
	return actions, nil
}

type shardsInfo struct {
	Total      int `json:"total"`
	Successful int `json:"successful"`
	Failed     int `json:"failed"`
}

type bulkItem struct {
	Index       string      `json:"_index"`
	ID          string      `json:"_id"`
	Version     int64       `json:"_version,omitempty"`
	Result      string      `json:"result,omitempty"`
	Shards      *shardsInfo `json:"_shards,omitempty"`
	SeqNo       *int64      `json:"_seq_no,omitempty"`
	PrimaryTerm *int64      `json:"_primary_term,omitempty"`
	Status      int         `json:"status"`
	Error       *esError    `json:"error,omitempty"`
}

type bulkResponse struct {
	Took   int64                  `json:"took"`
	Errors bool                   `json:"errors"`
	Items  []map[string]*bulkItem `json:"items"`
}

func (s *Server) bulk(w http.ResponseWriter, r *http.Request, defIndex string, body []byte) {
	start := time.Now()
	q := r.URL.Query()
	includeSource := q.Get("include_source_on_error") != "false"
	actions, err := parseBulk(body, defIndex, q.Get("pipeline"))
	if err != nil {
		writeStatusError(w, err)
		return
	}
	resp := bulkResponse{Items: make([]map[string]*bulkItem, len(actions))}
	var p fastjson.Parser
	s.mu.Lock()
	s.stats.BulkRequests++
	s.stats.BulkItems += len(actions)
	for i := range actions {
		it := s.apply(&p, &actions[i], includeSource, start)
		if it.Error != nil {
			resp.Errors = true
		}
		resp.Items[i] = map[string]*bulkItem{actions[i].op: it}
	}
	s.mu.Unlock()
	resp.Took = time.Since(start).Milliseconds()
	writeJSON(w, http.StatusOK, resp)
}

func itemError(it *bulkItem, err error) *bulkItem {
	if se, ok := err.(*statusError); ok {
		e := se.err
		it.Status, it.Error = se.status, &e
		return it
	}
	it.Status, it.Error = http.StatusInternalServerError, &esError{Type: "exception", Reason: err.Error()}
	return it
}

// apply performs one action; s.mu is held.
func (s *Server) apply(p *fastjson.Parser, a *bulkAction, includeSource bool, now time.Time) *bulkItem {
	it := &bulkItem{Index: a.index, ID: a.id}
	if s.rejectItems > 0 {
		s.rejectItems--
		typ, reason := faultError(s.rejectStatus)
		it.Status = s.rejectStatus
		it.Error = &esError{Type: typ, Reason: reason, Index: a.index, IndexUUID: "_na_"}
		return it
	}
	if a.op == "update" {
		return itemError(it, errStatus(http.StatusBadRequest, "illegal_argument_exception", "update actions are not emulated by elastictest"))
	}
	if a.pipeline != "" && a.pipeline != "_none" {
		if _, ok := s.st.pipelines[a.pipeline]; !ok {
			return itemError(it, errStatus(http.StatusBadRequest, "illegal_argument_exception", "pipeline with id [%s] does not exist", a.pipeline))
		}
	}
	ix, err := s.st.target(a.index, a.op, now)
	if err != nil {
		return itemError(it, err)
	}
	if a.id == "" {
		a.id = newUUID()[:20]
		it.ID = a.id
	}
	it.Index = ix.name
	ok := func(status int, result string, version int64) *bulkItem {
		seq, term := ix.seqNo, int64(1)
		ix.seqNo++
		it.Status, it.Result, it.Version = status, result, version
		it.Shards = &shardsInfo{Total: 2, Successful: 1}
		it.SeqNo, it.PrimaryTerm = &seq, &term
		return it
	}
	existing, exists := ix.docs[a.id]
	switch a.op {
	case "delete":
		if !exists {
			return ok(http.StatusNotFound, "not_found", 1)
		}
		delete(ix.docs, a.id)
		return ok(http.StatusOK, "deleted", existing.version+1)
	case "create":
		if exists {
			e := errStatus(http.StatusConflict, "version_conflict_engine_exception",
				"[%s]: version conflict, document already exists (current version [%d])", a.id, existing.version)
			e.err.IndexUUID, e.err.Shard, e.err.Index = ix.uuid, "0", ix.name
			return itemError(it, e)
		}
	}
	added, perr := ix.mapping.check(p, a.source, a.id, includeSource, ix.stream != "")
	if perr != nil {
		it.Status, it.Error = http.StatusBadRequest, perr
		return it
	}
	for k, f := range added {
		ix.mapping.fields[k] = f
	}
	d := &doc{source: slices.Clone(a.source), version: 1, seqNo: ix.seqNo}
	if exists {
		d.version = existing.version + 1
		ix.docs[a.id] = d
		return ok(http.StatusOK, "updated", d.version)
	}
	ix.docs[a.id] = d
	return ok(http.StatusCreated, "created", 1)
}

// searchBody is what the emulation reads of a search or count body.
type searchBody struct {
	Size  *int                       `json:"size"`
	From  *int                       `json:"from"`
	Query map[string]json.RawMessage `json:"query"`
}

func (s *Server) search(w http.ResponseWriter, r *http.Request, target string, count bool, body []byte) {
	if !count && s.searchSorted(w, r, target, body) {
		return
	}
	q := r.URL.Query()
	size, from := 10, 0
	var sb searchBody
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &sb); err != nil {
			writeError(w, http.StatusBadRequest, "parsing_exception", "cannot parse search body: "+err.Error())
			return
		}
	}
	for k := range sb.Query {
		if k != "match_all" {
			writeError(w, http.StatusBadRequest, "parsing_exception", fmt.Sprintf("elastictest emulates only the match_all query, got [%s]", k))
			return
		}
	}
	if q.Get("q") != "" {
		writeError(w, http.StatusBadRequest, "parsing_exception", "elastictest emulates only the match_all query, got q=")
		return
	}
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
				writeError(w, http.StatusBadRequest, "illegal_argument_exception", fmt.Sprintf("[%s] must be a non-negative integer, got [%s]", key, v))
				return
			}
			*dst = n
		}
	}
	if size < 0 || from < 0 || from+size > 10000 {
		writeError(w, http.StatusBadRequest, "illegal_argument_exception", "Result window is too large, from + size must be less than or equal to: [10000]")
		return
	}
	s.mu.Lock()
	idx, err := s.st.resolve(target, q.Get("ignore_unavailable") == "true")
	if err != nil {
		s.mu.Unlock()
		writeStatusError(w, err)
		return
	}
	shards := map[string]int{"total": len(idx), "successful": len(idx), "skipped": 0, "failed": 0}
	if count {
		n := 0
		for _, ix := range idx {
			n += len(ix.docs)
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"count": n, "_shards": shards})
		return
	}
	all := s.st.hits(idx)
	s.mu.Unlock()
	total := len(all)
	page := all[min(from, total):min(from+size, total)]
	type hit struct {
		Hit
		Score float64 `json:"_score"`
	}
	hits := make([]hit, len(page))
	for i, h := range page {
		hits[i] = hit{Hit: h, Score: 1}
	}
	var maxScore any
	if total > 0 {
		maxScore = 1.0
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"took": 0, "timed_out": false, "_shards": shards,
		"hits": map[string]any{"total": map[string]any{"value": total, "relation": "eq"}, "max_score": maxScore, "hits": hits},
	})
}

func (s *Server) getDoc(w http.ResponseWriter, name, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx, err := s.st.resolve(name, false)
	if err != nil {
		writeStatusError(w, err)
		return
	}
	for _, ix := range idx {
		if d, ok := ix.docs[id]; ok {
			writeJSON(w, http.StatusOK, map[string]any{"_index": ix.name, "_id": id, "_version": d.version,
				"_seq_no": d.seqNo, "_primary_term": 1, "found": true, "_source": json.RawMessage(d.source)})
			return
		}
	}
	writeJSON(w, http.StatusNotFound, map[string]any{"_index": name, "_id": id, "found": false})
}

// index serves DELETE /{names} and HEAD /{name}.
func (s *Server) index(w http.ResponseWriter, r *http.Request, names string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Method == http.MethodHead {
		_, isIndex := s.st.indices[names]
		_, isStream := s.st.streams[names]
		if isIndex || isStream {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusNotFound)
		}
		return
	}
	lenient := r.URL.Query().Get("ignore_unavailable") == "true"
	var del []string
	for n := range strings.SplitSeq(names, ",") {
		if n == "_all" || strings.Contains(n, "*") {
			// action.destructive_requires_name defaults to true.
			writeError(w, http.StatusBadRequest, "illegal_argument_exception", "Wildcard expressions or all indices are not allowed")
			return
		}
		ix, ok := s.st.indices[n]
		if !ok {
			if lenient {
				continue
			}
			writeStatusError(w, notFound(n))
			return
		}
		if ix.stream != "" {
			writeError(w, http.StatusBadRequest, "illegal_argument_exception",
				fmt.Sprintf("index [%s] is the write index for data stream [%s] and cannot be deleted", n, ix.stream))
			return
		}
		del = append(del, n)
	}
	for _, n := range del {
		delete(s.st.indices, n)
	}
	writeJSON(w, http.StatusOK, map[string]bool{"acknowledged": true})
}

func names(pattern string, all []string) (out []string, missing string) {
	for p := range strings.SplitSeq(pattern, ",") {
		found := false
		for _, n := range all {
			if match(p, n) {
				found = true
				if !slices.Contains(out, n) {
					out = append(out, n)
				}
			}
		}
		if !found && !strings.Contains(p, "*") && missing == "" {
			missing = p
		}
	}
	slices.Sort(out)
	return out, missing
}

func (s *Server) indexTemplate(w http.ResponseWriter, r *http.Request, name string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.Method {
	case http.MethodPut, http.MethodPost:
		if err := s.st.putTemplate(name, body); err != nil {
			writeStatusError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]bool{"acknowledged": true})
	case http.MethodGet, http.MethodHead:
		all := make([]string, 0, len(s.st.templates))
		for n := range s.st.templates {
			all = append(all, n)
		}
		found, missing := names(name, all)
		if missing != "" {
			writeError(w, http.StatusNotFound, "resource_not_found_exception", fmt.Sprintf("index template matching [%s] not found", missing))
			return
		}
		list := make([]map[string]any, len(found))
		for i, n := range found {
			list[i] = map[string]any{"name": n, "index_template": json.RawMessage(s.st.templates[n].raw)}
		}
		writeJSON(w, http.StatusOK, map[string]any{"index_templates": list})
	case http.MethodDelete:
		if _, ok := s.st.templates[name]; !ok {
			writeError(w, http.StatusNotFound, "resource_not_found_exception", fmt.Sprintf("index_template [%s] missing", name))
			return
		}
		var users []string
		for _, ds := range s.st.streams {
			if ds.template == name {
				users = append(users, ds.name)
			}
		}
		if len(users) > 0 {
			slices.Sort(users)
			writeError(w, http.StatusBadRequest, "illegal_argument_exception",
				fmt.Sprintf("unable to remove composable templates [%s] as they are in use by a data streams %v", name, users))
			return
		}
		delete(s.st.templates, name)
		writeJSON(w, http.StatusOK, map[string]bool{"acknowledged": true})
	default:
		writeError(w, http.StatusMethodNotAllowed, "illegal_argument_exception", "method not allowed")
	}
}

func (s *Server) dataStream(w http.ResponseWriter, r *http.Request, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := make([]string, 0, len(s.st.streams))
	for n := range s.st.streams {
		all = append(all, n)
	}
	switch r.Method {
	case http.MethodPut:
		if _, err := s.st.createDataStream(name, time.Now()); err != nil {
			writeStatusError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]bool{"acknowledged": true})
	case http.MethodGet:
		found, missing := names(name, all)
		if missing != "" {
			writeStatusError(w, notFound(missing))
			return
		}
		list := make([]map[string]any, len(found))
		for i, n := range found {
			ds := s.st.streams[n]
			var idx []map[string]string
			for _, b := range ds.indices {
				idx = append(idx, map[string]string{"index_name": b, "index_uuid": s.st.indices[b].uuid})
			}
			list[i] = map[string]any{"name": n, "timestamp_field": map[string]string{"name": "@timestamp"}, "indices": idx,
				"generation": len(ds.indices), "status": "GREEN", "template": ds.template, "hidden": false, "system": false}
		}
		writeJSON(w, http.StatusOK, map[string]any{"data_streams": list})
	case http.MethodDelete:
		found, missing := names(name, all)
		if missing != "" {
			writeStatusError(w, notFound(missing))
			return
		}
		for _, n := range found {
			for _, b := range s.st.streams[n].indices {
				delete(s.st.indices, b)
			}
			delete(s.st.streams, n)
		}
		writeJSON(w, http.StatusOK, map[string]bool{"acknowledged": true})
	default:
		writeError(w, http.StatusMethodNotAllowed, "illegal_argument_exception", "method not allowed")
	}
}

func (s *Server) pipeline(w http.ResponseWriter, r *http.Request, id string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.Method {
	case http.MethodPut:
		var p struct {
			Processors []json.RawMessage `json:"processors"`
		}
		if err := json.Unmarshal(body, &p); err != nil || p.Processors == nil {
			writeError(w, http.StatusBadRequest, "parse_exception", "[processors] required property is missing")
			return
		}
		s.st.pipelines[id] = slices.Clone(body)
		writeJSON(w, http.StatusOK, map[string]bool{"acknowledged": true})
	case http.MethodGet:
		p, ok := s.st.pipelines[id]
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]any{})
			return
		}
		writeJSON(w, http.StatusOK, map[string]json.RawMessage{id: p})
	case http.MethodDelete:
		if _, ok := s.st.pipelines[id]; !ok {
			writeError(w, http.StatusNotFound, "resource_not_found_exception", fmt.Sprintf("pipeline [%s] is missing", id))
			return
		}
		delete(s.st.pipelines, id)
		writeJSON(w, http.StatusOK, map[string]bool{"acknowledged": true})
	default:
		writeError(w, http.StatusMethodNotAllowed, "illegal_argument_exception", "method not allowed")
	}
}
