package hectest_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/auditpipe/auditpipe/testenv/hectest"
)

const ch = "0aecb5b6-9c3e-4a53-9a4b-0d6a1b6c8e11"

type answer struct {
	Text    string          `json:"text"`
	Code    int             `json:"code"`
	AckID   *int            `json:"ackId"`
	Invalid *int            `json:"invalid-event-number"`
	Acks    map[string]bool `json:"acks"`
}

func post(t *testing.T, url string, header map[string]string, body []byte) (int, answer) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a answer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return resp.StatusCode, a
}

func TestAuthAndChannel(t *testing.T) {
	s := hectest.New(t, hectest.Config{})
	ev := []byte(`{"event":"x"}`)
	auth := "Splunk " + s.Token()
	for _, tc := range []struct {
		name   string
		header map[string]string
		status int
		code   int
	}{
		{"no token", map[string]string{"X-Splunk-Request-Channel": ch}, 401, 2},
		{"no Splunk prefix", map[string]string{"Authorization": s.Token(), "X-Splunk-Request-Channel": ch}, 401, 3},
		{"unknown token", map[string]string{"Authorization": "Splunk nope", "X-Splunk-Request-Channel": ch}, 403, 4},
		{"no channel", map[string]string{"Authorization": auth}, 400, 10},
		{"bad channel", map[string]string{"Authorization": auth, "X-Splunk-Request-Channel": "abc"}, 400, 11},
		{"ok", map[string]string{"Authorization": auth, "X-Splunk-Request-Channel": ch}, 200, 0},
	} {
		status, a := post(t, s.URL()+"/services/collector/event", tc.header, ev)
		if status != tc.status || a.Code != tc.code {
			t.Errorf("%s: HTTP %d code %d (%s), want %d code %d", tc.name, status, a.Code, a.Text, tc.status, tc.code)
		}
	}
	s.DisableToken(true)
	if status, a := post(t, s.URL()+"/services/collector/event", map[string]string{"Authorization": auth, "X-Splunk-Request-Channel": ch}, ev); status != 403 || a.Code != 1 {
		t.Errorf("disabled token: HTTP %d code %d", status, a.Code)
	}
}

func TestEventValidation(t *testing.T) {
	s := hectest.New(t, hectest.Config{Indexes: []string{"main", "audit"}})
	h := map[string]string{"Authorization": "Splunk " + s.Token(), "X-Splunk-Request-Channel": ch}
	for _, tc := range []struct {
		name    string
		body    string
		code    int
		invalid int
	}{
		{"empty", ``, 5, -1},
		{"not json", `{"event":`, 6, 0},
		{"no event", `{"event":"a"} {"time":1}`, 12, 1},
		{"blank event", `{"event":""}`, 13, 0},
		{"null event", `{"event":null}`, 13, 0},
		{"bad time", `{"event":"a","time":"soon"}`, 6, 0},
		{"wrong index", `{"event":"a","index":"main"}{"event":"b","index":"other"}`, 7, 1},
		{"bad fields", `{"event":"a","fields":{"n":1}}`, 15, 0},
	} {
		status, a := post(t, s.URL()+"/services/collector/event", h, []byte(tc.body))
		got := -1
		if a.Invalid != nil {
			got = *a.Invalid
		}
		if status != 400 || a.Code != tc.code || got != tc.invalid {
			t.Errorf("%s: HTTP %d code %d invalid-event-number %d, want 400 code %d at %d", tc.name, status, a.Code, got, tc.code, tc.invalid)
		}
	}
	// The events before an invalid one were indexed, as Splunk does.
	if n := len(s.Events("main")); n != 2 {
		t.Errorf("main holds %d events, want 2", n)
	}
	status, a := post(t, s.URL()+"/services/collector/event", h,
		[]byte(`{"event":{"id":"e1"},"time":"1795253401.123","index":"audit","fields":{"a":"x","b":["y","z"]}}`+"\n"+`{"event":{"id":"e1"},"index":"audit"}`))
	if status != 200 || a.Code != 0 || a.AckID == nil || *a.AckID != 0 {
		t.Fatalf("HTTP %d %+v", status, a)
	}
	evs := s.Events("audit")
	if len(evs) != 2 || evs[0].Time != 1795253401.123 || evs[0].ID() != "e1" || s.Stats().Duplicates != 1 {
		t.Errorf("audit = %+v, stats %+v", evs, s.Stats())
	}
}

func TestAcks(t *testing.T) {
	s := hectest.New(t, hectest.Config{})
	h := map[string]string{"Authorization": "Splunk " + s.Token(), "X-Splunk-Request-Channel": ch}
	ev := []byte(`{"event":"x"}`)
	s.DelayAcks(1)
	_, a0 := post(t, s.URL()+"/services/collector/event", h, ev)
	s.DelayAcks(0)
	s.LoseAcks(1)
	_, a1 := post(t, s.URL()+"/services/collector/event", h, ev)
	_, a2 := post(t, s.URL()+"/services/collector/event", h, ev)
	if *a0.AckID != 0 || *a1.AckID != 1 || *a2.AckID != 2 {
		t.Fatalf("ack ids %d %d %d, want 0 1 2", *a0.AckID, *a1.AckID, *a2.AckID)
	}
	q := []byte(`{"acks":[0,1,2]}`)
	_, r := post(t, s.URL()+"/services/collector/ack", h, q)
	if r.Acks["0"] || r.Acks["1"] || !r.Acks["2"] {
		t.Errorf("first poll %v, want only 2 true", r.Acks)
	}
	_, r = post(t, s.URL()+"/services/collector/ack?channel="+ch, map[string]string{"Authorization": h["Authorization"]}, q)
	if !r.Acks["0"] || r.Acks["1"] || r.Acks["2"] {
		t.Errorf("second poll %v, want only 0 true (2 was forgotten, 1 lost)", r.Acks)
	}
	if st := s.Stats(); st.Indexed != 3 || st.AckPolls != 2 {
		t.Errorf("stats %+v", st)
	}
	noack := hectest.New(t, hectest.Config{NoAck: true})
	if status, a := post(t, noack.URL()+"/services/collector/ack", h, q); status != 400 || a.Code != 14 {
		t.Errorf("ack disabled: HTTP %d code %d, want 400 code 14", status, a.Code)
	}
	if _, a := post(t, noack.URL()+"/services/collector/event", map[string]string{"Authorization": h["Authorization"]}, ev); a.Code != 0 || a.AckID != nil {
		t.Errorf("no ack: %+v, want success without ackId", a)
	}
}

func TestRawGzipAndBusy(t *testing.T) {
	s := hectest.New(t, hectest.Config{Indexes: []string{"main", "raw"}})
	h := map[string]string{"Authorization": "Splunk " + s.Token(), "X-Splunk-Request-Channel": ch, "Content-Encoding": "gzip"}
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	_, _ = zw.Write([]byte("{\"id\":\"r1\"}\nplain line\n"))
	_ = zw.Close()
	status, a := post(t, s.URL()+"/services/collector/raw?index=raw&sourcetype=st", h, zb.Bytes())
	if status != 200 || a.Code != 0 {
		t.Fatalf("raw: HTTP %d %+v", status, a)
	}
	evs := s.Events("raw")
	if len(evs) != 2 || !evs[0].Raw || evs[0].ID() != "r1" || string(evs[1].Event) != `"plain line"` || evs[1].Sourcetype != "st" {
		t.Errorf("raw events %+v", evs)
	}
	if s.Stats().Gzipped != 1 {
		t.Errorf("stats %+v", s.Stats())
	}
	s.Busy(1, 2)
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/services/collector/event", bytes.NewReader([]byte(`{"event":"x"}`)))
	req.Header.Set("Authorization", "Splunk "+s.Token())
	req.Header.Set("X-Splunk-Request-Channel", ch)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("busy: HTTP %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	resp, err = http.Get(s.URL() + "/services/collector/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("health: HTTP %d", resp.StatusCode)
	}
}
