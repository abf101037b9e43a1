package elastictest

import (
	"compress/gzip"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/testenv/internal/testcert"
)

// Config configures a Server. The zero value serves plain HTTP on a free
// loopback port without authentication.
type Config struct {
	// Addr is the address to listen on. Default "127.0.0.1:0".
	Addr string
	// TLS serves HTTPS with a self-signed certificate valid for the host of
	// Addr, localhost, 127.0.0.1 and ::1.
	TLS bool
	// CertDir is where the certificate is written as ca.pem when TLS is
	// on. Default: a temporary directory removed by Close.
	CertDir string
	// Username and Password are accepted as HTTP basic credentials when
	// Username is set.
	Username, Password string
	// APIKeys are accepted in "Authorization: ApiKey <key>", each being the
	// base64 of "id:api_key" (the "encoded" value Elasticsearch returns when
	// it creates a key). When Username or APIKeys is set, every request must
	// authenticate.
	APIKeys []string
	// Version is the version GET / reports. Default "8.19.0".
	Version string
	// MaxBodyBytes bounds a request body. Default 100 MiB, Elasticsearch's
	// http.max_content_length; a larger body is answered 413.
	MaxBodyBytes int64
	// Logger receives the HTTP server's own errors at debug level. Default:
	// discard.
	Logger *slog.Logger
	// Flavor is FlavorOpenSearch to answer as OpenSearch does: without the
	// X-Elastic-Product header, with OpenSearch's root document (Version
	// defaulting to "2.19.0") and accepting flat_object mappings. Default:
	// Elasticsearch.
	Flavor string
	// SigV4, when set, requires every request to be signed with AWS
	// Signature Version 4 by its credentials, as Amazon OpenSearch Service
	// does, in place of Username and APIKeys.
	SigV4 *SigV4
}

// FlavorOpenSearch is the Config.Flavor of an OpenSearch emulation.
const FlavorOpenSearch = "opensearch"

// Stats are a server's counters since it started.
type Stats struct {
	// Requests counts every request, BulkRequests those to a _bulk
	// endpoint that got past authentication and faults.
	Requests, BulkRequests int
	// BulkItems counts the actions of those bulk requests.
	BulkItems int
}

// Server is a running emulation. Its methods are safe for concurrent use.
type Server struct {
	cfg         Config
	log         *slog.Logger
	ln          *testcert.Listener
	fingerprint string
	done        chan struct{}
	closeOnce   sync.Once
	closeErr    error
	active      sync.WaitGroup

	mu     sync.Mutex
	closed bool
	st     *store
	stats  Stats

	rejectItems, rejectStatus int
	failRequests, failStatus  int
	delay                     time.Duration
}

// Start listens on cfg.Addr and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	switch {
	case cfg.Flavor != "" && cfg.Flavor != FlavorOpenSearch:
		return nil, fmt.Errorf("elastictest: unknown flavor %q", cfg.Flavor)
	case cfg.Version == "" && cfg.Flavor == FlavorOpenSearch:
		cfg.Version = "2.19.0"
	case cfg.Version == "":
		cfg.Version = "8.19.0"
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 100 << 20
	}
	s := &Server{
		cfg:  cfg,
		log:  cfg.Logger,
		done: make(chan struct{}),
		st:   newStore(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	ln, err := testcert.Listen(testcert.Config{
		Addr:        cfg.Addr,
		TLS:         cfg.TLS,
		Subject:     pkix.Name{CommonName: "elastictest"},
		CertDir:     cfg.CertDir,
		TempPattern: "elastictest-",
	})
	if err != nil {
		return nil, fmt.Errorf("elastictest: %w", err)
	}
	s.ln = ln
	if cfg.TLS {
		sum := sha256.Sum256(ln.Certificate.Certificate[0])
		s.fingerprint = hex.EncodeToString(sum[:])
	}
	ln.Serve(s, s.log)
	return s, nil
}

// NewServer starts a server with the default Config and closes it when the
// test ends.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	return NewServerConfig(tb, Config{})
}

// NewServerConfig starts a server with cfg and closes it when the test
// ends.
func NewServerConfig(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	s, err := Start(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// URL is the server's base URL, for the output's urls.
func (s *Server) URL() string { return s.ln.URL }

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr }

// CAFile is the path of the PEM certificate to trust; empty without TLS.
func (s *Server) CAFile() string { return s.ln.CAFile }

// CAPEM is the content of CAFile.
func (s *Server) CAPEM() []byte { return s.ln.CAPEM }

// CertificateFingerprint is the hex SHA-256 of the server certificate, the
// form Elasticsearch prints at first start; empty without TLS.
func (s *Server) CertificateFingerprint() string { return s.fingerprint }

// Close stops the server: it closes the listener and every connection,
// releases requests waiting out a Delay, waits for their handlers and
// removes the temporary certificate directory. Documents are lost.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.done)
		err := s.ln.Close()
		// http.Server.Close does not wait for handlers; those waiting out
		// a delay were released by done.
		s.active.Wait()
		s.ln.RemoveTemp()
		s.closeErr = err
	})
	return s.closeErr
}

// RejectNextItems makes the next n bulk actions fail with status instead of
// being applied, whatever request they arrive in: 429 as
// es_rejected_execution_exception (a full write queue), 400 as
// document_parsing_exception, 409 as version_conflict_engine_exception,
// 5xx as unavailable_shards_exception, anything else as a generic
// exception. n of 0 clears the knob.
func (s *Server) RejectNextItems(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectItems, s.rejectStatus = n, status
}

// FailNextRequests makes the next n requests, of any kind, fail as a whole
// with status and an Elasticsearch error body (429
// es_rejected_execution_exception, 503 unavailable_shards_exception, ...).
// n of 0 clears the knob.
func (s *Server) FailNextRequests(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failRequests, s.failStatus = n, status
}

// Delay makes every request wait d before it is handled, until the client
// gives up or the server closes. Zero turns it off.
func (s *Server) Delay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Count is GET /{target}/_count: the number of documents in the indices and
// data streams target names (comma-separated names and wildcard patterns).
// A missing concrete name counts as empty.
func (s *Server) Count(target string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx, _ := s.st.resolve(target, true)
	n := 0
	for _, ix := range idx {
		n += len(ix.docs)
	}
	return n
}

// Hit is one stored document.
type Hit struct {
	// Index is the concrete index: the backing index for a data stream.
	Index  string          `json:"_index"`
	ID     string          `json:"_id"`
	Source json.RawMessage `json:"_source"`
}

// Docs returns every document in target, ordered by index name and then
// by arrival.
func (s *Server) Docs(target string) []Hit {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx, _ := s.st.resolve(target, true)
	return s.st.hits(idx)
}

// Doc returns the source of the document id in index, which may be a data
// stream name.
func (s *Server) Doc(index, id string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx, err := s.st.resolve(index, false)
	if err != nil {
		return nil, false
	}
	for _, ix := range idx {
		if d, ok := ix.docs[id]; ok {
			return slices.Clone(d.source), true
		}
	}
	return nil, false
}

// Indices lists the concrete index names, hidden backing indices of data
// streams included, sorted.
func (s *Server) Indices() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.st.indices))
	for n := range s.st.indices {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// DataStreams lists the data stream names, sorted.
func (s *Server) DataStreams() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.st.streams))
	for n := range s.st.streams {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// IndexTemplate returns the body an index template was stored with.
func (s *Server) IndexTemplate(name string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.st.templates[name]
	if !ok {
		return nil, false
	}
	return slices.Clone(t.raw), true
}

// ServeHTTP answers one request. Every answer carries X-Elastic-Product,
// unless the server plays OpenSearch.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Flavor != FlavorOpenSearch {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "node_closed_exception", "node is closing")
		return
	}
	s.active.Add(1)
	defer s.active.Done()
	s.stats.Requests++
	delay := s.delay
	s.mu.Unlock()

	// Reading the body first lets net/http watch the connection, so the
	// request's context ends when a client gives up during a Delay.
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-s.done:
			t.Stop()
			// Returning would send an empty 200; abort the connection so
			// the client sees the server go away, as it would a real one.
			panic(http.ErrAbortHandler)
		}
	}
	if s.cfg.SigV4 != nil {
		if !s.cfg.SigV4.verify(w, r, body) {
			return
		}
	} else if !s.authenticate(w, r) {
		return
	}
	s.mu.Lock()
	if s.failRequests > 0 {
		s.failRequests--
		status := s.failStatus
		s.mu.Unlock()
		typ, reason := faultError(status)
		writeError(w, status, typ, reason)
		return
	}
	s.mu.Unlock()
	s.route(w, r, body)
}

func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	var rd io.Reader = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(rd)
		if err != nil {
			writeError(w, http.StatusBadRequest, "parse_exception", "cannot read gzip body: "+err.Error())
			return nil, false
		}
		defer func() { _ = zr.Close() }()
		rd = io.LimitReader(zr, s.cfg.MaxBodyBytes+1)
	}
	body, err := io.ReadAll(rd)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig) || int64(len(body)) > s.cfg.MaxBodyBytes:
		// Elasticsearch answers 413 with an empty body.
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "parse_exception", "cannot read body: "+err.Error())
		return nil, false
	}
	return body, true
}

// authenticate checks credentials when the server requires them and
// answers 401 as Elasticsearch's security layer does when they are wrong.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.Username == "" && len(s.cfg.APIKeys) == 0 {
		return true
	}
	auth := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(auth, " ")
	cred = strings.TrimSpace(cred)
	var reason string
	switch {
	case auth == "":
		reason = fmt.Sprintf("missing authentication credentials for REST request [%s]", r.URL.RequestURI())
	case strings.EqualFold(scheme, "Basic") && s.cfg.Username != "":
		raw, err := base64.StdEncoding.DecodeString(cred)
		user, pass, _ := strings.Cut(string(raw), ":")
		if err == nil && eq(user, s.cfg.Username) && eq(pass, s.cfg.Password) {
			return true
		}
		reason = fmt.Sprintf("unable to authenticate user [%s] for REST request [%s]", user, r.URL.RequestURI())
	case strings.EqualFold(scheme, "ApiKey") && len(s.cfg.APIKeys) > 0:
		for _, k := range s.cfg.APIKeys {
			if eq(cred, k) {
				return true
			}
		}
		reason = fmt.Sprintf("unable to authenticate with provided credentials and anonymous access is not allowed for this request [%s]", r.URL.RequestURI())
	default:
		reason = fmt.Sprintf("unable to authenticate with provided credentials and anonymous access is not allowed for this request [%s]", r.URL.RequestURI())
	}
	challenges := []string{`Basic realm="security", charset="UTF-8"`, `Bearer realm="security"`, `ApiKey`}
	for _, c := range challenges {
		w.Header().Add("WWW-Authenticate", c)
	}
	e := &esError{Type: "security_exception", Reason: reason, Header: map[string][]string{"WWW-Authenticate": challenges}}
	writeErrorValue(w, http.StatusUnauthorized, e)
	return false
}

func eq(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// faultError is the error Elasticsearch gives with a status.
func faultError(status int) (typ, reason string) {
	switch {
	case status == http.StatusTooManyRequests:
		return "es_rejected_execution_exception", "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=0, max_coordinating_and_primary_bytes=0]"
	case status == http.StatusBadRequest:
		return "document_parsing_exception", "failed to parse (injected by elastictest)"
	case status == http.StatusConflict:
		return "version_conflict_engine_exception", "version conflict (injected by elastictest)"
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return "security_exception", "action is unauthorized (injected by elastictest)"
	case status >= 500:
		return "unavailable_shards_exception", "primary shard is not active (injected by elastictest)"
	}
	return "exception", "injected by elastictest"
}

// route dispatches on the path's segments: ServeMux patterns cannot express
// Elasticsearch's mix of /{index}/_api and /_api/{name} without
// conflicting.
func (s *Server) route(w http.ResponseWriter, r *http.Request, body []byte) {
	p := strings.Trim(r.URL.Path, "/")
	var seg []string
	if p != "" {
		seg = strings.Split(p, "/")
	}
	m := r.Method
	get := m == http.MethodGet || m == http.MethodHead
	write := m == http.MethodPost || m == http.MethodPut
	switch {
	case len(seg) == 0 && get:
		s.info(w)
	case len(seg) == 1 && seg[0] == "_bulk" && write:
		s.bulk(w, r, "", body)
	case len(seg) == 2 && seg[1] == "_bulk" && write:
		s.bulk(w, r, seg[0], body)
	case len(seg) == 2 && seg[1] == "_pit" && m == http.MethodPost:
		s.openPIT(w, r, seg[0])
	case len(seg) == 1 && seg[0] == "_pit" && m == http.MethodDelete:
		s.closePIT(w, body)
	case len(seg) == 1 && (seg[0] == "_count" || seg[0] == "_search") && (get || m == http.MethodPost):
		s.search(w, r, "_all", seg[0] == "_count", body)
	case len(seg) == 2 && (seg[1] == "_count" || seg[1] == "_search") && (get || m == http.MethodPost):
		s.search(w, r, seg[0], seg[1] == "_count", body)
	case len(seg) == 1 && seg[0] == "_refresh" && (get || m == http.MethodPost),
		len(seg) == 2 && seg[1] == "_refresh" && (get || m == http.MethodPost):
		writeJSON(w, http.StatusOK, map[string]any{"_shards": map[string]int{"total": 1, "successful": 1, "failed": 0}})
	case len(seg) == 1 && seg[0] == "_index_template" && get:
		s.indexTemplate(w, r, "*", body)
	case len(seg) == 2 && seg[0] == "_index_template":
		s.indexTemplate(w, r, seg[1], body)
	case len(seg) == 1 && seg[0] == "_data_stream" && get:
		s.dataStream(w, r, "*")
	case len(seg) == 2 && seg[0] == "_data_stream":
		s.dataStream(w, r, seg[1])
	case len(seg) == 3 && seg[0] == "_ingest" && seg[1] == "pipeline":
		s.pipeline(w, r, seg[2], body)
	case len(seg) == 2 && seg[0] == "_cluster" && seg[1] == "health" && get:
		s.mu.Lock()
		n := len(s.st.indices)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"cluster_name": "elastictest", "status": "green", "timed_out": false,
			"number_of_nodes": 1, "number_of_data_nodes": 1, "active_primary_shards": n, "active_shards": n})
	case len(seg) == 3 && seg[1] == "_doc" && get:
		s.getDoc(w, seg[0], seg[2])
	case len(seg) == 1 && !strings.HasPrefix(seg[0], "_") && (m == http.MethodDelete || m == http.MethodHead):
		s.index(w, r, seg[0])
	default:
		writeJSON(w, http.StatusBadRequest, map[string]any{
			"error":  fmt.Sprintf("no handler found for uri [%s] and method [%s] (not emulated by elastictest)", r.URL.RequestURI(), m),
			"status": http.StatusBadRequest,
		})
	}
}

func (s *Server) info(w http.ResponseWriter) {
	if s.cfg.Flavor == FlavorOpenSearch {
		writeJSON(w, http.StatusOK, map[string]any{
			"name":         "elastictest",
			"cluster_name": "elastictest",
			"cluster_uuid": "ZWxhc3RpY3Rlc3QtY2x1c3Rlcg",
			"version": map[string]any{
				"distribution":                        "opensearch",
				"number":                              s.cfg.Version,
				"build_type":                          "elastictest",
				"build_hash":                          "0000000000000000000000000000000000000000",
				"build_date":                          "2025-01-01T00:00:00.000000000Z",
				"build_snapshot":                      false,
				"lucene_version":                      "9.12.1",
				"minimum_wire_compatibility_version":  "7.10.0",
				"minimum_index_compatibility_version": "7.0.0",
			},
			"tagline": "The OpenSearch Project: https://opensearch.org/",
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"name":         "elastictest",
		"cluster_name": "elastictest",
		"cluster_uuid": "ZWxhc3RpY3Rlc3QtY2x1c3Rlcg",
		"version": map[string]any{
			"number":                              s.cfg.Version,
			"build_flavor":                        "default",
			"build_type":                          "elastictest",
			"build_hash":                          "0000000000000000000000000000000000000000",
			"build_date":                          "2025-01-01T00:00:00.000000000Z",
			"build_snapshot":                      false,
			"lucene_version":                      "9.12.1",
			"minimum_wire_compatibility_version":  "7.17.0",
			"minimum_index_compatibility_version": "7.0.0",
		},
		"tagline": "You Know, for Search",
	})
}

// esError is Elasticsearch's error object.
type esError struct {
	RootCause []esError           `json:"root_cause,omitempty"`
	Type      string              `json:"type"`
	Reason    string              `json:"reason"`
	IndexUUID string              `json:"index_uuid,omitempty"`
	Shard     string              `json:"shard,omitempty"`
	Index     string              `json:"index,omitempty"`
	CausedBy  *esError            `json:"caused_by,omitempty"`
	Header    map[string][]string `json:"header,omitempty"`
}

func writeError(w http.ResponseWriter, status int, typ, reason string) {
	writeErrorValue(w, status, &esError{Type: typ, Reason: reason})
}

// writeErrorValue writes {"error":{...,"root_cause":[...]},"status":N}.
func writeErrorValue(w http.ResponseWriter, status int, e *esError) {
	root := *e
	root.CausedBy, root.RootCause = nil, nil
	e.RootCause = []esError{root}
	writeJSON(w, status, map[string]any{"error": e, "status": status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
