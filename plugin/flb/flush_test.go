package flb

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newFileInstance(t *testing.T, extra ...string) (*Instance, string, string) {
	t.Helper()
	dir := t.TempDir()
	out, dlqDir := filepath.Join(dir, "events.ndjson"), filepath.Join(dir, "dlq")
	cfg, err := ParseConfig(keys(append([]string{"Output", "file", "File_Path", out, "DLQ_Dir", dlqDir}, extra...)...))
	if err != nil {
		t.Fatal(err)
	}
	in, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(context.Background()) })
	return in, out, dlqDir
}

func TestFlushShapes(t *testing.T) {
	am := payload(t, "alertmanager-audit.json")
	amJSON := string(payloadBytes(t, "alertmanager-audit.json"))
	var k8sLine string
	for _, l := range strings.Split(string(payloadBytes(t, "k8s-audit.log.ndjson")), "\n") {
		if strings.Contains(l, `"ResponseComplete"`) {
			k8sLine = l
			break
		}
	}
	tests := []struct {
		name       string
		extra      []string
		body       any
		meta       map[string]any
		shape      shape
		ts         tsEnc
		wantSource string
	}{
		{name: "classic/eventtime/map", body: am, shape: classic, ts: eventTime},
		{name: "classic/int/map", body: am, shape: classic, ts: intTime},
		{name: "classic/float/map", body: am, shape: classic, ts: floatTime},
		{name: "v2/eventtime/map", body: am, shape: v2, ts: eventTime, meta: map[string]any{"otel": "x", "n": 1}},
		{name: "v2/int/map", body: am, shape: v2, ts: intTime, meta: map[string]any{}},
		{name: "payload_key/json string", extra: []string{"Payload_Key", "log"}, body: map[string]any{"log": amJSON, "stream": "stdout"}},
		{name: "payload_key/nested map", extra: []string{"Payload_Key", "message"}, body: map[string]any{"message": am}},
		{name: "payload_key/k8s log line", extra: []string{"Payload_Key", "log", "Format", "k8s", "Source_Name", "kube-audit"}, body: map[string]any{"log": k8sLine}, wantSource: "kube-audit"},
		{name: "format/spacelift", extra: []string{"Format", "spacelift"}, body: payload(t, "spacelift-stack-create.json")},
		{name: "format/app", body: payload(t, "teabar-event.json"), shape: v2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, out, _ := newFileInstance(t, tc.extra...)
			chunk := appendRecord(t, nil, tc.shape, tc.ts, tc.meta, tc.body)
			if c := in.Flush(context.Background(), "audit.test", chunk); c != OK {
				t.Fatalf("Flush = %v, want FLB_OK", c)
			}
			evs := readEvents(t, out)
			if len(evs) == 0 {
				t.Fatal("no events delivered")
			}
			want := tc.wantSource
			if want == "" {
				want = "audit.test"
			}
			for _, ev := range evs {
				if ev.Source.Name != want {
					t.Errorf("source.name = %q, want %q", ev.Source.Name, want)
				}
				if ev.Labels[TagLabel] != "audit.test" {
					t.Errorf("labels[%s] = %q", TagLabel, ev.Labels[TagLabel])
				}
				if !ev.ObservedTime.Equal(testTime.Truncate(timeRes(tc.ts))) {
					t.Errorf("observed_time = %v, want the record time %v", ev.ObservedTime, testTime)
				}
				for k, v := range tc.meta {
					if got := ev.Labels[MetaLabelPrefix+k]; got != fmt.Sprint(v) {
						t.Errorf("metadata label %s = %q, want %v", k, got, v)
					}
				}
			}
			if s := in.Stats(); s.DeadLettered != 0 {
				t.Errorf("dead-lettered %d records", s.DeadLettered)
			}
		})
	}
}

func timeRes(enc tsEnc) time.Duration {
	switch enc {
	case intTime:
		return time.Second
	case floatTime:
		return time.Microsecond
	}
	return 1
}

func TestFlushBadRecordsDeadLettered(t *testing.T) {
	in, out, dlqDir := newFileInstance(t, "Payload_Key", "log")
	amJSON := string(payloadBytes(t, "alertmanager-audit.json"))
	var chunk []byte
	chunk = appendRecord(t, chunk, classic, eventTime, nil, map[string]any{"log": amJSON})
	chunk = appendRecord(t, chunk, classic, eventTime, nil, map[string]any{"log": "not json at all"})
	chunk = appendRecord(t, chunk, classic, eventTime, nil, "a string, not a map")
	chunk = appendRecord(t, chunk, v2, intTime, map[string]any{}, map[string]any{"other": "no log key"})
	chunk = appendRecord(t, chunk, classic, eventTime, nil, map[string]any{"log": `{"hello":"world"}`})
	chunk = appendRecord(t, chunk, v2, eventTime, map[string]any{"k": "v"}, map[string]any{"log": amJSON})
	if c := in.Flush(context.Background(), "t", chunk); c != OK {
		t.Fatalf("Flush = %v, want FLB_OK", c)
	}
	good := readEvents(t, out)
	letters := readLetters(t, dlqDir)
	if len(letters) != 4 {
		t.Fatalf("%d dead letters, want 4: %v", len(letters), letters)
	}
	for _, l := range letters {
		if l["source"] != "t" || l["error"] == "" || l["payload"] == nil {
			t.Errorf("dead letter lacks source, error or payload: %v", l)
		}
	}
	single := len(readEvents(t, out)) / 2
	if single == 0 || len(good) != 2*single {
		t.Fatalf("%d events delivered; want the two good records' events", len(good))
	}
	if s := in.Stats(); s.Records != 6 || s.DeadLettered != 4 {
		t.Errorf("stats = %+v", s)
	}
}

func TestFlushCorruptChunk(t *testing.T) {
	in, out, dlqDir := newFileInstance(t)
	chunk := appendRecord(t, nil, classic, eventTime, nil, payload(t, "alertmanager-audit.json"))
	chunk = append(chunk, 0x92, 0xd7) // a record cut short
	if c := in.Flush(context.Background(), "t", chunk); c != Error {
		t.Fatalf("Flush = %v, want FLB_ERROR", c)
	}
	if len(readEvents(t, out)) == 0 {
		t.Error("the records before the corruption were not delivered")
	}
	if len(readLetters(t, dlqDir)) != 1 {
		t.Error("the corrupt tail is not in the dead-letter store")
	}
}

func TestFlushRetryThenOK(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		got.Add(1)
	}))
	defer srv.Close()
	dir := t.TempDir()
	cfg, err := ParseConfig(keys("Output", "webhook", "Webhook_URL", srv.URL, "DLQ_Dir", dir, "Retry_Max_Elapsed", "50ms"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Outputs[0].Retry.InitialInterval = 5 * time.Millisecond
	in, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(context.Background())
	chunk := appendRecord(t, nil, classic, eventTime, nil, payload(t, "alertmanager-audit.json"))
	if c := in.Flush(context.Background(), "t", chunk); c != Retry {
		t.Fatalf("Flush with the peer down = %v, want FLB_RETRY", c)
	}
	if len(readLetters(t, dir)) != 0 {
		t.Error("a retryable failure was dead-lettered")
	}
	down.Store(false)
	if c := in.Flush(context.Background(), "t", chunk); c != OK {
		t.Fatalf("Flush with the peer up = %v, want FLB_OK", c)
	}
	if got.Load() == 0 {
		t.Error("nothing reached the peer")
	}
}

func TestFlushConcurrent(t *testing.T) {
	in, out, _ := newFileInstance(t)
	am := payload(t, "alertmanager-audit.json")
	chunk := appendRecord(t, nil, classic, eventTime, nil, am)
	chunk = appendRecord(t, chunk, v2, eventTime, map[string]any{"a": "b"}, am)
	first := func() int {
		in, out2, _ := newFileInstance(t)
		if c := in.Flush(context.Background(), "t", chunk); c != OK {
			t.Fatal(c)
		}
		return len(readEvents(t, out2))
	}()
	const workers, rounds = 8, 5
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range rounds {
				if c := in.Flush(context.Background(), "t", chunk); c != OK {
					t.Errorf("Flush = %v", c)
				}
			}
		})
	}
	wg.Wait()
	if n := len(readEvents(t, out)); n != first*workers*rounds {
		t.Errorf("%d events, want %d", n, first*workers*rounds)
	}
}
