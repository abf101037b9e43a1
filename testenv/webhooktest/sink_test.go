package webhooktest_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/outputs/cloudevents"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
	"github.com/auditpipe/auditpipe/testenv/webhooktest"
)

func ndjson(evs []auditpipe.Event) []byte {
	var b []byte
	for i := range evs {
		b = append(eventjson.Append(b, &evs[i]), '\n')
	}
	return b
}

func jsonArray(t testing.TB, evs []auditpipe.Event) []byte {
	b, err := json.Marshal(evs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// same compares events by their JSON form, which is what went over the wire.
func same(t *testing.T, got, want []auditpipe.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range got {
		if g, w := eventjson.Append(nil, &got[i]), eventjson.Append(nil, &want[i]); !bytes.Equal(g, w) {
			t.Errorf("event %d:\n got %s\nwant %s", i, g, w)
		}
	}
}

func TestDecode(t *testing.T) {
	evs := outputstest.Events(3)
	one := eventjson.Append(nil, &evs[0])
	for _, tc := range []struct {
		name, contentType string
		body              []byte
		want              []auditpipe.Event
		err               string
	}{
		{"json event", "application/json", one, evs[:1], ""},
		{"json event with charset", "application/json; charset=utf-8", one, evs[:1], ""},
		{"json array", "application/json", jsonArray(t, evs), evs, ""},
		{"ndjson", "application/x-ndjson", ndjson(evs), evs, ""},
		{"ndjson blank lines", "application/x-ndjson", append([]byte("\n\n"), ndjson(evs)...), evs, ""},
		{"cloudevent", "application/cloudevents+json", cloudevents.AppendStructured(nil, &evs[1]), evs[1:2], ""},
		{"cloudevents batch", "application/cloudevents-batch+json", cloudevents.AppendBatch(nil, evs), evs, ""},
		{"sniffed ndjson", "text/plain", ndjson(evs), evs, ""},
		{"sniffed cloudevents batch", "", cloudevents.AppendBatch(nil, evs), evs, ""},
		{"sniffed event", "", one, evs[:1], ""},
		{"unknown field", "application/json", []byte(`{"id":"x","bogus":1}`), nil, "unknown field"},
		{"no id", "application/json", []byte(`{"action":"x"}`), nil, "no id"},
		{"trailing data", "application/json", append(append([]byte{}, one...), one...), nil, "after the JSON value"},
		{"empty array", "application/json", []byte(`[]`), nil, "empty"},
		{"empty ndjson", "application/x-ndjson", []byte("\n"), nil, "no events"},
		{"bad ndjson line", "application/x-ndjson", append(ndjson(evs[:1]), "{\n"...), nil, "line 2"},
		{"cloudevent id mismatch", "application/cloudevents+json",
			bytes.Replace(cloudevents.AppendStructured(nil, &evs[0]), []byte(`"id":"`), []byte(`"id":"x`), 1), nil, "differs"},
		{"cloudevent old spec", "application/cloudevents+json", []byte(`{"specversion":"0.3","id":"a","source":"s","type":"t","data":{}}`), nil, "specversion"},
		{"cloudevent without data", "application/cloudevents+json", []byte(`{"specversion":"1.0","id":"a","source":"s","type":"t"}`), nil, "no data"},
		{"cloudevents batch not array", "application/cloudevents-batch+json", cloudevents.AppendStructured(nil, &evs[0]), nil, "not a JSON array"},
		{"empty body", "", nil, nil, "empty body"},
		{"not json", "", []byte("hello"), nil, "neither"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := webhooktest.Decode(tc.contentType, tc.body)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			same(t, got, tc.want)
		})
	}
}

func TestSignature(t *testing.T) {
	body := []byte(`{"a":1}`)
	sig := webhooktest.Sign("s3cret", body)
	for _, tc := range []struct {
		name, secret, header string
		body                 []byte
		ok                   bool
	}{
		{"right", "s3cret", sig, body, true},
		{"other secret", "other", sig, body, false},
		{"other body", "s3cret", sig, []byte(`{"a":2}`), false},
		{"no prefix", "s3cret", strings.TrimPrefix(sig, "sha256="), body, false},
		{"sha1 prefix", "s3cret", "sha1=" + strings.TrimPrefix(sig, "sha256="), body, false},
		{"not hex", "s3cret", "sha256=zz", body, false},
		{"missing", "s3cret", "", body, false},
		{"upper-case hex", "s3cret", "sha256=" + strings.ToUpper(strings.TrimPrefix(sig, "sha256=")), body, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := webhooktest.VerifySignature(tc.secret, tc.body, tc.header); got != tc.ok {
				t.Errorf("VerifySignature = %v, want %v", got, tc.ok)
			}
		})
	}
	// The GitHub documentation's test vector.
	if got := webhooktest.Sign("It's a Secret to Everybody", []byte("Hello, World!")); got != "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17" {
		t.Errorf("Sign = %s, differs from GitHub's example", got)
	}
}

func post(t *testing.T, client *http.Client, url, contentType string, body []byte, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestSinkAuthentication(t *testing.T) {
	s := webhooktest.NewSinkConfig(t, webhooktest.Config{Secret: "s3cret", BearerToken: "tok"})
	body := ndjson(outputstest.Events(2))
	for _, tc := range []struct {
		name   string
		header map[string]string
		status int
	}{
		{"all right", map[string]string{"Authorization": "Bearer tok", "X-Signature-256": webhooktest.Sign("s3cret", body)}, 200},
		{"wrong signature", map[string]string{"Authorization": "Bearer tok", "X-Signature-256": webhooktest.Sign("nope", body)}, 401},
		{"no signature", map[string]string{"Authorization": "Bearer tok"}, 401},
		{"wrong token", map[string]string{"Authorization": "Bearer nope", "X-Signature-256": webhooktest.Sign("s3cret", body)}, 401},
		{"no token", map[string]string{"X-Signature-256": webhooktest.Sign("s3cret", body)}, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if resp := post(t, http.DefaultClient, s.URL(), "application/x-ndjson", body, tc.header); resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
	reqs := s.Requests()
	if len(reqs) != 5 || !reqs[0].SignatureOK || reqs[1].SignatureOK {
		t.Errorf("requests recorded wrong: %+v", reqs)
	}
	if n := len(s.Events()); n != 2 {
		t.Errorf("%d events accepted, want 2 (from the one good request)", n)
	}
}

func TestSinkViewsAndInspect(t *testing.T) {
	s := webhooktest.NewSink(t)
	evs := outputstest.Events(4)
	post(t, http.DefaultClient, s.URL(), "application/x-ndjson", ndjson(evs[:2]), map[string]string{"Idempotency-Key": "k1", "Authorization": "Bearer x"})
	// The same request again: the raw view grows, the de-duplicated one
	// does not.
	post(t, http.DefaultClient, s.URL(), "application/x-ndjson", ndjson(evs[:2]), map[string]string{"Idempotency-Key": "k1"})
	// Another key but an event already seen, and a new one.
	post(t, http.DefaultClient, s.URL(), "application/x-ndjson", ndjson(evs[1:3]), map[string]string{"Idempotency-Key": "k2"})

	same(t, s.Events(), evs[:3])
	if n := len(s.RawEvents()); n != 6 {
		t.Errorf("raw view has %d events, want 6", n)
	}
	if reqs := s.Requests(); len(reqs) != 3 || !reqs[1].Duplicate || reqs[2].Duplicate {
		t.Errorf("duplicate flags wrong: %+v", reqs)
	}

	resp, err := http.Get(s.InspectURL() + "?raw=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Stats     webhooktest.Stats
		Requests  []map[string]any
		Events    []auditpipe.Event
		RawEvents []auditpipe.Event `json:"raw_events"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Stats.Requests != 3 || len(got.Requests) != 3 || len(got.Events) != 3 || len(got.RawEvents) != 6 {
		t.Errorf("inspect: %+v", got)
	}
	hdr, _ := got.Requests[0]["header"].(map[string]any)
	if auth, _ := hdr["Authorization"].([]any); len(auth) != 1 || auth[0] != "[REDACTED]" {
		t.Errorf("inspect shows Authorization %v, want it redacted", hdr["Authorization"])
	}
	if _, ok := got.Requests[0]["body"]; ok {
		t.Error("inspect lists bodies")
	}
}

func TestSinkFaults(t *testing.T) {
	s := webhooktest.NewSink(t)
	evs := outputstest.Events(3)
	body := ndjson(evs)

	s.SetStatusSequence(503, 200, 429)
	s.SetRetryAfter("7")
	for i, want := range []int{503, 200, 429, 200} {
		resp := post(t, http.DefaultClient, s.URL(), "application/x-ndjson", body, nil)
		if resp.StatusCode != want {
			t.Errorf("request %d: status %d, want %d", i, resp.StatusCode, want)
		}
		if ra := resp.Header.Get("Retry-After"); (want != 200) != (ra == "7") {
			t.Errorf("request %d: Retry-After %q", i, ra)
		}
	}

	s.Reject(400, evs[1].ID)
	if resp := post(t, http.DefaultClient, s.URL(), "application/json", eventjson.Append(nil, &evs[1]), nil); resp.StatusCode != 400 {
		t.Errorf("rejected event: status %d", resp.StatusCode)
	}
	if resp := post(t, http.DefaultClient, s.URL(), "application/json", eventjson.Append(nil, &evs[0]), nil); resp.StatusCode != 200 {
		t.Errorf("other event: status %d", resp.StatusCode)
	}
	if resp := post(t, http.DefaultClient, s.URL(), "application/x-ndjson", body, nil); resp.StatusCode != 400 {
		t.Errorf("batch holding a rejected event: status %d", resp.StatusCode)
	}
	s.Reject(0, evs[1].ID)
	if resp := post(t, http.DefaultClient, s.URL(), "application/json", eventjson.Append(nil, &evs[1]), nil); resp.StatusCode != 200 {
		t.Errorf("no longer rejected: status %d", resp.StatusCode)
	}

	// A client that gives up during the delay leaves nothing accepted.
	s.Reset()
	s.SetDelay(time.Hour)
	client := &http.Client{Timeout: 50 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodPost, s.URL(), bytes.NewReader(body))
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("no timeout")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitRequests(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if r := s.Requests()[0]; r.Status != 0 || !strings.Contains(r.Error, "went away") || len(s.RawEvents()) != 0 {
		t.Errorf("abandoned request recorded as %+v", r)
	}
	s.ClearFaults()
	if resp := post(t, http.DefaultClient, s.URL(), "application/x-ndjson", body, nil); resp.StatusCode != 200 {
		t.Errorf("after ClearFaults: status %d", resp.StatusCode)
	}
}

func TestSinkTLS(t *testing.T) {
	s := webhooktest.NewSinkConfig(t, webhooktest.Config{TLS: true})
	if !strings.HasPrefix(s.URL(), "https://") || s.CAFile() == "" {
		t.Fatalf("URL %s, CA file %q", s.URL(), s.CAFile())
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CAPEM()) {
		t.Fatal("CA PEM holds no certificate")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	if resp := post(t, client, s.URL(), "application/x-ndjson", ndjson(outputstest.Events(1)), nil); resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
	// A CertDir given is where the CA goes, and it stays after Close.
	dir := t.TempDir()
	s2, err := webhooktest.Start(webhooktest.Config{TLS: true, CertDir: dir, Addr: "localhost:0"})
	if err != nil {
		t.Fatal(err)
	}
	if s2.CAFile() != filepath.Join(dir, "ca.pem") {
		t.Errorf("CA file %s", s2.CAFile())
	}
	pool2 := x509.NewCertPool()
	pool2.AppendCertsFromPEM(s2.CAPEM())
	client2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool2, ServerName: "localhost"}}}
	if resp := post(t, client2, s2.URL(), "application/x-ndjson", ndjson(outputstest.Events(1)), nil); resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
	client2.CloseIdleConnections()
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s2.CAFile()); err != nil {
		t.Errorf("CA file gone after Close: %v", err)
	}
	// Without the CA the certificate is refused.
	req, _ := http.NewRequest(http.MethodPost, s.URL(), strings.NewReader("{}"))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Error("certificate accepted without its CA")
	}
}

// TestSinkCloseReleasesHandlers: Close returns while a request waits out a
// delay, rather than leaving the handler behind.
func TestSinkCloseReleasesHandlers(t *testing.T) {
	s, err := webhooktest.Start(webhooktest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s.SetDelay(time.Hour)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.Post(s.URL(), "application/x-ndjson", bytes.NewReader(ndjson(outputstest.Events(1))))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				err = fmt.Errorf("status %d", resp.StatusCode)
			} else {
				err = nil
			}
		} else {
			err = nil // the connection closed first: as good
		}
		errc <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitStats(ctx, func(st webhooktest.Stats) bool { return st.InFlight == 1 }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Errorf("request through Close: %v, want 503 or a closed connection", err)
	}
	if n := len(s.RawEvents()); n != 0 {
		t.Errorf("%d events accepted through Close", n)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	evs := outputstest.Events(2)
	f.Add("application/json", eventjson.Append(nil, &evs[0]))
	f.Add("application/x-ndjson", ndjson(evs))
	f.Add("application/json", jsonArray(f, evs))
	f.Add("application/cloudevents+json", cloudevents.AppendStructured(nil, &evs[0]))
	f.Add("application/cloudevents-batch+json", cloudevents.AppendBatch(nil, evs))
	f.Add("", []byte(`[{"specversion":"1.0"}]`))
	f.Add("text/plain", []byte("{}\n{"))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		evs, err := webhooktest.Decode(contentType, body)
		if err != nil {
			return
		}
		if len(evs) == 0 {
			t.Fatal("no error and no events")
		}
		// Whatever was accepted survives a round trip through NDJSON.
		again, err := webhooktest.Decode("application/x-ndjson", ndjson(evs))
		if err != nil {
			t.Fatalf("re-decoding accepted events: %v", err)
		}
		same(t, again, evs)
	})
}
