package fluentbithost_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/outputs/dlq"
	fbh "github.com/auditpipe/auditpipe/testenv/fluentbithost"
	"github.com/auditpipe/auditpipe/testenv/webhooktest"
)

var ts = time.Date(2025, 6, 12, 9, 15, 2, 417583291, time.UTC)

func fileInstance(name, dir string, extra map[string]string) fbh.Instance {
	props := map[string]string{
		"Output":            "file",
		"File_Path":         filepath.Join(dir, name+".ndjson"),
		"DLQ_Dir":           filepath.Join(dir, name+"-dlq"),
		"Retry_Max_Elapsed": "200ms",
	}
	for k, v := range extra {
		props[k] = v
	}
	return fbh.Instance{Name: name, Props: props}
}

func records(bodies ...[]byte) []fbh.Record {
	out := make([]fbh.Record, len(bodies))
	for i, b := range bodies {
		out[i] = fbh.Record{Time: ts, Body: b, Meta: fbh.MustJSON([]byte(`{"stream":"http","host":"node-1"}`))}
	}
	return out
}

func dlqCount(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	if err := dlq.Walk(dir, func(dlq.Entry) error { n++; return nil }); err != nil {
		t.Fatalf("dlq walk %s: %v", dir, err)
	}
	return n
}

func mustFlush(t *testing.T, h *fbh.Host, instance, tag string, chunk []byte, want int) {
	t.Helper()
	code, err := h.Flush(instance, tag, chunk)
	if err != nil {
		t.Fatal(err)
	}
	if code != want {
		t.Fatalf("flush %s = %d, want %d\nplugin log:\n%s", instance, code, want, h.Stderr())
	}
}

// Every example payload, in both record shapes and both timestamp
// encodings, with the format detected and named, must give exactly the
// events `auditpipe normalize` gives.
func TestPluginEveryFormat(t *testing.T) {
	bin, so := needPlugin(t)
	cases := []struct{ file, format string }{
		{"spacelift-stack-create.json", "spacelift"},
		{"spacelift-audit-trail-set.json", "spacelift"},
		{"spacelift-audit-trail-delete.json", "spacelift"},
		{"alertmanager-audit.json", "alertmanager"},
		{"teabar-event.json", "app"},
		{"teabar-cloudevent.json", "app"},
		{"yoq-entries.json", "app"},
		{"k8s-audit-event.json", "k8s"},
		{"k8s-audit.log.ndjson", "k8s"},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			path := payloadPath(t, tc.file)
			want := expectedIDs(t, path, "auto", "ci")
			if len(want) == 0 {
				t.Fatal("normalize made no event: bad fixture")
			}
			dir := t.TempDir()
			var instances []fbh.Instance
			type combo struct {
				name   string
				shape  fbh.Shape
				enc    fbh.TimeEncoding
				format string
			}
			var combos []combo
			for _, shape := range []fbh.Shape{fbh.Classic, fbh.V2} {
				for _, enc := range []fbh.TimeEncoding{fbh.EventTime, fbh.IntTime} {
					for _, format := range []string{"auto", tc.format} {
						c := combo{fmt.Sprintf("%v_%v_%s", shape, enc, format), shape, enc, format}
						combos = append(combos, c)
						instances = append(instances, fileInstance(c.name, dir, map[string]string{"Format": format}))
					}
				}
			}
			h := fbh.Start(t, bin, so, instances...)
			for _, c := range combos {
				if code := h.InitCode(c.name); code != fbh.FLBOK {
					t.Fatalf("init %s = %d\n%s", c.name, code, h.Stderr())
				}
				chunk := fbh.Chunk(c.shape, c.enc, records(payloadRecords(t, path)...)...)
				mustFlush(t, h, c.name, "ci", chunk, fbh.FLBOK)
			}
			exit, err := h.Close()
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range combos {
				if exit[c.name] != fbh.FLBOK {
					t.Errorf("exit %s = %d", c.name, exit[c.name])
				}
				if got := fileIDs(t, filepath.Join(dir, c.name+".ndjson")); !slices.Equal(got, want) {
					t.Errorf("%s: ids\n got %v\nwant %v", c.name, got, want)
				}
			}
		})
	}
}

// Fluent Bit's tail input without a parser puts each line under "log" as a
// string; Payload_Key log parses it.
func TestPluginPayloadKeyLog(t *testing.T) {
	bin, so := needPlugin(t)
	path := payloadPath(t, "k8s-audit.log.ndjson")
	want := expectedIDs(t, path, "auto", "kube.audit")
	var bodies [][]byte
	for _, line := range strings.Split(strings.TrimSpace(string(readFile(t, path))), "\n") {
		bodies = append(bodies, fbh.LogRecord("log", []byte(line)))
	}
	dir := t.TempDir()
	h := fbh.Start(t, bin, so, fileInstance("tail", dir, map[string]string{"Payload_Key": "log"}))
	for _, shape := range []fbh.Shape{fbh.Classic, fbh.V2} {
		mustFlush(t, h, "tail", "kube.audit", fbh.Chunk(shape, fbh.EventTime, records(bodies...)...), fbh.FLBOK)
	}
	if _, err := h.Close(); err != nil {
		t.Fatal(err)
	}
	got := fileIDs(t, filepath.Join(dir, "tail.ndjson"))
	wantTwice := slices.Sorted(slices.Values(append(slices.Clone(want), want...)))
	if !slices.Equal(got, wantTwice) {
		t.Errorf("ids\n got %v\nwant %v (each twice: two flushes)", got, wantTwice)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// A peer that is down makes the flush return FLB_RETRY (Fluent Bit keeps
// the chunk); once it is up, the same chunk returns FLB_OK and every event
// arrives, once.
func TestPluginRetryThenOK(t *testing.T) {
	bin, so := needPlugin(t)
	path := payloadPath(t, "alertmanager-audit.json")
	want := expectedIDs(t, path, "auto", "am")
	chunk := fbh.Chunk(fbh.V2, fbh.EventTime, records(payloadRecords(t, path)...)...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("peer down then up", func(t *testing.T) {
		addr := freeAddr(t)
		dir := t.TempDir()
		h := fbh.Start(t, bin, so, fbh.Instance{Name: "wh", Props: map[string]string{
			"Output": "webhook", "Webhook_URL": "http://" + addr + "/audit", "Webhook_Secret": "s3cret",
			"DLQ_Dir": filepath.Join(dir, "dlq"), "Retry_Max_Elapsed": "300ms",
		}})
		mustFlush(t, h, "wh", "am", chunk, fbh.FLBRetry)
		sink := webhooktest.NewSinkConfig(t, webhooktest.Config{Addr: addr, Secret: "s3cret"})
		mustFlush(t, h, "wh", "am", chunk, fbh.FLBOK)
		if err := sink.WaitEvents(ctx, len(want)); err != nil {
			t.Fatal(err)
		}
		if got := eventIDs(sink); !slices.Equal(got, want) {
			t.Errorf("ids at the sink\n got %v\nwant %v", got, want)
		}
		if n := dlqCount(t, filepath.Join(dir, "dlq")); n != 0 {
			t.Errorf("%d dead letters for a retryable failure", n)
		}
	})
	t.Run("503 then healthy", func(t *testing.T) {
		sink := webhooktest.NewSink(t)
		statuses := make([]int, 100)
		for i := range statuses {
			statuses[i] = 503
		}
		sink.SetStatusSequence(statuses...)
		h := fbh.Start(t, bin, so, fbh.Instance{Name: "wh", Props: map[string]string{
			"Output": "webhook", "Webhook_URL": sink.URL(),
			"DLQ_Dir": t.TempDir(), "Retry_Max_Elapsed": "300ms",
		}})
		mustFlush(t, h, "wh", "am", chunk, fbh.FLBRetry)
		sink.ClearFaults()
		mustFlush(t, h, "wh", "am", chunk, fbh.FLBOK)
		if err := sink.WaitEvents(ctx, len(want)); err != nil {
			t.Fatal(err)
		}
		if got := eventIDs(sink); !slices.Equal(got, want) {
			t.Errorf("ids at the sink\n got %v\nwant %v", got, want)
		}
	})
}

func eventIDs(s *webhooktest.Sink) []string {
	var ids []string
	for _, ev := range s.Events() {
		ids = append(ids, ev.ID)
	}
	slices.Sort(ids)
	return ids
}

// Two [OUTPUT] sections of auditpipe in one Fluent Bit: each instance
// keeps its own context and output.
func TestPluginTwoInstances(t *testing.T) {
	bin, so := needPlugin(t)
	sink := webhooktest.NewSink(t)
	dir := t.TempDir()
	h := fbh.Start(t, bin, so,
		fileInstance("tofile", dir, map[string]string{"Format": "spacelift"}),
		fbh.Instance{Name: "tohook", Props: map[string]string{
			"output": "WEBHOOK", "webhook_url": sink.URL(), "dlq_dir": filepath.Join(dir, "hook-dlq"),
		}},
	)
	sl := payloadPath(t, "spacelift-stack-create.json")
	am := payloadPath(t, "alertmanager-audit.json")
	mustFlush(t, h, "tofile", "spacelift", fbh.Chunk(fbh.Classic, fbh.EventTime, records(payloadRecords(t, sl)...)...), fbh.FLBOK)
	mustFlush(t, h, "tohook", "alertmanager", fbh.Chunk(fbh.V2, fbh.EventTime, records(payloadRecords(t, am)...)...), fbh.FLBOK)
	exit, err := h.Close()
	if err != nil {
		t.Fatal(err)
	}
	if exit["tofile"] != fbh.FLBOK || exit["tohook"] != fbh.FLBOK {
		t.Errorf("exit codes %v", exit)
	}
	if got, want := fileIDs(t, filepath.Join(dir, "tofile.ndjson")), expectedIDs(t, sl, "auto", "spacelift"); !slices.Equal(got, want) {
		t.Errorf("file ids %v, want %v", got, want)
	}
	if got, want := eventIDs(sink), expectedIDs(t, am, "auto", "alertmanager"); !slices.Equal(got, want) {
		t.Errorf("webhook ids %v, want %v", got, want)
	}
}

// Workers N: Fluent Bit flushes one instance from several native threads
// at once.
func TestPluginConcurrentFlushes(t *testing.T) {
	bin, so := needPlugin(t)
	dir := t.TempDir()
	h := fbh.Start(t, bin, so, fileInstance("mt", dir, nil))
	files := []string{"yoq-entries.json", "alertmanager-audit.json", "spacelift-stack-create.json",
		"spacelift-audit-trail-set.json", "spacelift-audit-trail-delete.json", "teabar-event.json",
		"teabar-cloudevent.json", "k8s-audit-event.json"}
	var chunks [][]byte
	var want []string
	for i, f := range files {
		p := payloadPath(t, f)
		want = append(want, expectedIDs(t, p, "auto", "mt")...)
		chunks = append(chunks, fbh.Chunk(fbh.Shape(i%2), fbh.EventTime, records(payloadRecords(t, p)...)...))
	}
	slices.Sort(want)
	codes, err := h.FlushConcurrent("mt", "mt", chunks...)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range codes {
		if c != fbh.FLBOK {
			t.Errorf("flush of %s = %d", files[i], c)
		}
	}
	if _, err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if got := fileIDs(t, filepath.Join(dir, "mt.ndjson")); !slices.Equal(got, want) {
		t.Errorf("ids\n got %v\nwant %v", got, want)
	}
}

// Records that are not audit payloads are dead-lettered; the good records
// of the same chunk are delivered and the flush succeeds.
func TestPluginBadRecordsDeadLettered(t *testing.T) {
	bin, so := needPlugin(t)
	sl := payloadPath(t, "spacelift-stack-create.json")
	tb := payloadPath(t, "teabar-event.json")
	k8s := payloadPath(t, "k8s-audit-event.json")
	notMap, _ := fbh.AppendValue(nil, "just a string")
	number, _ := fbh.AppendValue(nil, 42)
	cases := []struct {
		name       string
		props      map[string]string
		bodies     [][]byte
		want       []string
		minLetters int
	}{
		{
			name:  "record map payloads",
			props: nil,
			bodies: [][]byte{
				payloadRecords(t, sl)[0], notMap, fbh.MustJSON([]byte(`{"foo":"bar"}`)), number, payloadRecords(t, tb)[0],
			},
			want:       sortedConcat(expectedIDs(t, sl, "auto", "bad"), expectedIDs(t, tb, "auto", "bad")),
			minLetters: 3,
		},
		{
			name:  "log key payloads",
			props: map[string]string{"Payload_Key": "log"},
			bodies: [][]byte{
				fbh.LogRecord("log", []byte("not json at all")),
				fbh.LogRecord("log", readFile(t, k8s)),
				fbh.MustJSON([]byte(`{"message":"no log key"}`)),
				notMap,
				fbh.LogRecord("log", []byte(`{"truncated":`)),
			},
			want:       expectedIDs(t, k8s, "auto", "bad"),
			minLetters: 4,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			h := fbh.Start(t, bin, so, fileInstance("bad", dir, tc.props))
			mustFlush(t, h, "bad", "bad", fbh.Chunk(fbh.V2, fbh.EventTime, records(tc.bodies...)...), fbh.FLBOK)
			if _, err := h.Close(); err != nil {
				t.Fatal(err)
			}
			if got := fileIDs(t, filepath.Join(dir, "bad.ndjson")); !slices.Equal(got, tc.want) {
				t.Errorf("delivered ids %v, want %v", got, tc.want)
			}
			if n := dlqCount(t, filepath.Join(dir, "bad-dlq")); n < tc.minLetters {
				t.Errorf("%d dead letters, want at least %d\n%s", n, tc.minLetters, h.Stderr())
			}
		})
	}
}

func sortedConcat(a ...[]string) []string {
	out := slices.Concat(a...)
	slices.Sort(out)
	return out
}

// Invalid configuration: init fails and the plugin's log names the key.
// Fluent Bit treats init <= 0 as a failure (some versions then crash on
// the struct they freed); the host only reports it.
func TestPluginInvalidConfig(t *testing.T) {
	bin, so := needPlugin(t)
	cases := []struct {
		name    string
		props   map[string]string
		wantKey string
	}{
		{"no output", map[string]string{"DLQ_Dir": t.TempDir()}, "Output"},
		{"unknown output", map[string]string{"Output": "carrier-pigeon", "DLQ_Dir": t.TempDir()}, "Output"},
		{"kafka without brokers", map[string]string{"Output": "kafka", "Kafka_Topic": "audit", "DLQ_Dir": t.TempDir()}, "Kafka_Brokers"},
		{"bad duration", map[string]string{"Output": "stdout", "DLQ_Dir": t.TempDir(), "Retry_Max_Elapsed": "soon"}, "Retry_Max_Elapsed"},
		{"missing config file", map[string]string{"Config": "/nonexistent/auditpipe.yaml", "DLQ_Dir": t.TempDir()}, "Config"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := fbh.Start(t, bin, so, fbh.Instance{Name: "bad", Props: tc.props})
			if code := h.InitCode("bad"); code != fbh.FLBError {
				t.Errorf("init = %d, want FLB_ERROR", code)
			}
			if log, ok := h.WaitStderr(10*time.Second, func(s string) bool {
				return strings.Contains(strings.ToLower(s), strings.ToLower(tc.wantKey))
			}); !ok {
				t.Errorf("plugin log does not name %s:\n%s", tc.wantKey, log)
			}
		})
	}
}
