package elastictest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
)

func client(t *testing.T, s *Server, cfg elasticsearch.Config) *elasticsearch.Client {
	t.Helper()
	cfg.Addresses = []string{s.URL()}
	if cfg.MaxRetries == 0 {
		cfg.DisableRetry = true
	}
	c, err := elasticsearch.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

type item struct {
	Index   string `json:"_index"`
	ID      string `json:"_id"`
	Status  int    `json:"status"`
	Result  string `json:"result"`
	Version int    `json:"_version"`
	Error   *struct {
		Type     string `json:"type"`
		Reason   string `json:"reason"`
		CausedBy *struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		} `json:"caused_by"`
	} `json:"error"`
}

type bulkResult struct {
	Errors bool              `json:"errors"`
	Items  []map[string]item `json:"items"`
}

// flat returns the items in order, with their action.
func (b bulkResult) flat() (ops []string, items []item) {
	for _, m := range b.Items {
		for op, it := range m {
			ops = append(ops, op)
			items = append(items, it)
		}
	}
	return ops, items
}

func do(t *testing.T) func(*esapi.Response, error) (int, []byte) {
	t.Helper()
	return func(res *esapi.Response, err error) (int, []byte) {
		t.Helper()
		return response(t, res, err)
	}
}

func response(t *testing.T, res *esapi.Response, err error) (int, []byte) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Header.Get("X-Elastic-Product"); got != "Elasticsearch" {
		t.Errorf("X-Elastic-Product = %q on HTTP %d", got, res.StatusCode)
	}
	return res.StatusCode, b
}

func bulk(t *testing.T, c *elasticsearch.Client, body string, opts ...func(*esapi.BulkRequest)) bulkResult {
	t.Helper()
	status, b := do(t)(c.Bulk(strings.NewReader(body), opts...))
	if status != http.StatusOK {
		t.Fatalf("bulk: HTTP %d: %s", status, b)
	}
	var r bulkResult
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("bulk response: %v: %s", err, b)
	}
	return r
}

func count(t *testing.T, c *elasticsearch.Client, target string) int {
	t.Helper()
	status, b := do(t)(c.Count(c.Count.WithIndex(target)))
	if status != http.StatusOK {
		t.Fatalf("count %s: HTTP %d: %s", target, status, b)
	}
	var r struct{ Count int }
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r.Count
}

func TestInfo(t *testing.T) {
	s := NewServer(t)
	c := client(t, s, elasticsearch.Config{})
	status, b := do(t)(c.Info())
	if status != http.StatusOK || !strings.Contains(string(b), `"number":"8.19.0"`) {
		t.Fatalf("info: HTTP %d: %s", status, b)
	}
	// Unknown endpoints still carry the product header.
	status, _ = do(t)(c.Indices.GetMapping())
	if status != http.StatusBadRequest {
		t.Errorf("unknown endpoint: HTTP %d, want 400", status)
	}
}

func TestBulkItems(t *testing.T) {
	s := NewServer(t)
	c := client(t, s, elasticsearch.Config{})
	// Fix a mapping and a document first.
	r := bulk(t, c, `{"create":{"_index":"a","_id":"1"}}`+"\n"+`{"n":1,"s":"x","o":{"k":"v"},"ip":"10.0.0.1"}`+"\n")
	if r.Errors {
		t.Fatalf("seed: %+v", r)
	}
	cases := []struct {
		name, body string
		status     int
		errType    string
		result     string
	}{
		{"create new", `{"create":{"_index":"a","_id":"2"}}` + "\n" + `{"n":2}`, 201, "", "created"},
		{"create existing", `{"create":{"_index":"a","_id":"1"}}` + "\n" + `{"n":1}`, 409, "version_conflict_engine_exception", ""},
		{"index existing", `{"index":{"_index":"a","_id":"1"}}` + "\n" + `{"n":3}`, 200, "", "updated"},
		{"index new", `{"index":{"_index":"a","_id":"3"}}` + "\n" + `{"n":4}`, 201, "", "created"},
		{"index op_type create", `{"index":{"_index":"a","_id":"3","op_type":"create"}}` + "\n" + `{"n":4}`, 409, "version_conflict_engine_exception", ""},
		{"delete existing", `{"delete":{"_index":"a","_id":"3"}}`, 200, "", "deleted"},
		{"delete missing", `{"delete":{"_index":"a","_id":"404"}}`, 404, "", "not_found"},
		{"not an object", `{"create":{"_index":"a","_id":"4"}}` + "\n" + `[1,2]`, 400, "document_parsing_exception", ""},
		{"not json", `{"create":{"_index":"a","_id":"4"}}` + "\n" + `{"n":`, 400, "document_parsing_exception", ""},
		{"long gets string", `{"create":{"_index":"a","_id":"4"}}` + "\n" + `{"n":"many"}`, 400, "document_parsing_exception", ""},
		{"long gets numeric string", `{"create":{"_index":"a","_id":"5"}}` + "\n" + `{"n":"12"}`, 201, "", "created"},
		{"object gets scalar", `{"create":{"_index":"a","_id":"4"}}` + "\n" + `{"o":"flat"}`, 400, "document_parsing_exception", ""},
		{"text gets object", `{"create":{"_index":"a","_id":"4"}}` + "\n" + `{"s":{"x":1}}`, 400, "document_parsing_exception", ""},
		{"text gets number", `{"create":{"_index":"a","_id":"6"}}` + "\n" + `{"s":7}`, 201, "", "created"},
		{"dotted name into object", `{"create":{"_index":"a","_id":"7"}}` + "\n" + `{"o.k":"w"}`, 201, "", "created"},
		{"duplicate key", `{"create":{"_index":"a","_id":"4"}}` + "\n" + `{"s":"x","s":"y"}`, 400, "document_parsing_exception", ""},
		{"metadata field", `{"create":{"_index":"a","_id":"4"}}` + "\n" + `{"_id":"x"}`, 400, "document_parsing_exception", ""},
		{"uppercase index", `{"create":{"_index":"Audit","_id":"1"}}` + "\n" + `{}`, 400, "invalid_index_name_exception", ""},
		{"update", `{"update":{"_index":"a","_id":"1"}}` + "\n" + `{"doc":{}}`, 400, "illegal_argument_exception", ""},
		{"auto id", `{"create":{"_index":"a"}}` + "\n" + `{"n":5}`, 201, "", "created"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := bulk(t, c, tc.body+"\n")
			_, items := r.flat()
			if len(items) != 1 {
				t.Fatalf("items: %+v", r)
			}
			it := items[0]
			if it.Status != tc.status || it.Result != tc.result {
				t.Errorf("status %d result %q, want %d %q (%+v)", it.Status, it.Result, tc.status, tc.result, it.Error)
			}
			gotType := ""
			if it.Error != nil {
				gotType = it.Error.Type
			}
			if gotType != tc.errType {
				t.Errorf("error type %q, want %q", gotType, tc.errType)
			}
			if r.Errors != (tc.errType != "") {
				t.Errorf("errors = %v with error type %q", r.Errors, tc.errType)
			}
		})
	}
}

func TestBulkOrderAndSourceOnError(t *testing.T) {
	s := NewServer(t)
	c := client(t, s, elasticsearch.Config{})
	body := `{"create":{"_id":"1"}}` + "\n" + `{"n":1}` + "\n" +
		`{"create":{"_id":"2"}}` + "\n" + `{"n":"secret-value"}` + "\n" +
		`{"create":{"_id":"3"}}` + "\n" + `{"n":3}` + "\n"
	r := bulk(t, c, body, c.Bulk.WithIndex("ord"), c.Bulk.WithIncludeSourceOnError(false))
	ops, items := r.flat()
	want := []int{201, 400, 201}
	for i, it := range items {
		if ops[i] != "create" || it.ID != string(rune('1'+i)) || it.Status != want[i] {
			t.Errorf("item %d: %s %+v, want create id %d status %d", i, ops[i], it, i+1, want[i])
		}
	}
	if strings.Contains(items[1].Error.Reason, "secret-value") {
		t.Errorf("include_source_on_error=false, but the reason shows the value: %s", items[1].Error.Reason)
	}
	if !strings.Contains(items[1].Error.Reason, "failed to parse field [n] of type [long]") {
		t.Errorf("reason = %q", items[1].Error.Reason)
	}
}

func TestBulkRequestErrors(t *testing.T) {
	s := NewServer(t)
	c := client(t, s, elasticsearch.Config{})
	cases := []struct{ name, body, errType string }{
		{"no final newline", `{"create":{"_index":"a","_id":"1"}}` + "\n" + `{}`, "illegal_argument_exception"},
		{"unknown action", `{"upsert":{"_index":"a"}}` + "\n" + `{}` + "\n", "illegal_argument_exception"},
		{"unknown parameter", `{"create":{"_index":"a","_idx":"1"}}` + "\n" + `{}` + "\n", "illegal_argument_exception"},
		{"empty id", `{"create":{"_index":"a","_id":""}}` + "\n" + `{}` + "\n", "action_request_validation_exception"},
		{"long id", `{"create":{"_index":"a","_id":"` + strings.Repeat("x", 513) + `"}}` + "\n" + `{}` + "\n", "action_request_validation_exception"},
		{"no index", `{"create":{"_id":"1"}}` + "\n" + `{}` + "\n", "action_request_validation_exception"},
		{"empty", "\n", "action_request_validation_exception"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, b := do(t)(c.Bulk(strings.NewReader(tc.body)))
			if status != http.StatusBadRequest || !strings.Contains(string(b), `"type":"`+tc.errType+`"`) {
				t.Errorf("HTTP %d %s, want 400 %s", status, b, tc.errType)
			}
		})
	}
	if st := s.Stats(); st.BulkItems != 0 {
		t.Errorf("%d items applied from rejected requests", st.BulkItems)
	}
}

func TestFaultKnobs(t *testing.T) {
	s := NewServer(t)
	c := client(t, s, elasticsearch.Config{})
	var body strings.Builder
	for i := range 5 {
		body.WriteString(`{"create":{"_index":"f","_id":"` + string(rune('a'+i)) + `"}}` + "\n{}\n")
	}

	s.RejectNextItems(2, http.StatusTooManyRequests)
	_, items := bulk(t, c, body.String()).flat()
	for i, it := range items {
		want := 201
		if i < 2 {
			want = 429
			if it.Error == nil || it.Error.Type != "es_rejected_execution_exception" {
				t.Errorf("item %d: error %+v", i, it.Error)
			}
		}
		if it.Status != want {
			t.Errorf("item %d: status %d, want %d", i, it.Status, want)
		}
	}
	if n := s.Count("f"); n != 3 {
		t.Errorf("count after rejection = %d, want 3", n)
	}

	s.FailNextRequests(2, http.StatusServiceUnavailable)
	for range 2 {
		status, b := do(t)(c.Bulk(strings.NewReader(body.String())))
		if status != http.StatusServiceUnavailable || !strings.Contains(string(b), "unavailable_shards_exception") {
			t.Errorf("HTTP %d %s, want 503", status, b)
		}
	}
	_, items = bulk(t, c, body.String()).flat()
	if items[0].Status != 201 || items[2].Status != 409 {
		t.Errorf("after the faults: %+v", items)
	}

	// The client's own retries absorb one 429 when told to retry it.
	retrying := client(t, s, elasticsearch.Config{RetryOnStatus: []int{429, 502, 503, 504}, MaxRetries: 2})
	s.FailNextRequests(1, http.StatusTooManyRequests)
	if n := count(t, retrying, "f"); n != 5 {
		t.Errorf("count = %d, want 5", n)
	}
}

func TestDelay(t *testing.T) {
	base := runtime.NumGoroutine()
	s, err := Start(Config{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := elasticsearch.NewClient(elasticsearch.Config{Addresses: []string{s.URL()}, DisableRetry: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Delay(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.Info(c.Info.WithContext(ctx))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	// A request still waiting when the server closes is released.
	done := make(chan error, 1)
	go func() {
		res, err := c.Info()
		if err == nil {
			_ = res.Body.Close()
		}
		done <- err
	}()
	waitFor(t, func() bool { return s.Stats().Requests == 2 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Error("request during Close succeeded")
	}
	_ = c.Close(context.Background())
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	waitFor(t, func() bool { return runtime.NumGoroutine() <= base })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCountSearchDoc(t *testing.T) {
	s := NewServer(t)
	c := client(t, s, elasticsearch.Config{})
	var body strings.Builder
	for i, idx := range []string{"audit-a-1", "audit-a-1", "audit-b-1", "other", ".hidden"} {
		body.WriteString(`{"create":{"_index":"` + idx + `","_id":"d` + string(rune('0'+i)) + `"}}` + "\n" + `{"i":` + string(rune('0'+i)) + "}\n")
	}
	bulk(t, c, body.String())
	for _, tc := range []struct {
		target string
		want   int
	}{
		{"audit-*", 3}, {"audit-a-*", 2}, {"audit-a-1,other", 3}, {"*", 4}, {"_all", 4}, {".h*", 1}, {"nothing-*", 0},
	} {
		if n := count(t, c, tc.target); n != tc.want {
			t.Errorf("count %s = %d, want %d", tc.target, n, tc.want)
		}
		if n := s.Count(tc.target); n != tc.want {
			t.Errorf("Server.Count %s = %d, want %d", tc.target, n, tc.want)
		}
	}
	status, _ := do(t)(c.Count(c.Count.WithIndex("missing")))
	if status != http.StatusNotFound {
		t.Errorf("count of a missing index: HTTP %d, want 404", status)
	}

	status, b := do(t)(c.Search(c.Search.WithIndex("audit-*"), c.Search.WithSize(2), c.Search.WithFrom(1)))
	var sr struct {
		Hits struct {
			Total struct{ Value int }
			Hits  []struct {
				Index  string          `json:"_index"`
				ID     string          `json:"_id"`
				Source json.RawMessage `json:"_source"`
			}
		}
	}
	if err := json.Unmarshal(b, &sr); err != nil || status != http.StatusOK {
		t.Fatalf("search: HTTP %d %s", status, b)
	}
	if sr.Hits.Total.Value != 3 || len(sr.Hits.Hits) != 2 || sr.Hits.Hits[0].ID != "d1" || sr.Hits.Hits[1].Index != "audit-b-1" || string(sr.Hits.Hits[1].Source) != `{"i":2}` {
		t.Errorf("search: %s", b)
	}
	status, _ = do(t)(c.Search(c.Search.WithBody(strings.NewReader(`{"query":{"term":{"i":1}}}`))))
	if status != http.StatusBadRequest {
		t.Errorf("term query: HTTP %d, want 400 (not emulated)", status)
	}

	if docs := s.Docs("audit-*"); len(docs) != 3 || docs[0].ID != "d0" || docs[2].Index != "audit-b-1" || string(docs[2].Source) != `{"i":2}` {
		t.Errorf("Docs = %+v", docs)
	}
	status, b = do(t)(c.Get("audit-b-1", "d2"))
	if status != http.StatusOK || !strings.Contains(string(b), `"_source":{"i":2}`) {
		t.Errorf("get: HTTP %d %s", status, b)
	}
	status, b = do(t)(c.Get("audit-b-1", "nope"))
	if status != http.StatusNotFound || !strings.Contains(string(b), `"found":false`) {
		t.Errorf("get missing: HTTP %d %s", status, b)
	}

	status, _ = do(t)(c.Indices.Delete([]string{"audit-*"}))
	if status != http.StatusBadRequest {
		t.Errorf("wildcard delete: HTTP %d, want 400", status)
	}
	status, _ = do(t)(c.Indices.Delete([]string{"audit-a-1", "audit-b-1"}))
	if status != http.StatusOK || s.Count("audit-*") != 0 {
		t.Errorf("delete: HTTP %d, %d left", status, s.Count("audit-*"))
	}
}

func TestTemplatesAndDataStreams(t *testing.T) {
	s := NewServer(t)
	c := client(t, s, elasticsearch.Config{})
	put := func(name, body string) (int, []byte) {
		return do(t)(c.Indices.PutIndexTemplate(name, strings.NewReader(body)))
	}
	tmpl := `{"index_patterns":["ecs-*"],"priority":200,"template":{"mappings":{"properties":{
		"source":{"properties":{"ip":{"type":"ip"}}},"details":{"type":"flattened"},
		"closed":{"type":"object","dynamic":false,"properties":{"n":{"type":"long"}}}}}}}`
	if status, b := put("ecs", tmpl); status != http.StatusOK {
		t.Fatalf("put template: HTTP %d %s", status, b)
	}
	if raw, ok := s.IndexTemplate("ecs"); !ok || !strings.Contains(string(raw), "flattened") {
		t.Errorf("IndexTemplate = %s, %v", raw, ok)
	}
	status, b := do(t)(c.Indices.GetIndexTemplate(c.Indices.GetIndexTemplate.WithName("ecs")))
	if status != http.StatusOK || !strings.Contains(string(b), `"name":"ecs"`) {
		t.Errorf("get template: HTTP %d %s", status, b)
	}
	r := bulk(t, c, `{"create":{"_index":"ecs-1","_id":"1"}}`+"\n"+`{"source":{"ip":"not-an-ip"}}`+"\n"+
		`{"create":{"_index":"ecs-1","_id":"2"}}`+"\n"+`{"details":{"a":1}}`+"\n"+
		`{"create":{"_index":"ecs-1","_id":"3"}}`+"\n"+`{"details":{"a":{"b":"c"}},"closed":{"x":{"y":1}}}`+"\n"+
		`{"create":{"_index":"ecs-1","_id":"4"}}`+"\n"+`{"closed":{"x":"scalar now","n":"nan"}}`+"\n"+
		`{"create":{"_index":"ecs-1","_id":"5"}}`+"\n"+`{"source":{"ip":"2001:db8::1"}}`+"\n")
	_, items := r.flat()
	for i, want := range []int{400, 201, 201, 400, 201} {
		if items[i].Status != want {
			t.Errorf("item %d: status %d, want %d (%+v)", i, items[i].Status, want, items[i].Error)
		}
	}

	// Same priority as the built-in logs template and overlapping: refused.
	if status, b := put("mine", `{"index_patterns":["logs-mine-default"],"priority":100,"data_stream":{}}`); status != http.StatusBadRequest {
		t.Errorf("overlapping template: HTTP %d %s", status, b)
	}
	if status, b := put("mine", `{"index_patterns":["logs-mine-default"],"priority":500,"data_stream":{},"template":{"mappings":{"properties":{"n":{"type":"long"}}}}}`); status != http.StatusOK {
		t.Fatalf("put: HTTP %d %s", status, b)
	}
	r = bulk(t, c, `{"create":{"_index":"logs-mine-default","_id":"1"}}`+"\n"+`{"@timestamp":"2026-11-21T09:30:00Z","n":1}`+"\n"+
		`{"index":{"_index":"logs-mine-default","_id":"2"}}`+"\n"+`{"@timestamp":"2026-11-21T09:30:00Z"}`+"\n"+
		`{"create":{"_index":"logs-mine-default","_id":"3"}}`+"\n"+`{"n":3}`+"\n"+
		`{"create":{"_index":"logs-mine-default","_id":"1"}}`+"\n"+`{"@timestamp":"2026-11-21T09:30:00Z","n":1}`+"\n"+
		`{"create":{"_index":"logs-other-default","_id":"1"}}`+"\n"+`{"@timestamp":"2026-11-21T09:30:00Z"}`+"\n")
	_, items = r.flat()
	for i, want := range []int{201, 400, 400, 409, 201} {
		if items[i].Status != want {
			t.Errorf("data stream item %d: status %d, want %d (%+v)", i, items[i].Status, want, items[i].Error)
		}
	}
	if !strings.HasPrefix(items[0].Index, ".ds-logs-mine-default-") {
		t.Errorf("_index = %q, want the backing index", items[0].Index)
	}
	if got := s.DataStreams(); strings.Join(got, ",") != "logs-mine-default,logs-other-default" {
		t.Errorf("data streams = %v", got)
	}
	if n := count(t, c, "logs-*"); n != 2 {
		t.Errorf("count logs-* = %d, want 2", n)
	}
	if _, ok := s.Doc("logs-mine-default", "1"); !ok {
		t.Error("Doc through the data stream name: not found")
	}
	status, b = do(t)(c.Indices.GetDataStream(c.Indices.GetDataStream.WithName("logs-mine-default")))
	if status != http.StatusOK || !strings.Contains(string(b), `"template":"mine"`) {
		t.Errorf("get data stream: HTTP %d %s", status, b)
	}
	if status, _ := do(t)(c.Indices.DeleteIndexTemplate("mine")); status != http.StatusBadRequest {
		t.Errorf("deleting a template in use: HTTP %d, want 400", status)
	}
	if status, _ := do(t)(c.Indices.DeleteDataStream([]string{"logs-mine-default"})); status != http.StatusOK {
		t.Errorf("delete data stream: HTTP %d", status)
	}
	if status, _ := do(t)(c.Indices.DeleteIndexTemplate("mine")); status != http.StatusOK {
		t.Errorf("delete template: HTTP %d", status)
	}
	if status, b := do(t)(c.Indices.CreateDataStream("plain-name")); status != http.StatusBadRequest {
		t.Errorf("data stream without template: HTTP %d %s", status, b)
	}
}

func TestPipelines(t *testing.T) {
	s := NewServer(t)
	c := client(t, s, elasticsearch.Config{})
	body := `{"create":{"_index":"p","_id":"1"}}` + "\n{}\n"
	_, items := bulk(t, c, body, c.Bulk.WithPipeline("enrich")).flat()
	if items[0].Status != 400 || !strings.Contains(items[0].Error.Reason, "pipeline with id [enrich] does not exist") {
		t.Errorf("unknown pipeline: %+v", items[0])
	}
	status, b := do(t)(c.Ingest.PutPipeline("enrich", strings.NewReader(`{"processors":[{"set":{"field":"x","value":1}}]}`)))
	if status != http.StatusOK {
		t.Fatalf("put pipeline: HTTP %d %s", status, b)
	}
	_, items = bulk(t, c, body, c.Bulk.WithPipeline("enrich")).flat()
	if items[0].Status != 201 {
		t.Errorf("known pipeline: %+v", items[0])
	}
}

func TestAuth(t *testing.T) {
	const key = "aWQ6c2VjcmV0" // id:secret
	s := NewServerConfig(t, Config{Username: "elastic", Password: "changeme", APIKeys: []string{key}})
	cases := []struct {
		name string
		cfg  elasticsearch.Config
		want int
	}{
		{"basic", elasticsearch.Config{Username: "elastic", Password: "changeme"}, 200},
		{"api key", elasticsearch.Config{APIKey: key}, 200},
		{"wrong password", elasticsearch.Config{Username: "elastic", Password: "nope"}, 401},
		{"wrong api key", elasticsearch.Config{APIKey: "bm9wZTpub3Bl"}, 401},
		{"none", elasticsearch.Config{}, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := client(t, s, tc.cfg)
			res, err := c.Info()
			status, b := do(t)(res, err)
			if status != tc.want {
				t.Fatalf("HTTP %d %s, want %d", status, b, tc.want)
			}
			if status == 401 && (!strings.Contains(string(b), `"type":"security_exception"`) || len(res.Header.Values("WWW-Authenticate")) == 0) {
				t.Errorf("401 without a security_exception and a challenge: %s", b)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	s := NewServerConfig(t, Config{TLS: true})
	if !strings.HasPrefix(s.URL(), "https://") || s.CAFile() == "" {
		t.Fatalf("URL %s, CA file %q", s.URL(), s.CAFile())
	}
	for _, cfg := range []elasticsearch.Config{
		{CACert: s.CAPEM()},
		{CertificateFingerprint: s.CertificateFingerprint()},
	} {
		c := client(t, s, cfg)
		if status, b := do(t)(c.Info()); status != http.StatusOK {
			t.Errorf("HTTP %d %s", status, b)
		}
	}
	c := client(t, s, elasticsearch.Config{})
	if _, err := c.Info(); err == nil {
		t.Error("an untrusted certificate was accepted")
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		p, n string
		want bool
	}{
		{"a*", "abc", true}, {"*c", "abc", true}, {"a*c", "abc", true}, {"a*c", "abd", false},
		{"logs-*-*", "logs-a-b", true}, {"logs-*-*", "logs-a", false}, {"*", "", true}, {"abc", "abc", true}, {"a**", "a", true},
	} {
		if got := match(tc.p, tc.n); got != tc.want {
			t.Errorf("match(%q, %q) = %v", tc.p, tc.n, got)
		}
	}
}

func TestDateDetection(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"2026-11-21", true}, {"2026-11-21T09:30:00Z", true}, {"2026-11-21T09:30:00.123456789+02:00", true},
		{"2026-11-21T09:30", true}, {"21/11/2026", false}, {"stack-1", false}, {"2026", false},
	} {
		if got := isDate(tc.s); got != tc.want {
			t.Errorf("isDate(%q) = %v", tc.s, got)
		}
	}
}

func TestFieldLimit(t *testing.T) {
	s := NewServer(t)
	c := client(t, s, elasticsearch.Config{})
	var doc strings.Builder
	doc.WriteString("{")
	for i := range fieldLimit + 1 {
		if i > 0 {
			doc.WriteString(",")
		}
		doc.WriteString(`"f` + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + itoa(i) + `":1`)
	}
	doc.WriteString("}")
	_, items := bulk(t, c, `{"create":{"_index":"wide","_id":"1"}}`+"\n"+doc.String()+"\n").flat()
	if items[0].Status != 400 || !strings.Contains(items[0].Error.Reason, "Limit of total fields [1000]") {
		t.Errorf("item: %+v", items[0])
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}
