package elasticsearch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
	"github.com/auditpipe/auditpipe/testenv/elastictest"
)

// The suite runs the same cases against the emulation (always) and against
// a real cluster (when AUDITPIPE_ES_URL is set). A case that needs fault
// injection is marked emulated-only and gets the elastictest server from
// the peer.

// testAPIKey is what the emulated peer accepts ("auditpipe:test").
const testAPIKey = "YXVkaXRwaXBlOnRlc3Q="

// peer is a cluster under test and an independent client to inspect it.
type peer struct {
	url                string
	apiKey, user, pass string
	caFile             string
	emu                *elastictest.Server // nil for a real cluster
	es                 *elasticsearch.Client
	// prefix names everything a case creates, so that cases do not see
	// each other's documents on a shared real cluster.
	prefix string
}

func randomHex(t testing.TB) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

func emulatedPeer(t *testing.T) *peer {
	s := elastictest.NewServerConfig(t, elastictest.Config{APIKeys: []string{testAPIKey}})
	p := &peer{url: s.URL(), apiKey: testAPIKey, emu: s, prefix: "apt-" + randomHex(t)}
	p.connect(t)
	return p
}

func realPeer(t *testing.T) *peer {
	p := &peer{
		url:    os.Getenv("AUDITPIPE_ES_URL"),
		apiKey: os.Getenv("AUDITPIPE_ES_API_KEY"),
		user:   os.Getenv("AUDITPIPE_ES_USERNAME"),
		pass:   os.Getenv("AUDITPIPE_ES_PASSWORD"),
		caFile: os.Getenv("AUDITPIPE_ES_CA_FILE"),
		prefix: "auditpipe-test-" + randomHex(t),
	}
	p.connect(t)
	return p
}

func (p *peer) connect(t *testing.T) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	cfg := elasticsearch.Config{Addresses: []string{p.url}, APIKey: p.apiKey, Username: p.user, Password: p.pass, Transport: tr}
	if p.caFile != "" {
		pem, err := os.ReadFile(p.caFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.CACert = pem
		cfg.Transport = nil
	}
	es, err := elasticsearch.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.es = es
	t.Cleanup(func() {
		_ = es.Close(context.Background())
		tr.CloseIdleConnections()
	})
}

// config is an output configuration for this peer, with the case's
// names.
func (p *peer) config() Config {
	c := Config{
		URLs:         []string{p.url},
		APIKey:       p.apiKey,
		Username:     p.user,
		Password:     p.pass,
		Index:        p.prefix + "-{source}-{yyyy.MM.dd}",
		TemplateName: p.prefix,
		Timeout:      10 * time.Second,
	}
	c.TLS.CAFile = p.caFile
	return c
}

// dataStream is a data stream name of this case that the built-in
// logs-*-* template covers.
func (p *peer) dataStream() string {
	return "logs-" + strings.ReplaceAll(p.prefix, "-", ".") + "-default"
}

func (p *peer) do(t *testing.T, req esapi.Request) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := req.Do(ctx, p.es)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

// hits returns the documents of target by _id, after a refresh (a real
// cluster makes documents searchable only then).
func (p *peer) hits(t *testing.T, target string) map[string]hit {
	t.Helper()
	if status, b := p.do(t, esapi.IndicesRefreshRequest{Index: []string{target}}); status != http.StatusOK {
		t.Fatalf("refresh %s: HTTP %d %s", target, status, b)
	}
	size := 1000
	status, b := p.do(t, esapi.SearchRequest{Index: []string{target}, Size: &size})
	if status == http.StatusNotFound {
		return nil
	}
	if status != http.StatusOK {
		t.Fatalf("search %s: HTTP %d %s", target, status, b)
	}
	var r struct {
		Hits struct {
			Hits []hit `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	out := map[string]hit{}
	for _, h := range r.Hits.Hits {
		if _, dup := out[h.ID]; dup {
			t.Errorf("_id %s stored twice", h.ID)
		}
		out[h.ID] = h
	}
	return out
}

type hit struct {
	Index  string          `json:"_index"`
	ID     string          `json:"_id"`
	Source json.RawMessage `json:"_source"`
}

func (p *peer) count(t *testing.T, target string) int {
	t.Helper()
	return len(p.hits(t, target))
}

// cleanup removes what a case created on a real cluster (the emulation
// goes away with its server): data streams before the templates they use.
func (p *peer) cleanup(t *testing.T, indices []string) {
	if p.emu != nil {
		return
	}
	p.do(t, esapi.IndicesDeleteDataStreamRequest{Name: []string{"logs-" + strings.ReplaceAll(p.prefix, "-", ".") + "*"}})
	if len(indices) > 0 {
		ignore := true
		p.do(t, esapi.IndicesDeleteRequest{Index: indices, IgnoreUnavailable: &ignore})
	}
	p.do(t, esapi.IndicesDeleteIndexTemplateRequest{Name: p.prefix})
	p.do(t, esapi.IngestDeletePipelineRequest{PipelineID: p.prefix})
}

// indicesOf is where the index template sends events.
func indicesOf(t *testing.T, index string, evs []auditpipe.Event) []string {
	tmpl, err := outputs.ParseTemplate(index)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := range evs {
		n := strings.ToLower(tmpl.Execute(&evs[i]))
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func newOutput(t *testing.T, cfg Config) *Output {
	t.Helper()
	o, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close(context.Background()) })
	return o
}

func deliverer(t *testing.T, out outputs.Output, dlq outputs.DeadLetterer, retry outputs.RetryConfig) *outputs.Deliverer {
	t.Helper()
	if retry.InitialInterval == 0 {
		retry.InitialInterval = time.Millisecond
		retry.MaxInterval = 20 * time.Millisecond
	}
	if retry.AttemptTimeout == 0 {
		retry.AttemptTimeout = 30 * time.Second
	}
	d, err := outputs.NewDeliverer(outputs.DelivererConfig{Name: "es", Output: out, DeadLetters: dlq, Retry: retry})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func deliver(t *testing.T, d *outputs.Deliverer, evs []auditpipe.Event) outputs.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := d.Deliver(ctx, evs)
	if err != nil {
		t.Fatalf("Deliver: %v (report %+v)", err, rep)
	}
	return rep
}

// checkStored compares what the peer holds under target with the ECS
// documents of evs, exactly.
func checkStored(t *testing.T, p *peer, target string, evs []auditpipe.Event) map[string]hit {
	t.Helper()
	hits := p.hits(t, target)
	if len(hits) != len(evs) {
		t.Errorf("%s holds %d documents, want %d", target, len(hits), len(evs))
	}
	for i := range evs {
		h, ok := hits[evs[i].ID]
		if !ok {
			t.Errorf("event %s not stored", evs[i].ID)
			continue
		}
		want := AppendECS(nil, &evs[i])
		if g, w := decode(t, h.Source), decode(t, want); !equalJSON(g, w) {
			t.Errorf("event %s stored as\n%s\nwant\n%s", evs[i].ID, h.Source, want)
		}
	}
	return hits
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

type suiteCase struct {
	name     string
	emulated bool // needs elastictest's fault knobs or settings
	run      func(t *testing.T, p *peer)
}

func suite() []suiteCase {
	return []suiteCase{
		{"HappyPath", false, testHappyPath},
		{"DuplicateDelivery", false, testDuplicateDelivery},
		{"TemplateAndDateRouting", false, testTemplateAndDateRouting},
		{"DataStream", false, testDataStream},
		{"MappingConflictDeadLettered", false, testMappingConflict},
		{"BadAPIKey", false, testBadAPIKey},
		{"Pipeline", false, testPipeline},
		{"ItemsRejected", true, testItemsRejected},
		{"RequestFailures", true, testRequestFailures},
		{"SlowServer", true, testSlowServer},
		{"DownAtStartThenUp", true, testDownAtStart},
		{"SplitBulk", true, testSplitBulk},
		{"TLS", true, testTLS},
		{"BasicAuth", true, testBasicAuth},
		{"ConcurrentWrites", true, testConcurrentWrites},
		{"UnknownPipeline", true, testUnknownPipeline},
	}
}

func TestEmulated(t *testing.T) {
	for _, tc := range suite() {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, emulatedPeer(t)) })
	}
}

func TestRealCluster(t *testing.T) {
	if os.Getenv("AUDITPIPE_ES_URL") == "" {
		t.Skip("AUDITPIPE_ES_URL is not set: set it, with AUDITPIPE_ES_API_KEY or AUDITPIPE_ES_USERNAME and AUDITPIPE_ES_PASSWORD " +
			"(and AUDITPIPE_ES_CA_FILE for a private CA), to run this suite against a real cluster")
	}
	for _, tc := range suite() {
		if tc.emulated {
			continue
		}
		t.Run(tc.name, func(t *testing.T) { tc.run(t, realPeer(t)) })
	}
}

func testHappyPath(t *testing.T, p *peer) {
	cfg := p.config()
	out := newOutput(t, cfg)
	evs := outputstest.Events(20)
	indices := indicesOf(t, cfg.Index, evs)
	t.Cleanup(func() { p.cleanup(t, indices) })

	rep := deliver(t, deliverer(t, out, nil, outputs.RetryConfig{}), evs)
	if rep.Delivered != 20 || rep.Attempts != 1 {
		t.Errorf("report %+v, want 20 delivered in 1 attempt", rep)
	}
	hits := checkStored(t, p, p.prefix+"-*", evs)
	want := []string{p.prefix + "-alertmanager-2026.11.21", p.prefix + "-app-2026.11.21", p.prefix + "-k8s-2026.11.21", p.prefix + "-spacelift-2026.11.21"}
	if !slices.Equal(indices, want) {
		t.Errorf("indices %v, want %v", indices, want)
	}
	for i := range evs {
		if h := hits[evs[i].ID]; h.Index != strings.ToLower(p.prefix+"-"+evs[i].Source.Type+"-2026.11.21") {
			t.Errorf("event %d in index %q", i, h.Index)
		}
	}
	// A document fetched by id carries the ECS fields.
	ev := evs[1] // denied, from alertmanager
	status, b := p.do(t, esapi.GetRequest{Index: p.prefix + "-alertmanager-2026.11.21", DocumentID: ev.ID})
	if status != http.StatusOK {
		t.Fatalf("GET doc: HTTP %d %s", status, b)
	}
	var doc struct {
		Source struct {
			Timestamp string `json:"@timestamp"`
			Event     struct {
				ID, Action, Outcome, Provider string
				Type                          []string
			}
			User      struct{ Name string }
			Source    struct{ IP string }
			Auditpipe struct{ Outcome string }
		} `json:"_source"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	s := doc.Source
	if s.Timestamp != "2026-11-21T09:30:01.123456Z" || s.Event.ID != ev.ID || s.Event.Action != ev.Action ||
		s.Event.Outcome != "failure" || s.Auditpipe.Outcome != "denied" || !slices.Contains(s.Event.Type, "denied") ||
		s.Event.Provider != "alertmanager" || s.User.Name != "Alice Example" || s.Source.IP != "203.0.113.7" {
		t.Errorf("document: %s", b)
	}
}

func testDuplicateDelivery(t *testing.T, p *peer) {
	cfg := p.config()
	out := newOutput(t, cfg)
	evs := outputstest.Events(15)
	t.Cleanup(func() { p.cleanup(t, indicesOf(t, cfg.Index, evs)) })
	ctx := context.Background()
	for i, batch := range [][]auditpipe.Event{evs[:10], evs[:10], evs[5:15]} {
		if err := out.Write(ctx, batch); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	checkStored(t, p, p.prefix+"-*", evs)
}

func testTemplateAndDateRouting(t *testing.T, p *peer) {
	cfg := p.config()
	cfg.BootstrapTemplate = true
	out := newOutput(t, cfg)
	evs := outputstest.Events(8)
	for i := 4; i < 8; i++ {
		evs[i].Time = evs[i].Time.Add(48 * time.Hour)
	}
	// With the template, details are flattened: a key that is a number in
	// one event and an object in the next is no conflict.
	evs[7].Details = json.RawMessage(`{"n":{"nested":"object now"}}`)
	indices := indicesOf(t, cfg.Index, evs)
	t.Cleanup(func() { p.cleanup(t, indices) })

	status, b := p.do(t, esapi.IndicesGetIndexTemplateRequest{Name: p.prefix})
	if status != http.StatusOK || !strings.Contains(string(b), `"`+p.prefix+`-*-*"`) || !strings.Contains(string(b), `"flattened"`) {
		t.Fatalf("template after New: HTTP %d %s", status, b)
	}
	dlq := &outputstest.Letters{}
	rep := deliver(t, deliverer(t, out, dlq, outputs.RetryConfig{}), evs)
	if rep.Delivered != 8 || rep.DeadLettered != 0 {
		t.Errorf("report %+v, dead letters %v", rep, dlq.All())
	}
	for _, day := range []string{"2026.11.21", "2026.11.23"} {
		if n := p.count(t, p.prefix+"-*-"+day); n != 4 {
			t.Errorf("%d documents for %s, want 4", n, day)
		}
	}
	checkStored(t, p, p.prefix+"-*", evs)
}

func testDataStream(t *testing.T, p *peer) {
	for _, bootstrap := range []bool{false, true} {
		t.Run(fmt.Sprintf("bootstrap=%v", bootstrap), func(t *testing.T) {
			cfg := p.config()
			cfg.Index, cfg.DataStream, cfg.BootstrapTemplate = "", p.dataStream(), bootstrap
			if bootstrap {
				cfg.DataStream = strings.Replace(cfg.DataStream, "-default", "-boot", 1)
			}
			out := newOutput(t, cfg)
			t.Cleanup(func() { p.cleanup(t, nil) })
			evs := outputstest.Events(10)
			d := deliverer(t, out, nil, outputs.RetryConfig{})
			deliver(t, d, evs)
			deliver(t, d, evs[:5]) // again: no duplicates
			hits := checkStored(t, p, cfg.DataStream, evs)
			for _, h := range hits {
				if !strings.HasPrefix(h.Index, ".ds-"+cfg.DataStream+"-") {
					t.Errorf("document in %q, want a backing index of %s", h.Index, cfg.DataStream)
					break
				}
			}
			status, b := p.do(t, esapi.IndicesGetDataStreamRequest{Name: []string{cfg.DataStream}})
			wantTemplate := `"template":"logs"`
			if bootstrap {
				wantTemplate = `"template":"` + p.prefix + `"`
			}
			if status != http.StatusOK || !strings.Contains(string(b), wantTemplate) {
				t.Errorf("data stream: HTTP %d %s, want %s", status, b, wantTemplate)
			}
		})
	}
}

func testMappingConflict(t *testing.T, p *peer) {
	cfg := p.config() // no template: dynamic mapping decides, as it does by default
	out := newOutput(t, cfg)
	evs := outputstest.Events(12)
	t.Cleanup(func() { p.cleanup(t, indicesOf(t, cfg.Index, evs)) })
	dlq := &outputstest.Letters{}
	d := deliverer(t, out, dlq, outputs.RetryConfig{})
	deliver(t, d, evs[:4]) // auditpipe.details.n is now a long in every index

	bad := evs[4:12]
	var wantDead []string
	for _, i := range []int{1, 6} {
		bad[i].Details = json.RawMessage(`{"n":"secret-not-a-number"}`)
		wantDead = append(wantDead, bad[i].ID)
	}
	slices.Sort(wantDead)
	rep := deliver(t, d, bad)
	if rep.Delivered != 6 || rep.DeadLettered != 2 || rep.Attempts != 1 {
		t.Errorf("report %+v, want 6 delivered and 2 dead-lettered in one attempt", rep)
	}
	if got := dlq.IDs(t); !slices.Equal(got, wantDead) {
		t.Errorf("dead-lettered %v, want %v", got, wantDead)
	}
	for _, l := range dlq.All() {
		if !strings.Contains(l.Error, "document_parsing_exception") || !strings.Contains(l.Error, "auditpipe.details.n") {
			t.Errorf("dead letter error %q does not give Elasticsearch's reason", l.Error)
		}
		if strings.Contains(l.Error, "Preview of field's value") {
			t.Errorf("dead letter error quotes the document: %q", l.Error)
		}
	}
	if n := p.count(t, p.prefix+"-*"); n != 10 {
		t.Errorf("%d documents, want 10", n)
	}
}

func testBadAPIKey(t *testing.T, p *peer) {
	cfg := p.config()
	cfg.APIKey, cfg.Username, cfg.Password = "nope:nope", "", ""
	out := newOutput(t, cfg)
	evs := outputstest.Events(5)
	t.Cleanup(func() { p.cleanup(t, indicesOf(t, cfg.Index, evs)) })

	err := out.Write(context.Background(), evs)
	if err == nil || outputs.IsPermanent(err) {
		t.Fatalf("Write = %v, want a retryable error", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "credentials rejected") || !strings.Contains(msg, "401") || !strings.Contains(msg, "security_exception") {
		t.Errorf("error %q does not say the credentials were rejected", msg)
	}
	d := deliverer(t, out, &outputstest.Letters{}, outputs.RetryConfig{MaxElapsedTime: 50 * time.Millisecond})
	_, err = d.Deliver(context.Background(), evs)
	var ue *outputs.UndeliveredError
	if !errors.As(err, &ue) || ue.Permanent || len(ue.Events) != len(evs) {
		t.Fatalf("Deliver = %v, want every event handed back as retryable", err)
	}
	if d.Health() == nil {
		t.Error("Health() = nil after rejected credentials")
	}
	if n := p.count(t, p.prefix+"-*"); n != 0 {
		t.Errorf("%d documents stored with bad credentials", n)
	}
}

func testPipeline(t *testing.T, p *peer) {
	status, b := p.do(t, esapi.IngestPutPipelineRequest{PipelineID: p.prefix,
		Body: strings.NewReader(`{"description":"auditpipe test","processors":[{"set":{"field":"labels.pipeline","value":"ran"}}]}`)})
	if status != http.StatusOK {
		t.Fatalf("put pipeline: HTTP %d %s", status, b)
	}
	cfg := p.config()
	cfg.Pipeline = p.prefix
	out := newOutput(t, cfg)
	evs := outputstest.Events(4)
	t.Cleanup(func() { p.cleanup(t, indicesOf(t, cfg.Index, evs)) })
	rep := deliver(t, deliverer(t, out, nil, outputs.RetryConfig{}), evs)
	if rep.Delivered != 4 {
		t.Errorf("report %+v", rep)
	}
	if n := p.count(t, p.prefix+"-*"); n != 4 {
		t.Errorf("%d documents, want 4", n)
	}
}
