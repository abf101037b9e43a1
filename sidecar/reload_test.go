package sidecar_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/auditpipe/auditpipe/integrity"
	"github.com/auditpipe/auditpipe/sidecar"
	"github.com/auditpipe/auditpipe/sidecar/config"
)

// reloadable is a sidecar run from a configuration file the test rewrites.
type reloadable struct {
	s    *sidecar.Sidecar
	url  string
	dir  string
	file string
	log  *lockedBuffer
}

func (r *reloadable) write(t *testing.T, conf string) {
	t.Helper()
	if err := os.WriteFile(r.file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
}

// testLog sends a sidecar's log to the test's, while the test runs.
type testLog struct{ t *testing.T }

func (w *testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// k8sEvent is a Kubernetes audit event whose auditID is id.
func k8sEvent(t *testing.T, id string) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(seed(t, "k8s-audit-event.json"), &ev); err != nil {
		t.Fatal(err)
	}
	ev["auditID"] = id
	b, _ := json.Marshal(ev)
	return b
}

// auditIDs counts each auditID in an NDJSON output file.
func auditIDs(path string) map[string]int {
	got := map[string]int{}
	b, _ := os.ReadFile(path)
	for _, line := range bytes.Split(b, []byte("\n")) {
		var e struct {
			Details struct {
				AuditID string `json:"auditID"`
			} `json:"details"`
		}
		if len(line) > 0 && json.Unmarshal(line, &e) == nil {
			got[e.Details.AuditID]++
		}
	}
	return got
}

const reloadBase = `
data_dir: ${DIR}
server: {listen: "127.0.0.1:0"}
integrity: {signing_key_file: "${DIR}/signing.pem", instance: gw-0}
sources:
  - {name: k8s, format: k8s, auth: {none: true}}
%s
outputs:
  - name: events
    type: file
    file: {path: "${DIR}/events.ndjson"}
    batch: {max_events: %d}
    retry: {initial_interval: %s}
%s
`

// TestReloadUnderLoad reloads four times while eight clients post without
// pause: the sealed output's settings change three times, a source and
// an output are added. Every acknowledged event reaches the output once
// (a changed output finishes its batch in flight before its new settings
// take over, so none is re-sent unless that batch outlived stopGrace,
// which the log would say), and its hash chain goes on as one stream.
func TestReloadUnderLoad(t *testing.T) {
	privPEM, pubPEM, err := integrity.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	conf := func(maxEvents int, retry, extraSource, extraOutput string) string {
		return fmt.Sprintf(reloadBase, extraSource, maxEvents, retry, extraOutput)
	}
	r := startFileWithKey(t, conf(50, "100ms", "", ""), privPEM)

	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		sent  atomic.Int64
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	client := &http.Client{}
	for c := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("load-%d-%d", c, i)
				sent.Add(1)
				resp, err := client.Post(r.url+"/v1/sources/k8s", "application/json", bytes.NewReader(k8sEvent(t, id)))
				if err != nil {
					t.Errorf("post: %v", err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("post %s: %d", id, resp.StatusCode)
					return
				}
				mu.Lock()
				acked[id] = true
				mu.Unlock()
			}
		})
	}
	ackedNow := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	progress := func(n int) {
		t.Helper()
		want := ackedNow() + n
		waitFor(t, fmt.Sprintf("%d acknowledged events", want), func() bool { return ackedNow() >= want || t.Failed() })
	}
	reload := func(c string) {
		t.Helper()
		progress(300)
		r.write(t, c)
		if err := r.s.Reload(context.Background()); err != nil {
			t.Fatalf("reload: %v", err)
		}
	}
	lateOutput := `  - {name: late, type: file, file: {path: "${DIR}/late.ndjson"}, integrity: false}`
	k8s2 := `  - {name: k8s2, format: k8s, auth: {none: true}}`

	reload(conf(20, "100ms", "", ""))     // the output changes
	reload(conf(20, "100ms", k8s2, ""))   // a source is added
	before := fmt.Sprintf("load-0-%d", 0) // acknowledged before late exists
	reload(conf(20, "200ms", k8s2, lateOutput))
	if got := post(t, r.url+"/v1/sources/k8s2", k8sEvent(t, "via-k8s2"), nil); got.code != 200 {
		t.Fatalf("the added source answers %d %s", got.code, got.raw)
	}
	after := post(t, r.url+"/v1/sources/k8s", k8sEvent(t, "after-late"), nil)
	if after.code != 200 {
		t.Fatalf("post: %d", after.code)
	}
	reload(conf(50, "100ms", k8s2, lateOutput)) // and changes again
	progress(300)
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}

	mu.Lock()
	want := maps.Clone(acked)
	mu.Unlock()
	posted := len(want)
	want["via-k8s2"], want["after-late"] = true, true
	events := filepath.Join(r.dir, "events.ndjson")
	var got map[string]int
	waitFor(t, "every acknowledged event at the output", func() bool {
		got = auditIDs(events)
		for id := range want {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	dups := 0
	for id, n := range got {
		if !want[id] {
			t.Errorf("%s delivered but never acknowledged", id)
		}
		dups += n - 1
	}
	// Only a batch canceled after stopGrace is sent again; the log says
	// when that happened, and it is at most one batch per changed output.
	canceled := strings.Count(r.log.String(), "batch in flight was canceled")
	t.Logf("8 clients: %d posted, %d acknowledged across 4 reloads, all delivered (and 2 more); %d duplicates, %d batches canceled by a reload",
		sent.Load(), posted, dups, canceled)
	if dups > canceled*50 {
		t.Errorf("%d duplicates, more than the %d canceled batches can explain", dups, canceled)
	}
	verifySealed(t, events, pubPEM)

	// The added output has what came after it, not the backlog.
	late := filepath.Join(r.dir, "late.ndjson")
	waitFor(t, "the added output receives", func() bool { return auditIDs(late)["after-late"] == 1 })
	if n := auditIDs(late)[before]; n != 0 {
		t.Errorf("the added output got %s, acknowledged before it was added", before)
	}
	m := metricsText(t, r.url)
	for _, line := range []string{`auditpipe_config_last_reload_successful 1`, `auditpipe_output_pending_events{output="late"}`,
		`auditpipe_received_events_total{source="k8s2"} 1`} {
		if !strings.Contains(m, line) {
			t.Errorf("metrics lack %q:\n%s", line, grep(m, "auditpipe_"))
		}
	}
	delivered := sample(m, `auditpipe_delivered_events_total{output="events"}`)
	if n, _ := strconv.ParseFloat(strings.Fields(delivered + " 0")[1], 64); int(n) < len(want) {
		t.Errorf("delivered counter of the changed output restarted: %s, want at least %d", delivered, len(want))
	}
}

// startFileWithKey is startFile with a signing key at ${DIR}/signing.pem.
func startFileWithKey(t *testing.T, conf string, key []byte) *reloadable {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "signing.pem"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	return startFileIn(t, dir, conf, false)
}

// startFileIn is startFile in dir.
func startFileIn(t *testing.T, dir, conf string, enableReload bool) *reloadable {
	t.Helper()
	r := &reloadable{dir: dir, file: filepath.Join(dir, "sidecar.yaml"), log: &lockedBuffer{}}
	env := func(k string) (string, bool) {
		if k == "DIR" {
			return dir, true
		}
		return "", false
	}
	r.write(t, conf)
	cfg, err := config.Load(r.file, env)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.s, err = sidecar.New(ctx, cfg, sidecar.Options{Env: env, ConfigFile: r.file, EnableReload: enableReload,
		Logger: slog.New(slog.NewTextHandler(io.MultiWriter(r.log, &testLog{t}), &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.s.Run(ctx) }()
	r.url = "http://" + r.s.Addr().String()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

// TestReloadRemovesAnOutput removes an output whose destination is down
// and which therefore holds the whole queue: its cursor file goes, and
// the segments only it held are deleted.
func TestReloadRemovesAnOutput(t *testing.T) {
	const conf = `
data_dir: ${DIR}
server: {listen: "127.0.0.1:0"}
queue: {segment_bytes: 4096, max_bytes: 1048576}
sources:
  - {name: k8s, format: k8s, auth: {none: true}}
outputs:
  - {name: events, type: file, file: {path: "${DIR}/events.ndjson"}}
%s`
	stuck := `  - name: stuck
    type: webhook
    webhook: {url: "http://` + freeAddr(t) + `/audit"}
    retry: {initial_interval: 50ms, max_interval: 100ms}
`
	r := startFileIn(t, t.TempDir(), fmt.Sprintf(conf, stuck), false)
	for i := range 60 {
		if got := post(t, r.url+"/v1/sources/k8s", k8sEvent(t, fmt.Sprintf("rm-%d", i)), nil); got.code != 200 {
			t.Fatalf("post: %d %s", got.code, got.raw)
		}
	}
	events(t, filepath.Join(r.dir, "events.ndjson"), 60)
	segs := func() int {
		m, _ := filepath.Glob(filepath.Join(r.dir, "queue", "*.seg"))
		return len(m)
	}
	if n := segs(); n < 3 {
		t.Fatalf("%d segments held by the stuck output, want several", n)
	}
	cursor := filepath.Join(r.dir, "queue", "stuck.cursor")
	if _, err := os.Stat(cursor); err != nil {
		t.Fatal(err)
	}
	r.write(t, fmt.Sprintf(conf, ""))
	if err := r.s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cursor); !os.IsNotExist(err) {
		t.Errorf("the removed output's cursor: %v", err)
	}
	if n := segs(); n != 1 {
		t.Errorf("%d segments after removing the only output behind, want the current one", n)
	}
	m := metricsText(t, r.url)
	if strings.Contains(m, `output="stuck"`) {
		t.Errorf("the removed output still has metrics:\n%s", grep(m, `output="stuck"`))
	}
	// The remaining output carries on.
	post(t, r.url+"/v1/sources/k8s", k8sEvent(t, "rm-after"), nil)
	events(t, filepath.Join(r.dir, "events.ndjson"), 61)
}

// TestReloadRefusesBadConfigs tries broken and refused configurations
// through POST /-/reload: each answers 500 naming the problem, the old
// configuration keeps serving, and the metrics say the last reload
// failed until a good one succeeds.
func TestReloadRefusesBadConfigs(t *testing.T) {
	const good = `
data_dir: ${DIR}
server: {listen: "127.0.0.1:0"}
sources:
  - {name: k8s, format: k8s, auth: {none: true}}
outputs:
  - {name: events, type: file, file: {path: "${DIR}/events.ndjson"}}
`
	r := startFileIn(t, t.TempDir(), good, true)
	reloadReq := func() (int, string) {
		resp, err := http.Post(r.url+"/-/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	stamp := func() float64 {
		line := sample(metricsText(t, r.url), "auditpipe_config_last_reload_success_timestamp_seconds ")
		f, err := strconv.ParseFloat(strings.TrimPrefix(line, "auditpipe_config_last_reload_success_timestamp_seconds "), 64)
		if err != nil {
			t.Fatalf("timestamp %q: %v", line, err)
		}
		return f
	}
	started := stamp()
	if started <= 0 {
		t.Fatalf("timestamp at the start: %v", started)
	}
	cases := []struct{ name, conf, want string }{
		{"syntax error", good + "  - {name: broken\n", "sidecar.yaml"},
		{"unknown key", strings.Replace(good, "sources:", "sorces: []\nsources:", 1), "sorces"},
		{"bad output url", strings.Replace(good, `{name: events, type: file, file: {path: "${DIR}/events.ndjson"}}`,
			`{name: events, type: webhook, webhook: {url: "ftp://example.com/x"}}`, 1), "outputs[0]"},
		{"data_dir", strings.Replace(good, "data_dir: ${DIR}", "data_dir: ${DIR}/elsewhere", 1), "data_dir: cannot change while running; restart"},
		{"listen", strings.Replace(good, `127.0.0.1:0`, `127.0.0.1:1`, 1), "server.listen: cannot change while running"},
	}
	for i, c := range cases {
		r.write(t, c.conf)
		code, body := reloadReq()
		if code != http.StatusInternalServerError || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %q, want 500 naming %q", c.name, code, body, c.want)
		}
		if !strings.Contains(metricsText(t, r.url), "auditpipe_config_last_reload_successful 0") {
			t.Errorf("%s: the metric does not show the failed reload", c.name)
		}
		if got := post(t, r.url+"/v1/sources/k8s", k8sEvent(t, fmt.Sprintf("bad-%d", i)), nil); got.code != 200 {
			t.Errorf("%s: the old configuration stopped serving: %d %s", c.name, got.code, got.raw)
		}
		if !strings.Contains(r.log.String(), c.want) {
			t.Errorf("%s: the log does not name %q", c.name, c.want)
		}
	}
	events(t, filepath.Join(r.dir, "events.ndjson"), len(cases))
	if stamp() != started {
		t.Error("a failed reload moved the success timestamp")
	}

	r.write(t, good+"labels: {cluster: prod}\n")
	if code, body := reloadReq(); code != 200 {
		t.Fatalf("good reload: %d %s", code, body)
	}
	m := metricsText(t, r.url)
	if !strings.Contains(m, "auditpipe_config_last_reload_successful 1") {
		t.Error("the metric does not show the successful reload")
	}
	if s := stamp(); s < started {
		t.Errorf("success timestamp %v went back from %v", s, started)
	}
	post(t, r.url+"/v1/sources/k8s", k8sEvent(t, "labelled"), nil)
	evs := events(t, filepath.Join(r.dir, "events.ndjson"), len(cases)+1)
	if got := evs[len(evs)-1].Labels["cluster"]; got != "prod" {
		t.Errorf("an event after the reload has labels %v, want cluster=prod", evs[len(evs)-1].Labels)
	}
}

func TestReloadEndpointOffByDefault(t *testing.T) {
	r := startFileIn(t, t.TempDir(), `
data_dir: ${DIR}
server: {listen: "127.0.0.1:0"}
sources:
  - {name: k8s, format: k8s, auth: {none: true}}
`, false)
	resp, err := http.Post(r.url+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /-/reload without --enable-reload: %d", resp.StatusCode)
	}
}

// TestSIGHUPReloads sends SIGHUP to the built binary after adding an
// output to its file: the output receives.
func TestSIGHUPReloads(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	conf := filepath.Join(dir, "sidecar.yaml")
	base := fmt.Sprintf(`
data_dir: %s
server: {listen: %q}
log: {level: info, format: text}
sources:
  - {name: k8s, format: k8s, auth: {none: true}}
outputs:
  - {name: events, type: file, file: {path: %s/events.ndjson}}
`, dir, addr, dir)
	os.WriteFile(conf, []byte(base), 0o600)
	cmd, stderr := runBinary(t, bin, conf, addr)
	url := "http://" + addr
	os.WriteFile(conf, []byte(base+fmt.Sprintf("  - {name: more, type: file, file: {path: %s/more.ndjson}}\n", dir)), 0o600)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload after SIGHUP", func() bool { return strings.Contains(stderr.String(), "configuration reloaded") })
	if got := post(t, url+"/v1/sources/k8s", k8sEvent(t, "hup-1"), nil); got.code != 200 {
		t.Fatalf("post: %d %s", got.code, got.raw)
	}
	waitFor(t, "the added output receives", func() bool { return auditIDs(filepath.Join(dir, "more.ndjson"))["hup-1"] == 1 })
	// A second SIGHUP with a broken file keeps the process and its
	// configuration.
	os.WriteFile(conf, []byte(base+"bogus: 1\n"), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	waitMetric(t, url, "auditpipe_config_last_reload_successful 0")
	if got := post(t, url+"/v1/sources/k8s", k8sEvent(t, "hup-2"), nil); got.code != 200 {
		t.Fatalf("post after a failed reload: %d %s", got.code, got.raw)
	}
	waitFor(t, "the kept output receives", func() bool { return auditIDs(filepath.Join(dir, "more.ndjson"))["hup-2"] == 1 })
}

// sample returns the line of the metrics text that starts with prefix.
func sample(metrics, prefix string) string {
	for _, l := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// TestReloadReplacesAnExternalTransformer changes an external source's
// labels: its plugin process is replaced once the requests using it are
// done, and a reload that leaves the source alone keeps the process.
func TestReloadReplacesAnExternalTransformer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example plugin")
	}
	plugin := filepath.Join(t.TempDir(), "github-audit-plugin")
	if out, err := exec.Command("go", "build", "-o", plugin, "../examples/transformer-plugin").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	const conf = `
data_dir: ${DIR}
server: {listen: "127.0.0.1:0"}
sources:
  - name: github
    format: external
    transformer: {path: "` + "%s" + `"}
    auth: {none: true}
    labels: {team: %s}
outputs:
  - {name: events, type: file, file: {path: "${DIR}/events.ndjson"}%s}
`
	r := startFileIn(t, t.TempDir(), fmt.Sprintf(conf, plugin, "a", ""), false)
	page, err := os.ReadFile("../examples/transformer-plugin/githubaudit/testdata/audit_log_page.json")
	if err != nil {
		t.Fatal(err)
	}
	postPage := func() int {
		got := post(t, r.url+"/v1/sources/github", page, nil)
		if got.code != 200 {
			t.Fatalf("%d %s", got.code, got.raw)
		}
		return int(got.body["accepted"].(float64))
	}
	n := postPage()
	first := pluginPIDs(t, plugin)
	if len(first) != 1 {
		t.Fatalf("plugin processes %v, want one", first)
	}

	// Only the output changes: the source, and its process, stay.
	r.write(t, fmt.Sprintf(conf, plugin, "a", ", batch: {max_events: 10}"))
	if err := r.s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if pids := pluginPIDs(t, plugin); len(pids) != 1 || pids[0] != first[0] {
		t.Fatalf("plugin processes %v after a reload that kept the source, want %v", pids, first)
	}

	r.write(t, fmt.Sprintf(conf, plugin, "b", ", batch: {max_events: 10}"))
	if err := r.s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	postPage()
	waitFor(t, "the old plugin process to exit", func() bool {
		pids := pluginPIDs(t, plugin)
		return len(pids) == 1 && pids[0] != first[0]
	})
	evs := events(t, filepath.Join(r.dir, "events.ndjson"), 2*n)
	if got := evs[len(evs)-1].Labels["team"]; got != "b" {
		t.Errorf("after the reload an event has team=%q, want b", got)
	}
}

// TestReloadRestartsAPullSource changes a pull source's token: its
// poller restarts with it at once and carries on from its watermark, so
// no entry is queued twice.
func TestReloadRestartsAPullSource(t *testing.T) {
	var (
		mu      sync.Mutex
		entries []string // oldest first
		token   = "token-one"
		seen    = map[string]int{}
	)
	add := func(n int) {
		mu.Lock()
		defer mu.Unlock()
		for range n {
			i := len(entries)
			entries = append(entries, fmt.Sprintf(`{"recorded_at": %d, "actor": "api-token", "action": "deploy.create", "target": "app-%d", "outcome": "ok"}`, 1700000000+i, i))
		}
	}
	yoq := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		seen[r.Header.Get("Authorization")]++
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		page := make([]string, 0, len(entries))
		for i := len(entries) - 1; i >= 0; i-- {
			page = append(page, entries[i])
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, "["+strings.Join(page, ",")+"]")
	}))
	defer yoq.Close()
	const conf = `
data_dir: ${DIR}
server: {listen: "127.0.0.1:0"}
sources:
  - name: yoq
    format: app
    app: {flavor: yoq}
    auth: {none: true}
    pull: {url: "%s/v1/audit", bearer_token: %s, interval: 1h}
outputs:
  - {name: events, type: file, file: {path: "${DIR}/events.ndjson"}}
`
	add(3)
	r := startFileIn(t, t.TempDir(), fmt.Sprintf(conf, yoq.URL, "token-one"), false)
	out := filepath.Join(r.dir, "events.ndjson")
	events(t, out, 3)

	// The token rotates: the next poll must carry the new one, and it
	// comes at once (the interval is an hour) because the poller restarts.
	mu.Lock()
	token = "token-two"
	mu.Unlock()
	add(2)
	r.write(t, fmt.Sprintf(conf, yoq.URL, "token-two"))
	if err := r.s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := events(t, out, 5)
	ids := map[string]int{}
	for _, ev := range evs {
		ids[ev.ID]++
	}
	if len(ids) != 5 || len(evs) != 5 {
		t.Errorf("%d events, %d distinct, want 5 once each", len(evs), len(ids))
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["Bearer token-two"] == 0 || seen["Bearer token-one"] != 1 {
		t.Errorf("polls by token %v, want one with the old and then the new", seen)
	}
	if _, err := os.Stat(filepath.Join(r.dir, "pull", "yoq.json")); err != nil {
		t.Errorf("watermark: %v", err)
	}
}
