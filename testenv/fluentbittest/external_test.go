package fluentbittest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/auditpipe/auditpipe/examples/transformer-plugin/githubaudit"
	"github.com/auditpipe/auditpipe/testenv/fluentbithost"
	fbt "github.com/auditpipe/auditpipe/testenv/fluentbittest"
	"github.com/auditpipe/auditpipe/transformers/external"
)

// The transformer plugins of the Format external tests, built once next to
// the Fluent Bit plugin: the example GitHub audit-log plugin, and the
// external package's test plugin, whose payload lines say what it does
// (block-once: block the first time, so the test can kill it mid-call or
// let the call time out).
var (
	transformerOnce       sync.Once
	transformerErr        error
	githubPlugin, tPlugin string
)

func transformerPlugins(t *testing.T) (github, test string) {
	t.Helper()
	transformerOnce.Do(func() {
		root, err := fluentbithost.ModuleRoot()
		if err != nil {
			transformerErr = err
			return
		}
		dir := filepath.Dir(pluginSO) // removed with the rest by TestMain
		githubPlugin, tPlugin = filepath.Join(dir, "github-audit-plugin"), filepath.Join(dir, "testplugin")
		for out, pkg := range map[string]string{githubPlugin: "./examples/transformer-plugin", tPlugin: "./transformers/external/internal/testplugin"} {
			cmd := exec.Command("go", "build", "-o", out, pkg)
			cmd.Dir = root
			if b, err := cmd.CombinedOutput(); err != nil {
				transformerErr = fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
				return
			}
		}
	})
	if transformerErr != nil {
		t.Fatal(transformerErr)
	}
	return githubPlugin, tPlugin
}

// githubPage is the example plugin's audit-log page as http input records,
// and the ids the plugin's transform gives them, computed in-process.
func githubPage(t *testing.T) (records []string, ids []string) {
	t.Helper()
	root, err := fluentbithost.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "examples", "transformer-plugin", "githubaudit", "testdata", "audit_log_page.json"))
	if err != nil {
		t.Fatal(err)
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(data, &entries); err != nil {
		t.Fatal(err)
	}
	tr, err := githubaudit.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		records = append(records, string(e))
		evs, err := tr.Transform(context.Background(), external.Payload{Body: e})
		if err != nil || len(evs) != 1 {
			t.Fatalf("in-process transform of %s: %v, %d events", e, err, len(evs))
		}
		ids = append(ids, evs[0].ID)
	}
	return records, sorted(ids)
}

// Format external inside Fluent Bit: a chunk of GitHub audit-log records
// through the example plugin, configured by the External_* keys (classic
// configuration, Workers 2) or by the Config file's transformer section
// (YAML). The events are the plugin's (same ids as its transform
// in-process, its labels), the record it cannot map is dead-lettered,
// both workers share the one plugin process of the [OUTPUT] section, and
// SIGTERM's exit callback ends it.
func TestExternalFormat(t *testing.T) {
	for _, v := range []struct {
		name   string
		format fbt.Format
		load   fbt.Load
		file   bool
	}{{"keys", fbt.Classic, fbt.Flag, false}, {"config-file", fbt.YAML, fbt.PluginsSection, true}} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			e := need(t)
			github, _ := transformerPlugins(t)
			records, want := githubPage(t)
			port := fbt.FreePort(t)
			out := fbt.S("Name", "auditpipe", "Match", "*", "Workers", "2", "Format", "external", "DLQ_Dir", e.path("dlq"))
			if v.file {
				cfg := fmt.Sprintf("outputs: [{name: events, type: file, file: {path: %q}}]\ntransformer: {path: %q, timeout: 20s}\n",
					e.path("events.ndjson"), github)
				if err := os.WriteFile(e.path("auditpipe.yaml"), []byte(cfg), 0o644); err != nil {
					t.Fatal(err)
				}
				out = out.With("Config", e.path("auditpipe.yaml"))
			} else {
				out = out.With("Output", "file", "File_Path", e.path("events.ndjson"), "External_Path", github, "External_Timeout", "20s")
			}
			fb := e.start(fbt.Config{Format: v.format, Load: v.load, Service: retryService(),
				Inputs: []fbt.Section{httpInput(port)}, Outputs: []fbt.Section{out}})
			fb.WaitCount(startup, `msg="instance started"`, 1)
			bad := `{"action":"repo.create","actor":"x"}` // no time: the plugin's item error
			post(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/github.audit", "["+strings.Join(append(records, bad), ",")+"]", http.StatusCreated)
			eventually(t, delivery, "the plugin's events", func() bool { return len(fileEvents(t, e.path("events.ndjson"))) >= len(want) })
			eventually(t, delivery, "the dead letter", func() bool { return dlqCount(t, e.path("dlq")) == 1 })

			var got []string
			for _, ev := range fileEvents(t, e.path("events.ndjson")) {
				got = append(got, ev.ID)
				if ev.Labels["fluentbit_tag"] != "github.audit" || ev.Source.Name != "github.audit" {
					t.Errorf("event %s: source %q, labels %v", ev.ID, ev.Source.Name, ev.Labels)
				}
			}
			if got = sorted(got); !slices.Equal(got, want) {
				t.Errorf("ids:\n got %v\nwant %v (the example plugin's, in-process)", got, want)
			}
			if !strings.Contains(string(readAll(t, e.path("events.ndjson"))), `"actor_country_code":"DE"`) {
				t.Error("the plugin's own label (actor_country_code) is missing")
			}
			fbPID := fluentBitPID(t, e)
			kids := children(fbPID, github)
			if len(kids) != 1 {
				t.Fatalf("plugin processes of Fluent Bit: %v, want one for the section's two workers", kids)
			}
			if shared := inherited(fbPID, kids[0]); len(shared) > 0 {
				t.Errorf("the plugin holds Fluent Bit's descriptors %v: a connection Fluent Bit closes would stay open", shared)
			}
			fb.Signal(syscall.SIGTERM)
			if st := fb.Wait(startup); st.ExitCode() != 0 {
				t.Errorf("exit after SIGTERM: %v, want status 0", st)
			}
			if !strings.Contains(fb.Log(), `msg="instance closed"`) {
				t.Error("the exit callback did not run")
			}
			gone(t, kids[0])
		})
	}
}

// A plugin killed in the middle of a chunk, or hung past External_Timeout:
// the flush answers FLB_RETRY, Fluent Bit retries the chunk, the restarted
// plugin maps it, and every record arrives.
func TestExternalPluginCrashRetries(t *testing.T) {
	for _, mode := range []string{"kill", "timeout"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := need(t)
			_, test := transformerPlugins(t)
			port := fbt.FreePort(t)
			flag := e.path("blocked")
			timeout := "1m"
			if mode == "timeout" {
				timeout = "2s"
			}
			fb := e.start(fbt.Config{Format: fbt.Classic, Load: fbt.PluginsFile, Service: retryService(),
				Inputs: []fbt.Section{httpInput(port)},
				Outputs: []fbt.Section{fbt.S("Name", "auditpipe", "Match", "*", "Retry_Limit", "no_limits", "Format", "external",
					"External_Path", test, "External_Timeout", timeout, "External_Env", "TESTPLUGIN_BLOCK_ONCE="+flag,
					"Payload_Key", "log", "Output", "file", "File_Path", e.path("events.ndjson"), "DLQ_Dir", e.path("dlq"))}})
			fb.WaitCount(startup, `msg="instance started"`, 1)
			var records, want []string
			for i := range 40 {
				line := "id-" + strconv.Itoa(i)
				if i == 20 {
					line = "block-once"
				}
				records = append(records, `{"log":"`+line+`"}`)
				want = append(want, line)
			}
			post(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/crash", "["+strings.Join(records, ",")+"]", http.StatusCreated)
			eventually(t, delivery, "the plugin blocked in the chunk", func() bool { _, err := os.Stat(flag); return err == nil })
			fbPID := fluentBitPID(t, e)
			before := children(fbPID, test)
			if len(before) != 1 {
				t.Fatalf("plugin processes %v, want one", before)
			}
			if mode == "kill" {
				if err := syscall.Kill(before[0], syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
			fb.WaitCount(delivery, "failed to flush chunk", 1)
			eventually(t, delivery, "every record after the retry", func() bool { return len(fileEvents(t, e.path("events.ndjson"))) >= len(want) })
			fb.WaitCount(delivery, "succeeded at retry", 1)

			var got []string
			for _, ev := range fileEvents(t, e.path("events.ndjson")) {
				got = append(got, ev.ID)
			}
			if got, want := sorted(got), sorted(want); !slices.Equal(got, want) {
				t.Errorf("ids (every copy):\n got %v\nwant %v", got, want)
			}
			for _, line := range []string{"transformer unavailable; chunk will be retried", "external transformer restarted"} {
				if !strings.Contains(fb.Log(), line) {
					t.Errorf("the log lacks %q", line)
				}
			}
			after := children(fbPID, test)
			if len(after) != 1 || after[0] == before[0] {
				t.Errorf("plugin processes after the failure %v (before %v), want one new one", after, before)
			}
			if n := dlqCount(t, e.path("dlq")); n != 0 {
				t.Errorf("%d dead letters: an unavailable plugin is retried, not dead-lettered", n)
			}
			fb.Signal(syscall.SIGTERM)
			if st := fb.Wait(startup); st.ExitCode() != 0 {
				t.Errorf("exit after SIGTERM: %v, want status 0", st)
			}
			gone(t, after[0])
		})
	}
}

// No plugin process outlives Fluent Bit: not after SIGTERM (the exit
// callback ends it), not after kill -9 (the kernel's parent-death signal
// does), whether the plugin was started by init or restarted after a
// crash by the transformer's supervisor (another thread). And a hot
// reload ends the old instance's plugin and starts one for the new.
func TestExternalNoOrphanPlugin(t *testing.T) {
	for _, v := range []struct {
		name    string
		restart bool
		stop    func(*fbt.Process)
	}{
		{"SIGTERM", false, func(p *fbt.Process) { p.Signal(syscall.SIGTERM) }},
		{"kill-9", false, func(p *fbt.Process) { p.Kill() }},
		{"kill-9-after-restart", true, func(p *fbt.Process) { p.Kill() }},
		{"hot-reload", false, func(p *fbt.Process) { p.Signal(syscall.SIGHUP) }},
	} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			e := need(t)
			github, _ := transformerPlugins(t)
			records, want := githubPage(t)
			port := fbt.FreePort(t)
			fb := e.start(fbt.Config{Format: fbt.Classic, Load: fbt.Flag, Service: retryService("hot_reload", "on"),
				Inputs: []fbt.Section{httpInput(port)},
				Outputs: []fbt.Section{fbt.S("Name", "auditpipe", "Match", "*", "Format", "external", "External_Path", github,
					"Output", "file", "File_Path", e.path("events.ndjson"), "DLQ_Dir", e.path("dlq"))}})
			fb.WaitCount(startup, `msg="instance started"`, 1)
			fbPID := fluentBitPID(t, e)
			kids := children(fbPID, github)
			if len(kids) != 1 {
				t.Fatalf("plugin processes %v, want one", kids)
			}
			if v.restart {
				if err := syscall.Kill(kids[0], syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				fb.WaitCount(startup, "external transformer restarted", 1)
				old := kids[0]
				eventually(t, startup, "the restarted plugin", func() bool {
					kids = children(fbPID, github)
					return len(kids) == 1 && kids[0] != old
				})
			}
			v.stop(fb)
			if v.name == "hot-reload" {
				fb.WaitCount(startup, `msg="instance started" plugin=auditpipe instance=2 `, 1)
				gone(t, kids[0])
				// The new instance's plugin serves: a chunk goes through.
				// The http input listens again once the new pipeline runs.
				eventually(t, startup, "the chunk accepted after the reload", func() bool {
					resp, err := http.Post("http://127.0.0.1:"+strconv.Itoa(port)+"/after.reload", "application/json", strings.NewReader("["+strings.Join(records, ",")+"]"))
					if err != nil {
						return false
					}
					resp.Body.Close()
					return resp.StatusCode == http.StatusCreated
				})
				eventually(t, delivery, "events after the reload", func() bool { return len(fileEvents(t, e.path("events.ndjson"))) >= len(want) })
				if strings.Contains(fb.Log(), "external transformer failed") {
					t.Error("a plugin failed across the reload")
				}
				kids = children(fbPID, github)
				if len(kids) != 1 {
					t.Fatalf("plugin processes after the reload %v, want one", kids)
				}
				fb.Kill()
			} else {
				fb.Wait(startup)
			}
			gone(t, kids[0])
		})
	}
}

// A plugin that cannot start: Fluent Bit refuses the configuration and
// exits, and the error names the key.
func TestExternalBadPath(t *testing.T) {
	t.Parallel()
	e := need(t)
	fb := e.start(fbt.Config{Format: fbt.YAML, Load: fbt.PluginsSection, Service: fbt.S("flush", "0.2", "grace", "1"),
		Inputs: []fbt.Section{fbt.S("Name", "dummy", "Tag", "x")},
		Outputs: []fbt.Section{fbt.S("Name", "auditpipe", "Match", "*", "Format", "external", "External_Path", e.path("no-such-plugin"),
			"Output", "stdout")}})
	if st := fb.Wait(startup); st.ExitCode() != 255 {
		t.Errorf("exit %v, want status 255", st)
	}
	for _, want := range []string{
		"[error] [output:auditpipe] External_Path: stat " + e.path("no-such-plugin") + ": no such file or directory",
		"[error] [engine] output initialization failed",
	} {
		if !strings.Contains(fb.Log(), want) {
			t.Errorf("the log lacks %q", want)
		}
	}
}

// fluentBitPID finds the test's Fluent Bit: the process running the binary
// in the test's directory.
func fluentBitPID(t *testing.T, e env) int {
	t.Helper()
	var found []int
	for _, pid := range pids() {
		exe, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe"))
		cwd, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "cwd"))
		if exe == fluentBit && cwd == e.dir && alive(pid) {
			found = append(found, pid)
		}
	}
	if len(found) != 1 {
		t.Fatalf("Fluent Bit processes in %s: %v, want one", e.dir, found)
	}
	return found[0]
}

// children lists the live children of parent running exe.
func children(parent int, exe string) []int {
	var out []int
	for _, pid := range pids() {
		f := procStat(pid)
		if len(f) < 2 || f[1] != strconv.Itoa(parent) || !alive(pid) {
			continue
		}
		if x, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe")); x == exe {
			out = append(out, pid)
		}
	}
	return out
}

// gone waits for pid to end (a zombie waiting for init to reap it has).
func gone(t *testing.T, pid int) {
	t.Helper()
	eventually(t, startup, fmt.Sprintf("plugin process %d to end", pid), func() bool { return !alive(pid) })
}

func pids() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// procStat is /proc/PID/stat after the command name: state, ppid, ...
func procStat(pid int) []string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
}

func alive(pid int) bool {
	f := procStat(pid)
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// inherited lists the sockets and pipes that pid holds above stderr and
// that Fluent Bit holds too: descriptors the plugin inherited. (Its stdout
// and stderr are pipes to Fluent Bit's Go side, by design.)
func inherited(fbPID, pid int) []string {
	fbFiles := map[string]bool{}
	for _, l := range fdLinks(fbPID) {
		fbFiles[l] = true
	}
	var out []string
	for fd, l := range fdLinks(pid) {
		if fd > 2 && fbFiles[l] && (strings.HasPrefix(l, "socket:") || strings.HasPrefix(l, "pipe:")) {
			out = append(out, fmt.Sprintf("%d -> %s", fd, l))
		}
	}
	return out
}

func fdLinks(pid int) map[int]string {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, _ := os.ReadDir(dir)
	links := map[int]string{}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if l, lerr := os.Readlink(filepath.Join(dir, e.Name())); err == nil && lerr == nil {
			links[fd] = l
		}
	}
	return links
}

func readAll(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
