package elastictest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// store is the cluster state. The Server's mutex guards it.
type store struct {
	indices   map[string]*index
	streams   map[string]*dataStream
	templates map[string]*template
	pipelines map[string]json.RawMessage
	pits      map[string]*pointInTime // made by the first openPIT
}

type index struct {
	name    string
	uuid    string
	hidden  bool
	stream  string // the data stream this backs, if any
	docs    map[string]*doc
	seqNo   int64
	mapping *mapping
}

type doc struct {
	source  []byte
	version int64
	seqNo   int64
}

type dataStream struct {
	name     string
	template string
	indices  []string // backing indices, the write index last
}

type template struct {
	name       string
	raw        json.RawMessage
	patterns   []string
	priority   int64
	dataStream bool
	// mapping is parsed from template.mappings; new indices start from a
	// copy.
	mapping *mapping
}

func newStore() *store {
	st := &store{
		indices:   map[string]*index{},
		streams:   map[string]*dataStream{},
		templates: map[string]*template{},
		pipelines: map[string]json.RawMessage{},
	}
	// A real cluster ships this template, which is why a data stream named
	// logs-<dataset>-<namespace> works without any setup, and why another
	// template for such names needs a priority other than 100.
	raw := json.RawMessage(`{"index_patterns":["logs-*-*"],"priority":100,"data_stream":{"hidden":false},` +
		`"template":{"mappings":{"properties":{"@timestamp":{"type":"date"},"message":{"type":"match_only_text"},` +
		`"data_stream":{"properties":{"type":{"type":"constant_keyword"},"dataset":{"type":"constant_keyword"},"namespace":{"type":"constant_keyword"}}}}}},` +
		`"_meta":{"description":"default logs template installed by x-pack (emulated)","managed":true}}`)
	t, err := parseTemplate("logs", raw)
	if err != nil {
		panic("elastictest: built-in logs template: " + err.Error()) // a constant: a bug if it fails
	}
	st.templates["logs"] = t
	return st
}

// statusError is an error Elasticsearch answers with a status.
type statusError struct {
	status int
	err    esError
}

func (e *statusError) Error() string { return e.err.Type + ": " + e.err.Reason }

func errStatus(status int, typ, format string, args ...any) *statusError {
	return &statusError{status: status, err: esError{Type: typ, Reason: fmt.Sprintf(format, args...)}}
}

func notFound(name string) *statusError {
	e := errStatus(http.StatusNotFound, "index_not_found_exception", "no such index [%s]", name)
	e.err.Index, e.err.IndexUUID = name, "_na_"
	return e
}

func writeStatusError(w http.ResponseWriter, err error) {
	var se *statusError
	if errors.As(err, &se) {
		e := se.err
		writeErrorValue(w, se.status, &e)
		return
	}
	writeError(w, http.StatusInternalServerError, "exception", err.Error())
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// match reports whether name matches an Elasticsearch wildcard pattern,
// where '*' is the only wildcard.
func match(pattern, name string) bool {
	i := strings.IndexByte(pattern, '*')
	if i < 0 {
		return pattern == name
	}
	if !strings.HasPrefix(name, pattern[:i]) {
		return false
	}
	name, pattern = name[i:], pattern[i+1:]
	for j := 0; j <= len(name); j++ {
		if match(pattern, name[j:]) {
			return true
		}
	}
	return false
}

// resolve turns a target expression (comma-separated names and patterns,
// _all) into concrete indices. A wildcard skips hidden indices unless it
// starts with '.', and matches data streams, standing for their backing
// indices. A missing concrete name is an index_not_found_exception unless
// lenient.
func (st *store) resolve(target string, lenient bool) ([]*index, error) {
	seen := map[string]bool{}
	var out []*index
	add := func(ix *index) {
		if ix != nil && !seen[ix.name] {
			seen[ix.name] = true
			out = append(out, ix)
		}
	}
	addStream := func(ds *dataStream) {
		for _, n := range ds.indices {
			add(st.indices[n])
		}
	}
	for expr := range strings.SplitSeq(target, ",") {
		expr = strings.TrimSpace(expr)
		switch {
		case expr == "":
			continue
		case expr == "_all" || strings.Contains(expr, "*"):
			if expr == "_all" {
				expr = "*"
			}
			for _, ix := range st.indices {
				if (!ix.hidden || strings.HasPrefix(expr, ".")) && match(expr, ix.name) {
					add(ix)
				}
			}
			for _, ds := range st.streams {
				if match(expr, ds.name) {
					addStream(ds)
				}
			}
		default:
			if ix, ok := st.indices[expr]; ok {
				add(ix)
			} else if ds, ok := st.streams[expr]; ok {
				addStream(ds)
			} else if !lenient {
				return nil, notFound(expr)
			}
		}
	}
	slices.SortFunc(out, func(a, b *index) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

func (st *store) hits(idx []*index) []Hit {
	var out []Hit
	for _, ix := range idx {
		start := len(out)
		for id, d := range ix.docs {
			out = append(out, Hit{Index: ix.name, ID: id, Source: slices.Clone(d.source)})
		}
		part := out[start:]
		slices.SortFunc(part, func(a, b Hit) int {
			sa, sb := ix.docs[a.ID].seqNo, ix.docs[b.ID].seqNo
			switch {
			case sa < sb:
				return -1
			case sa > sb:
				return 1
			}
			return 0
		})
	}
	return out
}

// templateFor returns the highest-priority template matching name, or nil.
func (st *store) templateFor(name string) *template {
	var best *template
	for _, t := range st.templates {
		for _, p := range t.patterns {
			if match(p, name) {
				if best == nil || t.priority > best.priority || (t.priority == best.priority && t.name < best.name) {
					best = t
				}
				break
			}
		}
	}
	return best
}

// validIndexName applies Elasticsearch's rules for index and data stream
// names.
func validIndexName(name string) error {
	bad := func(why string) error {
		e := errStatus(http.StatusBadRequest, "invalid_index_name_exception", "Invalid index name [%s], %s", name, why)
		e.err.Index, e.err.IndexUUID = name, "_na_"
		return e
	}
	switch {
	case name == "":
		return bad("must not be empty")
	case name == "." || name == "..":
		return bad(`must not be '.' or '..'`)
	case strings.ToLower(name) != name:
		return bad("must be lowercase")
	case strings.ContainsAny(name[:1], "-_+"):
		return bad("must not start with '_', '-', or '+'")
	case strings.ContainsAny(name, `\/*?"<>| ,#:`):
		return bad(`must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?, #, :]`)
	case len(name) > 255:
		return bad("index name is too long, (" + fmt.Sprint(len(name)) + " > 255)")
	}
	return nil
}

// target returns the index a write to name goes to, creating an index or
// a data stream as Elasticsearch's auto-creation would.
func (st *store) target(name, op string, now time.Time) (*index, error) {
	if ds, ok := st.streams[name]; ok {
		if op != "create" {
			return nil, errStatus(http.StatusBadRequest, "illegal_argument_exception",
				"only write ops with an op_type of create are allowed in data streams")
		}
		return st.indices[ds.indices[len(ds.indices)-1]], nil
	}
	if ix, ok := st.indices[name]; ok {
		if ix.stream != "" && op != "delete" {
			return nil, errStatus(http.StatusBadRequest, "illegal_argument_exception",
				"index request with op_type=%s and no if_primary_term and if_seq_no set targeting backing indices is disallowed, target corresponding data stream [%s] instead", op, ix.stream)
		}
		return ix, nil
	}
	if err := validIndexName(name); err != nil {
		return nil, err
	}
	t := st.templateFor(name)
	if t != nil && t.dataStream {
		if op != "create" {
			return nil, errStatus(http.StatusBadRequest, "illegal_argument_exception",
				"only write ops with an op_type of create are allowed in data streams")
		}
		ds, err := st.createDataStream(name, now)
		if err != nil {
			return nil, err
		}
		return st.indices[ds.indices[len(ds.indices)-1]], nil
	}
	return st.createIndex(name, t, "", false), nil
}

func (st *store) createIndex(name string, t *template, stream string, hidden bool) *index {
	// Wildcards skip dot-prefixed names as they skip hidden indices.
	hidden = hidden || strings.HasPrefix(name, ".")
	ix := &index{name: name, uuid: newUUID(), hidden: hidden, stream: stream, docs: map[string]*doc{}, mapping: newMapping()}
	if t != nil {
		ix.mapping = t.mapping.clone()
	}
	st.indices[name] = ix
	return ix
}

func (st *store) createDataStream(name string, now time.Time) (*dataStream, error) {
	if _, ok := st.streams[name]; ok {
		return nil, errStatus(http.StatusBadRequest, "resource_already_exists_exception", "data_stream [%s] already exists", name)
	}
	if _, ok := st.indices[name]; ok {
		return nil, errStatus(http.StatusBadRequest, "illegal_argument_exception",
			"data stream [%s] conflicts with index", name)
	}
	if err := validIndexName(name); err != nil {
		return nil, err
	}
	t := st.templateFor(name)
	if t == nil || !t.dataStream {
		return nil, errStatus(http.StatusBadRequest, "illegal_argument_exception",
			"no matching index template found for data stream [%s]", name)
	}
	backing := fmt.Sprintf(".ds-%s-%s-000001", name, now.UTC().Format("2006.01.02"))
	ix := st.createIndex(backing, t, name, true)
	// Every data stream maps @timestamp as a date whatever its template says.
	if f, ok := ix.mapping.fields["@timestamp"]; !ok || f.kind != kindDate {
		ix.mapping.fields["@timestamp"] = field{kind: kindDate, esType: "date"}
	}
	ds := &dataStream{name: name, template: t.name, indices: []string{backing}}
	st.streams[name] = ds
	return ds, nil
}

// templateBody is what the emulation reads of an index template.
type templateBody struct {
	IndexPatterns json.RawMessage  `json:"index_patterns"`
	Priority      *int64           `json:"priority"`
	DataStream    *json.RawMessage `json:"data_stream"`
	ComposedOf    []string         `json:"composed_of"`
	Template      *struct {
		Mappings json.RawMessage `json:"mappings"`
	} `json:"template"`
}

func parseTemplate(name string, raw json.RawMessage) (*template, error) {
	var b templateBody
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, errStatus(http.StatusBadRequest, "x_content_parse_exception", "[index_template] failed to parse: %v", err)
	}
	t := &template{name: name, raw: slices.Clone(raw), mapping: newMapping()}
	if len(b.IndexPatterns) > 0 {
		var one string
		if json.Unmarshal(b.IndexPatterns, &one) == nil {
			t.patterns = []string{one}
		} else if err := json.Unmarshal(b.IndexPatterns, &t.patterns); err != nil {
			return nil, errStatus(http.StatusBadRequest, "x_content_parse_exception", "[index_template] failed to parse field [index_patterns]")
		}
	}
	if len(t.patterns) == 0 {
		return nil, errStatus(http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: index patterns are missing;")
	}
	if len(b.ComposedOf) > 0 {
		return nil, errStatus(http.StatusBadRequest, "invalid_index_template_exception",
			"index_template [%s] invalid, cause [composed_of: component templates are not emulated by elastictest]", name)
	}
	if b.Priority != nil {
		t.priority = *b.Priority
	}
	t.dataStream = b.DataStream != nil && string(*b.DataStream) != "null"
	if b.Template != nil && len(b.Template.Mappings) > 0 {
		m, err := parseMapping(b.Template.Mappings)
		if err != nil {
			return nil, err
		}
		t.mapping = m
	}
	return t, nil
}

// overlaps is a rough version of Elasticsearch's check that two templates
// of the same priority cannot both match one name: each pattern is tried
// against the other as if the other's wildcards were plain characters.
func overlaps(a, b []string) bool {
	for _, p := range a {
		for _, q := range b {
			if match(p, q) || match(q, p) {
				return true
			}
		}
	}
	return false
}

func (st *store) putTemplate(name string, raw json.RawMessage) error {
	t, err := parseTemplate(name, raw)
	if err != nil {
		return err
	}
	for _, o := range st.templates {
		if o.name != name && o.priority == t.priority && overlaps(o.patterns, t.patterns) {
			return errStatus(http.StatusBadRequest, "illegal_argument_exception",
				"index template [%s] has index patterns %v matching patterns from existing templates [%s] with patterns (%s => %v) that have the same priority [%d], multiple index templates may not match during index creation, please use a different priority",
				name, t.patterns, o.name, o.name, o.patterns, t.priority)
		}
	}
	st.templates[name] = t
	return nil
}
