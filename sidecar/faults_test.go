package sidecar_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/outputs/dlq"
	"github.com/auditpipe/auditpipe/sidecar"
	"github.com/auditpipe/auditpipe/sidecar/config"
	"github.com/auditpipe/auditpipe/testenv/tmpfs"
)

// k8sBatch is an NDJSON body of n Kubernetes audit events with ids
// tag-0 ... tag-(n-1).
func k8sBatch(t *testing.T, tag string, n int) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(seed(t, "k8s-audit-event.json"), &ev); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for i := range n {
		ev["auditID"] = fmt.Sprintf("%s-%d", tag, i)
		line, _ := json.Marshal(ev)
		buf.Write(line)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

func ready(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The queue's disk fills up (a 2 MiB volume under the default 64 MiB
// segment): appends fail with 503 + Retry-After, /readyz says why, and
// once the output has delivered what was queued the next request is
// accepted, without a restart. Every acknowledged event reaches the
// output.
func TestQueueOnFullDisk(t *testing.T) {
	vol := tmpfs.Mount(t, "2m")
	r := start(t, `
data_dir: ${VOL}
server: {listen: "127.0.0.1:0"}
log: {level: warn, format: text}
sources:
  - {name: k8s, format: k8s, auth: {none: true}}
outputs:
  - {name: events, type: file, file: {path: "${DIR}/events.ndjson"}}
`, map[string]string{"VOL": vol})
	url := r.url + "/v1/sources/k8s"
	acked := 0
	var full reply
	for i := 0; ; i++ {
		if i == 200 {
			t.Fatal("200 batches of 40 events into a 2 MiB volume and never a 503")
		}
		got := post(t, url, k8sBatch(t, fmt.Sprintf("b%d", i), 40), nil)
		if got.code == 200 {
			acked += 40
			continue
		}
		full = got
		break
	}
	if full.code != 503 || full.hdr.Get("Retry-After") == "" || !strings.Contains(full.raw, "queue full") {
		t.Fatalf("on a full disk: %d %v %s", full.code, full.hdr, full.raw)
	}
	if code, body := ready(t, r.url); code != 503 || !strings.Contains(body, "appends failing") {
		t.Errorf("/readyz on a full disk: %d %s", code, body)
	}
	if m := metricsText(t, r.url); !strings.Contains(m, "auditpipe_queue_append_failing 1") ||
		!strings.Contains(m, `auditpipe_rejected_requests_total{reason="queue_full",source="k8s"} 1`) {
		t.Errorf("metrics on a full disk:\n%s", grep(m, "auditpipe_queue_append_failing\n")+grep(m, "auditpipe_rejected"))
	}

	// The output drains the queue; its segment is then reclaimable and
	// the next request goes through.
	waitMetric(t, r.url, `auditpipe_output_pending_events{output="events"} 0`)
	if got := post(t, url, k8sBatch(t, "after", 40), nil); got.code != 200 {
		t.Fatalf("after the output drained the queue: %d %s", got.code, got.raw)
	}
	acked += 40
	if code, body := ready(t, r.url); code != 200 {
		t.Errorf("/readyz once appends work again: %d %s", code, body)
	}
	if m := metricsText(t, r.url); !strings.Contains(m, "auditpipe_queue_append_failing 0") {
		t.Errorf("metric after recovery:\n%s", grep(m, "auditpipe_queue_append_failing"))
	}
	ids := map[string]bool{}
	for _, ev := range events(t, filepath.Join(r.dir, "events.ndjson"), acked) {
		ids[ev.ID] = true
	}
	if len(ids) != acked {
		t.Errorf("%d distinct events delivered, %d acknowledged", len(ids), acked)
	}
}

// The dead-letter store's disk fills up with malformed payloads: a
// malformed payload then gets 503 + Retry-After (it cannot be kept, so it
// must not get a final 400), /readyz says why, valid events are still
// accepted, and every payload answered "dead_lettered" is readable. Once
// an operator moves the letters away, malformed payloads are kept again.
func TestDeadLettersOnFullDisk(t *testing.T) {
	vol := tmpfs.Mount(t, "1m")
	r := start(t, `
data_dir: ${DIR}
server: {listen: "127.0.0.1:0"}
log: {level: warn, format: text}
dead_letter: {dir: "${VOL}"}
sources:
  - {name: k8s, format: k8s, auth: {none: true}}
outputs:
  - {name: events, type: file, file: {path: "${DIR}/events.ndjson"}}
`, map[string]string{"VOL": vol})
	url := r.url + "/v1/sources/k8s"
	malformed := []byte(`{"kind": "Event", "pad": "` + strings.Repeat("x", 40000) + `",`)
	kept := 0
	var full reply
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatal("100 malformed payloads of 40 KB into a 1 MiB volume and never a 503")
		}
		got := post(t, url, malformed, nil)
		if got.code == 400 && got.body["dead_lettered"] == true {
			kept++
			continue
		}
		full = got
		break
	}
	if full.code != 503 || full.hdr.Get("Retry-After") == "" || !strings.Contains(full.raw, "dead-letter store is full") {
		t.Fatalf("malformed payload on a full dead-letter disk: %d %v %s", full.code, full.hdr, full.raw)
	}
	// Valid events are still accepted, so the sidecar stays ready and
	// says what fails.
	if code, body := ready(t, r.url); code != 200 || !strings.Contains(body, "dead-letter store: writes failing") {
		t.Errorf("/readyz: %d %s", code, body)
	}
	if m := metricsText(t, r.url); !strings.Contains(m, "auditpipe_dead_letter_failing 1") ||
		!strings.Contains(m, `auditpipe_rejected_requests_total{reason="dead_letter_full",source="k8s"} 1`) {
		t.Errorf("metrics:\n%s", grep(m, "dead_letter"))
	}
	if got := post(t, url, seed(t, "k8s-audit-event.json"), nil); got.code != 200 {
		t.Errorf("a valid event while the dead-letter disk is full: %d %s", got.code, got.raw)
	}

	// The operator archives the letters elsewhere.
	archive := t.TempDir()
	files, err := dlq.Files(vol)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(archive, filepath.Base(f)), b, 0o600)
		os.Remove(f)
	}
	if got := post(t, url, malformed, nil); got.code != 400 || got.body["dead_lettered"] != true {
		t.Fatalf("malformed payload once there is room: %d %s", got.code, got.raw)
	}
	kept++
	if code, body := ready(t, r.url); code != 200 || strings.Contains(body, "dead-letter") {
		t.Errorf("/readyz once letters are written again: %d %s", code, body)
	}
	letters := 0
	for _, d := range []string{archive, vol} {
		if err := dlq.Walk(d, func(e dlq.Entry) error {
			if !bytes.Equal(e.Payload, malformed) {
				t.Errorf("%s:%d holds another payload", e.File, e.Line)
			}
			letters++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if letters != kept {
		t.Errorf("%d letters readable, %d payloads answered dead_lettered", letters, kept)
	}
}

// Bytes flipped in the middle of a queued segment between two runs: the
// restarted sidecar delivers every intact acknowledged event, skips
// exactly the damaged record(s), counts them in a metric, logs the range
// at ERROR, and says so on /readyz (which stays ready).
func TestDamagedQueueDeliversEveryIntactEvent(t *testing.T) {
	dir := t.TempDir()
	run := func(output string, logs io.Writer) (string, func()) {
		conf := strings.NewReplacer("${DIR}", dir, "${OUTPUT}", output).Replace(`
data_dir: ${DIR}
server: {listen: "127.0.0.1:0"}
sources:
  - {name: k8s, format: k8s, auth: {none: true}}
outputs:
  - ${OUTPUT}
`)
		cfg, err := config.Parse([]byte(conf), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		return serve(t, cfg, sidecar.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	}
	// First run: the destination is down, so everything stays queued.
	url, stop := run(`{name: events, type: webhook, webhook: {url: "http://127.0.0.1:1/down"}}`, io.Discard)
	const batches, per = 5, 20
	for i := range batches {
		if got := post(t, url+"/v1/sources/k8s", k8sBatch(t, fmt.Sprintf("d%d", i), per), nil); got.code != 200 {
			t.Fatal(got.raw)
		}
	}
	stop()

	segs, _ := filepath.Glob(filepath.Join(dir, "queue", "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	// Records are about 1.5 KB; half way plus 300 bytes is inside one
	// record, clear of the boundary the 100 equal records put half way.
	mid := len(b)/2 + 300
	for i := mid; i < mid+4; i++ {
		b[i] ^= 0xff
	}
	os.WriteFile(segs[0], b, 0o600)

	var logs lockedBuffer
	url, stop = run(`{name: events, type: file, file: {path: "`+dir+`/events.ndjson"}}`, &logs)
	defer stop()
	m := metricsText(t, url)
	damaged := -1
	for _, l := range strings.Split(m, "\n") {
		fmt.Sscanf(l, "auditpipe_queue_damaged_records_total %d", &damaged)
	}
	if damaged != 1 {
		t.Fatalf("damaged records metric: %q, want 1 (4 bytes flipped in one record)", grep(m, "damaged_records"))
	}
	evs := events(t, filepath.Join(dir, "events.ndjson"), batches*per-damaged)
	ids := map[string]bool{}
	for _, ev := range evs {
		ids[ev.ID] = true
	}
	waitMetric(t, url, `auditpipe_output_pending_events{output="events"} 0`)
	if len(ids) != batches*per-damaged {
		t.Errorf("%d distinct events delivered, want %d acknowledged minus %d damaged", len(ids), batches*per, damaged)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "lost to damage") {
		t.Errorf("no ERROR log line for the damage:\n%s", logs.String())
	}
	if code, body := ready(t, url); code != 200 || !strings.Contains(body, "damaged on disk") || !strings.Contains(body, "corrupt") {
		t.Errorf("/readyz: %d %s", code, body)
	}
}
