package sidecar_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExternalTransformerSource is the example plugin's README, end to
// end: build the plugin, name it in a source with format external, post a
// GitHub audit-log page, and see its events at the output.
func TestExternalTransformerSource(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example plugin")
	}
	plugin := filepath.Join(t.TempDir(), "github-audit-plugin")
	if out, err := exec.Command("go", "build", "-o", plugin, "../examples/transformer-plugin").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	r := start(t, `
data_dir: ${DIR}
server: {listen: "127.0.0.1:0"}
sources:
  - name: github
    format: external
    transformer: {path: "${PLUGIN}"}
    auth: {none: true}
outputs:
  - {name: events, type: file, file: {path: "${DIR}/events.ndjson"}}
`, map[string]string{"PLUGIN": plugin})
	page, err := os.ReadFile("../examples/transformer-plugin/githubaudit/testdata/audit_log_page.json")
	if err != nil {
		t.Fatal(err)
	}
	got := post(t, r.url+"/v1/sources/github", page, nil)
	if got.code != 200 {
		t.Fatalf("%d %s", got.code, got.raw)
	}
	n := int(got.body["accepted"].(float64))
	evs := events(t, filepath.Join(r.dir, "events.ndjson"), n)
	for _, ev := range evs {
		if ev.Source.Name != "github" || ev.Validate() != nil || !strings.Contains(ev.Action, ".") {
			t.Errorf("event %+v: %v", ev, ev.Validate())
		}
	}
	if bad := post(t, r.url+"/v1/sources/github", []byte("not json"), nil); bad.code != 400 {
		t.Errorf("not JSON through the plugin: %d %s", bad.code, bad.raw)
	}

	// Kill the plugin: the sender is told 503 (retry) until the host has
	// restarted it, never 4xx, and then the payload goes through.
	pids := pluginPIDs(t, plugin)
	if len(pids) != 1 {
		t.Fatalf("plugin processes %v, want one", pids)
	}
	syscall.Kill(pids[0], syscall.SIGKILL)
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := post(t, r.url+"/v1/sources/github", page, nil)
		if got.code == 200 {
			break
		}
		if got.code != 503 || got.hdr.Get("Retry-After") == "" {
			t.Fatalf("while the plugin restarts: %d %s, want 503 with Retry-After", got.code, got.raw)
		}
		if time.Now().After(deadline) {
			t.Fatal("the plugin was not restarted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if after := pluginPIDs(t, plugin); len(after) != 1 || after[0] == pids[0] {
		t.Errorf("plugin processes after the crash %v (before %v): want one new one", after, pids)
	}
	// The same page twice: the same ids, so the output holds each event of
	// it at least once and no event was lost.
	evs = events(t, filepath.Join(r.dir, "events.ndjson"), 2*n)
	ids := map[string]int{}
	for _, ev := range evs {
		ids[ev.ID]++
	}
	if len(ids) != n {
		t.Errorf("%d distinct events after the restart, want %d", len(ids), n)
	}
}

// pluginPIDs lists the running processes whose executable is path.
func pluginPIDs(t *testing.T, path string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc")
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && exe == path {
			if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && !strings.Contains(string(st), ") Z ") {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}
