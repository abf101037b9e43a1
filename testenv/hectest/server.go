package hectest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultToken is the token a Server accepts when Config.Token is empty.
const DefaultToken = "11111111-2222-4333-8444-555555555555"

// Config configures a Server.
type Config struct {
	// Addr is the address to listen on. Default 127.0.0.1:0 (a free port).
	Addr string
	// Token is the HEC token accepted. Default DefaultToken.
	Token string
	// Indexes are the indexes the token may write to. Default ["main"].
	Indexes []string
	// DefaultIndex is where an event without an index goes. Default the
	// first of Indexes.
	DefaultIndex string
	// NoAck turns indexer acknowledgement off for the token: no channel is
	// required, no ackId is given, and the ack endpoint answers code 14.
	NoAck bool
	// CountOnly keeps only counts, not the events, and does not look for
	// duplicates (benchmarks).
	CountOnly bool
	// MaxBodyBytes is the largest body read (Splunk's
	// max_content_length). Default 64 MiB.
	MaxBodyBytes int64
}

// Event is one indexed event.
type Event struct {
	Index      string
	Sourcetype string
	Source     string
	Host       string
	// Time is the envelope's time, in epoch seconds (0: absent).
	Time    float64
	Fields  map[string]any
	Event   json.RawMessage
	Channel string
	// Raw marks an event that came through the raw endpoint.
	Raw bool
}

// ID is the "id" member of the event when it is a JSON object.
func (e Event) ID() string {
	var v struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(e.Event, &v)
	return v.ID
}

// Stats counts what the server saw.
type Stats struct {
	Requests   int // requests to the event and raw endpoints
	Accepted   int // of them answered code 0
	Indexed    int // events indexed
	Duplicates int // events whose id their index already held
	AckPolls   int // requests to the ack endpoint
	Gzipped    int // bodies that came gzip-encoded
}

// Server is a running HEC emulation.
type Server struct {
	cfg Config
	srv *http.Server
	ln  net.Listener
	url string

	mu            sync.Mutex
	stats         Stats
	events        map[string][]Event
	ids           map[string]map[string]bool // index → event ids
	channels      map[string]*channel
	disabled      bool
	faults        []fault
	ackDelayPolls int
	loseAcks      int
}

type fault struct {
	status int
	code   int
	text   string
	retry  string
}

type ackState struct {
	pollsLeft int
	lost      bool
}

type channel struct {
	next int
	acks map[int]*ackState
}

var guid = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// indexName is what Splunk accepts as an index name: lower-case letters,
// digits, "_" and "-", not starting with "-".
var indexName = regexp.MustCompile(`^[a-z0-9_][a-z0-9_-]*$`)

// Start starts a server with cfg.
func Start(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Token == "" {
		cfg.Token = DefaultToken
	}
	if len(cfg.Indexes) == 0 {
		cfg.Indexes = []string{"main"}
	}
	if cfg.DefaultIndex == "" {
		cfg.DefaultIndex = cfg.Indexes[0]
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 64 << 20
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("hectest: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		ln:       ln,
		url:      "http://" + ln.Addr().String(),
		events:   map[string][]Event{},
		ids:      map[string]map[string]bool{},
		channels: map[string]*channel{},
	}
	mux := http.NewServeMux()
	for _, p := range []string{"/services/collector", "/services/collector/event", "/services/collector/event/1.0"} {
		mux.HandleFunc("POST "+p, func(w http.ResponseWriter, r *http.Request) { s.ingest(w, r, false) })
	}
	mux.HandleFunc("POST /services/collector/raw", func(w http.ResponseWriter, r *http.Request) { s.ingest(w, r, true) })
	mux.HandleFunc("POST /services/collector/raw/1.0", func(w http.ResponseWriter, r *http.Request) { s.ingest(w, r, true) })
	mux.HandleFunc("POST /services/collector/ack", s.ack)
	mux.HandleFunc("GET /services/collector/health", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, http.StatusOK, 17, "HEC is healthy", nil)
	})
	mux.HandleFunc("GET /_inspect", s.inspect)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// New starts a server with cfg and closes it when the test ends.
func New(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// Close stops the server.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// InspectURL is where GET answers what the server holds, as JSON:
// {"stats":{...},"indexes":{"<index>":[{"index":..,"sourcetype":..,
// "source":..,"host":..,"time":..,"fields":{..},"event":{..}}]}}. It is
// not part of HEC.
func (s *Server) InspectURL() string { return s.url + "/_inspect" }

func (s *Server) inspect(w http.ResponseWriter, _ *http.Request) {
	type event struct {
		Index      string          `json:"index"`
		Sourcetype string          `json:"sourcetype,omitempty"`
		Source     string          `json:"source,omitempty"`
		Host       string          `json:"host,omitempty"`
		Time       float64         `json:"time,omitempty"`
		Fields     map[string]any  `json:"fields,omitempty"`
		Event      json.RawMessage `json:"event"`
	}
	s.mu.Lock()
	out := struct {
		Stats   Stats              `json:"stats"`
		Indexes map[string][]event `json:"indexes"`
	}{Stats: s.stats, Indexes: map[string][]event{}}
	for ix, evs := range s.events {
		for _, e := range evs {
			out.Indexes[ix] = append(out.Indexes[ix], event{e.Index, e.Sourcetype, e.Source, e.Host, e.Time, e.Fields, e.Event})
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// URL is the HEC base URL (http://host:port).
func (s *Server) URL() string { return s.url }

// Token is the token the server accepts.
func (s *Server) Token() string { return s.cfg.Token }

// Busy makes the next n event requests answer 503, code 9 "Server is
// busy", with Retry-After: retryAfter seconds when it is positive.
func (s *Server) Busy(n, retryAfter int) {
	ra := ""
	if retryAfter > 0 {
		ra = strconv.Itoa(retryAfter)
	}
	s.Fail(n, http.StatusServiceUnavailable, 9, "Server is busy", ra)
}

// Fail makes the next n event requests answer status with HEC code and
// text (and a Retry-After header unless retryAfter is empty), without
// indexing anything.
func (s *Server) Fail(n, status, code int, text, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, fault{status: status, code: code, text: text, retry: retryAfter})
	}
}

// DisableToken disables or enables the token (code 1, 403).
func (s *Server) DisableToken(disabled bool) {
	s.mu.Lock()
	s.disabled = disabled
	s.mu.Unlock()
}

// DelayAcks makes the ack of each request accepted from now on report
// false to the first polls queries that ask for it, true after.
func (s *Server) DelayAcks(polls int) {
	s.mu.Lock()
	s.ackDelayPolls = polls
	s.mu.Unlock()
}

// LoseAcks makes the next n accepted requests' acks never become true;
// their events are indexed all the same.
func (s *Server) LoseAcks(n int) {
	s.mu.Lock()
	s.loseAcks = n
	s.mu.Unlock()
}

// Stats returns the counts so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Events returns the events indexed into index, in arrival order.
func (s *Server) Events(index string) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events[index])
}

// Indexes returns the indexes that hold events, sorted.
func (s *Server) Indexes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ix []string
	for k := range s.events {
		ix = append(ix, k)
	}
	slices.Sort(ix)
	return ix
}

// IDs returns the distinct event ids index holds, sorted.
func (s *Server) IDs(index string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id := range s.ids[index] {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// reply writes HEC's answer: {"text":...,"code":...} and extra members.
func reply(w http.ResponseWriter, status, code int, text string, extra map[string]any) {
	m := map[string]any{"text": text, "code": code}
	for k, v := range extra {
		m[k] = v
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(m)
}

// auth checks the Authorization header as HEC does; it answers and
// returns false when the request may not go on.
func (s *Server) auth(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	if h == "" {
		reply(w, http.StatusUnauthorized, 2, "Token is required", nil)
		return false
	}
	tok, ok := strings.CutPrefix(h, "Splunk ")
	if !ok {
		reply(w, http.StatusUnauthorized, 3, "Invalid authorization", nil)
		return false
	}
	if tok != s.cfg.Token {
		reply(w, http.StatusForbidden, 4, "Invalid token", nil)
		return false
	}
	s.mu.Lock()
	disabled := s.disabled
	s.mu.Unlock()
	if disabled {
		reply(w, http.StatusForbidden, 1, "Token disabled", nil)
		return false
	}
	return true
}

// channelOf returns the request's data channel; it answers and returns
// false when ack is on and the channel is missing or not a GUID.
func (s *Server) channelOf(w http.ResponseWriter, r *http.Request) (string, bool) {
	ch := r.Header.Get("X-Splunk-Request-Channel")
	if ch == "" {
		ch = r.URL.Query().Get("channel")
	}
	if s.cfg.NoAck {
		return ch, true
	}
	if ch == "" {
		reply(w, http.StatusBadRequest, 10, "Data channel is missing", nil)
		return "", false
	}
	if !guid.MatchString(ch) {
		reply(w, http.StatusBadRequest, 11, "Invalid data channel", nil)
		return "", false
	}
	return ch, true
}

func (s *Server) body(r *http.Request) ([]byte, bool, error) {
	var rd io.Reader = http.MaxBytesReader(nil, r.Body, s.cfg.MaxBodyBytes)
	gz := strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip")
	if gz {
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, gz, err
		}
		defer zr.Close()
		rd = io.LimitReader(zr, s.cfg.MaxBodyBytes)
	}
	b, err := io.ReadAll(rd)
	return b, gz, err
}

// envelope is the event endpoint's JSON object.
type envelope struct {
	Time       json.RawMessage `json:"time"`
	Host       *string         `json:"host"`
	Source     *string         `json:"source"`
	Sourcetype *string         `json:"sourcetype"`
	Index      *string         `json:"index"`
	Fields     map[string]any  `json:"fields"`
	Event      json.RawMessage `json:"event"`
}

// ingestErr is a rejected event: its HEC code and text.
type ingestErr struct {
	code int
	text string
}

func (s *Server) ingest(w http.ResponseWriter, r *http.Request, raw bool) {
	if !s.auth(w, r) {
		return
	}
	ch, ok := s.channelOf(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	s.stats.Requests++
	var f *fault
	if len(s.faults) > 0 {
		f = &s.faults[0]
		s.faults = s.faults[1:]
	}
	s.mu.Unlock()
	if f != nil {
		if f.retry != "" {
			w.Header().Set("Retry-After", f.retry)
		}
		reply(w, f.status, f.code, f.text, nil)
		return
	}
	body, gz, err := s.body(r)
	if err != nil {
		reply(w, http.StatusBadRequest, 6, "Invalid data format", nil)
		return
	}
	var evs []Event
	var bad *ingestErr
	if raw {
		evs, bad = s.parseRaw(r, body, ch)
	} else {
		evs, bad = s.parseEvents(body, ch)
	}
	s.mu.Lock()
	if gz {
		s.stats.Gzipped++
	}
	// Splunk indexes the events before an invalid one.
	for _, ev := range evs {
		s.index(ev)
	}
	if bad != nil {
		s.mu.Unlock()
		var extra map[string]any
		if bad.code != 5 {
			extra = map[string]any{"invalid-event-number": len(evs)}
		}
		reply(w, http.StatusBadRequest, bad.code, bad.text, extra)
		return
	}
	s.stats.Accepted++
	var extra map[string]any
	if !s.cfg.NoAck {
		c := s.channels[ch]
		if c == nil {
			c = &channel{acks: map[int]*ackState{}}
			s.channels[ch] = c
		}
		id := c.next
		c.next++
		st := &ackState{pollsLeft: s.ackDelayPolls}
		if s.loseAcks > 0 {
			s.loseAcks--
			st.lost = true
		}
		c.acks[id] = st
		extra = map[string]any{"ackId": id}
	}
	s.mu.Unlock()
	reply(w, http.StatusOK, 0, "Success", extra)
}

// index stores ev; s.mu is held.
func (s *Server) index(ev Event) {
	s.stats.Indexed++
	if s.cfg.CountOnly {
		return
	}
	if id := ev.ID(); id != "" {
		seen := s.ids[ev.Index]
		if seen == nil {
			seen = map[string]bool{}
			s.ids[ev.Index] = seen
		}
		if seen[id] {
			s.stats.Duplicates++
		}
		seen[id] = true
	}
	s.events[ev.Index] = append(s.events[ev.Index], ev)
}

// parseEvents reads the event endpoint's body: JSON objects one after the
// other. It returns the events up to the first invalid one, and that
// one's error.
func (s *Server) parseEvents(body []byte, ch string) ([]Event, *ingestErr) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, &ingestErr{5, "No data"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var evs []Event
	for {
		var env envelope
		err := dec.Decode(&env)
		if errors.Is(err, io.EOF) {
			return evs, nil
		}
		if err != nil {
			return evs, &ingestErr{6, "Invalid data format"}
		}
		ev, bad := s.check(env, ch)
		if bad != nil {
			return evs, bad
		}
		evs = append(evs, ev)
	}
}

func (s *Server) check(env envelope, ch string) (Event, *ingestErr) {
	if env.Event == nil {
		return Event{}, &ingestErr{12, "Event field is required"}
	}
	if t := string(bytes.TrimSpace(env.Event)); t == "null" || t == `""` {
		return Event{}, &ingestErr{13, "Event field cannot be blank"}
	}
	ev := Event{Event: env.Event, Channel: ch, Fields: env.Fields, Index: s.cfg.DefaultIndex}
	if env.Time != nil {
		t := strings.Trim(string(env.Time), `"`)
		f, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return Event{}, &ingestErr{6, "Invalid data format"}
		}
		ev.Time = f
	}
	if env.Index != nil {
		if !indexName.MatchString(*env.Index) || !slices.Contains(s.cfg.Indexes, *env.Index) {
			return Event{}, &ingestErr{7, "Incorrect index"}
		}
		ev.Index = *env.Index
	}
	for _, v := range env.Fields {
		switch v := v.(type) {
		case string:
		case []any:
			for _, e := range v {
				if _, ok := e.(string); !ok {
					return Event{}, &ingestErr{15, "Error in handling indexed fields"}
				}
			}
		default:
			return Event{}, &ingestErr{15, "Error in handling indexed fields"}
		}
	}
	ev.Host, ev.Source, ev.Sourcetype = deref(env.Host), deref(env.Source), deref(env.Sourcetype)
	return ev, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// parseRaw reads the raw endpoint's body, one event per line, with the
// metadata from the query string.
func (s *Server) parseRaw(r *http.Request, body []byte, ch string) ([]Event, *ingestErr) {
	q := r.URL.Query()
	index := s.cfg.DefaultIndex
	if ix := q.Get("index"); ix != "" {
		if !slices.Contains(s.cfg.Indexes, ix) {
			return nil, &ingestErr{7, "Incorrect index"}
		}
		index = ix
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, &ingestErr{5, "No data"}
	}
	var evs []Event
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, len(body)+1)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		ev := Event{Index: index, Host: q.Get("host"), Source: q.Get("source"),
			Sourcetype: q.Get("sourcetype"), Channel: ch, Raw: true}
		if json.Valid(line) {
			ev.Event = json.RawMessage(bytes.Clone(line))
		} else {
			ev.Event, _ = json.Marshal(string(line))
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// ack answers POST /services/collector/ack {"acks":[ids]}.
func (s *Server) ack(w http.ResponseWriter, r *http.Request) {
	if !s.auth(w, r) {
		return
	}
	if s.cfg.NoAck {
		reply(w, http.StatusBadRequest, 14, "ACK is disabled", nil)
		return
	}
	ch, ok := s.channelOf(w, r)
	if !ok {
		return
	}
	var req struct {
		Acks []int `json:"acks"`
	}
	b, _, err := s.body(r)
	if err != nil || json.Unmarshal(b, &req) != nil {
		reply(w, http.StatusBadRequest, 6, "Invalid data format", nil)
		return
	}
	s.mu.Lock()
	s.stats.AckPolls++
	out := make(map[string]bool, len(req.Acks))
	c := s.channels[ch]
	for _, id := range req.Acks {
		var st *ackState
		if c != nil {
			st = c.acks[id]
		}
		switch {
		case st == nil, st.lost:
			out[strconv.Itoa(id)] = false
		case st.pollsLeft > 0:
			st.pollsLeft--
			out[strconv.Itoa(id)] = false
		default:
			// Splunk forgets an ack once it has reported it true.
			delete(c.acks, id)
			out[strconv.Itoa(id)] = true
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"acks": out})
}
