package flb

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/external"
)

// The transformer plugins the Format external tests run, built on first
// use: the example GitHub audit-log plugin, and the external package's
// test plugin, whose payload lines say what it does (exit, block-once...).
var (
	pluginsOnce           sync.Once
	pluginsErr            error
	githubPlugin, tPlugin string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flb-plugins-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	githubPlugin, tPlugin = filepath.Join(dir, "github-audit-plugin"), filepath.Join(dir, "testplugin")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func plugins(t *testing.T) (github, test string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the transformer plugins")
	}
	pluginsOnce.Do(func() {
		for out, pkg := range map[string]string{githubPlugin: "../../examples/transformer-plugin", tPlugin: "../../transformers/external/internal/testplugin"} {
			if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
				pluginsErr = fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
				return
			}
		}
	})
	if pluginsErr != nil {
		t.Fatal(pluginsErr)
	}
	return githubPlugin, tPlugin
}

func TestExternalKeysAreTheTransformerSection(t *testing.T) {
	want := []string{"External_Path", "External_Args", "External_Env", "External_Checksum", "External_Timeout",
		"External_Auto_MTLS", "External_Max_Batch"}
	if got := ExternalKeys(); !slices.Equal(got, want) {
		t.Errorf("ExternalKeys() = %v, want %v (derived from external.Config's yaml tags)", got, want)
	}
}

func TestParseConfigExternal(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	c, err := ParseConfig(keys("Format", "external", "External_Path", "/opt/p", "External_Arg", "-v, --x=1",
		"External_Env", "A=1,B=2", "External_Checksum", sum, "External_Timeout", "3s", "External_Auto_MTLS", "false",
		"External_Max_Batch", "50", "Output", "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	x := c.External
	if x == nil || x.Path != "/opt/p" || !slices.Equal(x.Args, []string{"-v", "--x=1"}) || x.Env["B"] != "2" || x.Checksum != sum ||
		x.Timeout != 3*time.Second || x.AutoMTLS == nil || *x.AutoMTLS || x.MaxBatch != 50 {
		t.Fatalf("External = %+v", x)
	}

	// The Config file's transformer section is a sidecar source's.
	path := filepath.Join(t.TempDir(), "auditpipe.yaml")
	writeFile(t, path, "outputs: [{name: x, type: stdout}]\ntransformer: {path: /opt/p, args: [a, 'b,c'], timeout: 2s}\n")
	c, err = ParseConfig(keys("Format", "external", "Config", path, "DLQ_Dir", "/tmp/d"))
	if err != nil {
		t.Fatal(err)
	}
	if x := c.External; x == nil || x.Path != "/opt/p" || !slices.Equal(x.Args, []string{"a", "b,c"}) || x.Timeout != 2*time.Second {
		t.Fatalf("External from the file = %+v", x)
	}
	if c, err := ParseConfig(keys("Output", "stdout")); err != nil || c.External != nil {
		t.Fatalf("Format auto: External = %+v, err %v", c.External, err)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	writeFile(t, bad, "outputs: [{name: x, type: stdout}]\ntransformer: {path: /opt/p, checksum: nope}\n")
	tests := []struct {
		name string
		kv   []string
		want string
	}{
		{"no path", []string{"Format", "external", "Output", "stdout"}, "External_Path: required with Format external"},
		{"key without the format", []string{"External_Path", "/opt/p", "Output", "stdout"}, "External_Path: set, but Format is auto"},
		{"file section without the format", []string{"Format", "k8s", "Config", path, "DLQ_Dir", "/tmp/d"}, "Config: " + path + ": transformer: set, but Format is k8s"},
		{"keys and file", []string{"Format", "external", "Config", path, "External_Timeout", "1s", "DLQ_Dir", "/tmp/d"}, "External_Timeout: set together with the transformer section"},
		{"duration", []string{"Format", "external", "External_Path", "/p", "External_Timeout", "soon", "Output", "stdout"}, `External_Timeout: "soon" is not a valid duration`},
		{"number", []string{"Format", "external", "External_Path", "/p", "External_Max_Batch", "many", "Output", "stdout"}, `External_Max_Batch: "many" is not a valid number`},
		{"checksum", []string{"Format", "external", "External_Path", "/p", "External_Checksum", "abc", "Output", "stdout"}, "External_Checksum: want the 64 hex digits"},
		{"checksum in the file", []string{"Format", "external", "Config", bad, "DLQ_Dir", "/tmp/d"}, "Config: " + bad + ": transformer.checksum: want the 64 hex digits"},
		{"env", []string{"Format", "external", "External_Path", "/p", "External_Env", "PLUGIN_X=1", "Output", "stdout"}, "External_Env: PLUGIN_X is set by the host"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig(keys(tc.kv...))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestNewExternalNamesTheKey(t *testing.T) {
	github, _ := plugins(t)
	for _, tc := range []struct {
		name string
		kv   []string
		want string
	}{
		{"missing", []string{"External_Path", "/nonexistent/plugin"}, "External_Path: stat /nonexistent/plugin: no such file"},
		{"not a plugin", []string{"External_Path", "/bin/true"}, "External_Path: start /bin/true"},
		{"checksum", []string{"External_Path", github, "External_Checksum", strings.Repeat("0", 64)}, "External_Checksum: " + github + " has SHA-256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig(keys(append([]string{"Format", "external", "Output", "file", "File_Path", filepath.Join(t.TempDir(), "e"),
				"DLQ_Dir", t.TempDir(), "External_Timeout", "5s"}, tc.kv...)...))
			if err != nil {
				t.Fatal(err)
			}
			in, err := New(context.Background(), cfg, nil)
			if err == nil {
				in.Close(context.Background())
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// countingBatcher counts the calls a flush makes to the transformer.
type countingBatcher struct {
	batcher
	calls, payloads atomic.Int64
}

func (c *countingBatcher) TransformBatch(ctx context.Context, ins []transformers.Input) ([]transformers.Result, error) {
	c.calls.Add(1)
	c.payloads.Add(int64(len(ins)))
	return c.batcher.TransformBatch(ctx, ins)
}

func newExternalInstance(t *testing.T, plugin string, extra ...string) (*Instance, string, string) {
	t.Helper()
	return newFileInstance(t, append([]string{"Format", "external", "External_Path", plugin}, extra...)...)
}

// One chunk, one TransformBatch: every record's events come back to it
// (the tag and metadata labels, the plugin's own), and the records the
// plugin cannot map are dead-lettered as those of any format are.
func TestFlushExternalBatchesTheChunk(t *testing.T) {
	github, _ := plugins(t)
	in, out, dlqDir := newExternalInstance(t, github)
	cb := &countingBatcher{batcher: in.batcher}
	in.batcher = cb
	page := payload(t, "../transformer-plugin/githubaudit/testdata/repo_create.json")
	var chunk []byte
	var want []string
	for i := range 150 {
		rec := map[string]any{}
		for k, v := range page.(map[string]any) {
			rec[k] = v
		}
		rec["_document_id"] = "doc-" + strconv.Itoa(i)
		var meta map[string]any
		if i%50 == 0 {
			meta = map[string]any{"i": strconv.Itoa(i)}
		}
		chunk = appendRecord(t, chunk, v2, eventTime, meta, rec)
		want = append(want, "doc-"+strconv.Itoa(i))
	}
	chunk = appendRecord(t, chunk, classic, eventTime, nil, map[string]any{"action": "repo.create"}) // no time
	chunk = appendRecord(t, chunk, classic, eventTime, nil, "not a map")
	if c := in.Flush(context.Background(), "gh", chunk); c != OK {
		t.Fatalf("Flush = %v, want FLB_OK", c)
	}
	if n, p := cb.calls.Load(), cb.payloads.Load(); n != 1 || p != 151 {
		t.Errorf("%d TransformBatch calls with %d payloads, want 1 with 151 (the record that is not a map never reaches it)", n, p)
	}
	var got []string
	for _, ev := range readEvents(t, out) {
		got = append(got, ev.ID)
		if ev.Source.Format != "github_audit" || ev.Source.Name != "gh" || ev.Labels[TagLabel] != "gh" || ev.Labels["actor_country_code"] != "US" {
			t.Errorf("event %s: source %+v labels %v", ev.ID, ev.Source, ev.Labels)
		}
		if i, _ := strconv.Atoi(strings.TrimPrefix(ev.ID, "doc-")); i%50 == 0 && ev.Labels[MetaLabelPrefix+"i"] != strconv.Itoa(i) {
			t.Errorf("event %s: metadata label missing: %v", ev.ID, ev.Labels)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("ids:\n got %v\nwant %v", got, want)
	}
	letters := readLetters(t, dlqDir)
	if len(letters) != 2 {
		t.Fatalf("%d dead letters, want 2: %v", len(letters), letters)
	}
	if s := in.Stats(); s.Records != 152 || s.Events != 150 || s.DeadLettered != 2 {
		t.Errorf("stats = %+v", s)
	}
}

// A plugin that dies in the middle of a chunk fails the flush as a whole
// with FLB_RETRY: nothing of the chunk is delivered or dead-lettered, and
// Fluent Bit's retry, once the plugin is restarted, delivers all of it.
// One that hangs past External_Timeout is killed, and the same holds.
func TestFlushExternalCrashRetries(t *testing.T) {
	_, test := plugins(t)
	for _, mode := range []string{"kill", "timeout"} {
		t.Run(mode, func(t *testing.T) {
			flag := filepath.Join(t.TempDir(), "blocked")
			timeout := "1m"
			if mode == "timeout" {
				timeout = "2s"
			}
			in, out, dlqDir := newExternalInstance(t, test, "Payload_Key", "log", "External_Timeout", timeout,
				"External_Env", "TESTPLUGIN_BLOCK_ONCE="+flag)
			var chunk []byte
			var want []string
			for i := range 20 {
				line := "id-" + strconv.Itoa(i)
				if i == 10 {
					line = "block-once"
				}
				chunk = appendRecord(t, chunk, classic, eventTime, nil, map[string]any{"log": line})
				want = append(want, line)
			}
			pid := childPID(t, test)
			done := make(chan Code)
			go func() { done <- in.Flush(context.Background(), "t", chunk) }()
			if mode == "kill" {
				waitFile(t, flag) // the plugin is blocked in the chunk
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
			if c := <-done; c != Retry {
				t.Fatalf("Flush = %v, want FLB_RETRY", c)
			}
			if evs, letters := readEvents(t, out), readLetters(t, dlqDir); len(evs) != 0 || len(letters) != 0 {
				t.Fatalf("a failed flush kept %d events and %d dead letters", len(evs), len(letters))
			}
			// Fluent Bit's retries, until the plugin is back.
			deadline := time.Now().Add(30 * time.Second)
			for in.Flush(context.Background(), "t", chunk) != OK {
				if time.Now().After(deadline) {
					t.Fatal("the chunk was never delivered")
				}
			}
			var got []string
			for _, ev := range readEvents(t, out) {
				got = append(got, ev.ID)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("ids:\n got %v\nwant %v", got, want)
			}
			if after := childPID(t, test); after == pid {
				t.Errorf("plugin pid %d still serving", pid)
			}
			if s := in.Stats(); s.Retry < 1 || s.OK != 1 || s.Events != int64(len(want)) {
				t.Errorf("stats = %+v", s)
			}
		})
	}
}

// Close ends the plugin process: nothing is left behind by Fluent Bit's
// exit callback.
func TestCloseEndsExternalPlugin(t *testing.T) {
	github, _ := plugins(t)
	in, _, _ := newExternalInstance(t, github)
	pid := childPID(t, github)
	if err := in.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Errorf("plugin process %d still running after Close", pid)
	}
	if c := in.Flush(context.Background(), "t", appendRecord(t, nil, classic, eventTime, nil, map[string]any{})); c != Retry {
		t.Errorf("Flush after Close = %v, want FLB_RETRY", c)
	}
}

// childPID is the pid of this process's one running child whose
// executable is path.
func childPID(t *testing.T, path string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc")
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		exe, _ := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if exe == path && ppid(pid) == os.Getpid() {
			pids = append(pids, pid)
		}
	}
	if len(pids) != 1 {
		t.Fatalf("children running %s: %v, want one", path, pids)
	}
	return pids[0]
}

// stat is /proc/PID/stat after the command name: state, ppid, ...
func stat(pid int) []string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
}

func ppid(pid int) int {
	f := stat(pid)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// alive: running, not a zombie waiting to be reaped.
func alive(pid int) bool {
	f := stat(pid)
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

var _ batcher = (*external.Transformer)(nil)

// Workers N flush concurrently through the one plugin process of the
// instance: every record of every chunk comes back to its own chunk.
func TestFlushExternalConcurrent(t *testing.T) {
	_, test := plugins(t)
	in, out, _ := newExternalInstance(t, test, "Payload_Key", "log")
	var wg sync.WaitGroup
	codes := make([]Code, 4)
	var want []string
	for w := range codes {
		var chunk []byte
		for i := range 50 {
			id := fmt.Sprintf("w%d-%d", w, i)
			chunk = appendRecord(t, chunk, classic, eventTime, nil, map[string]any{"log": id})
			want = append(want, id)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[w] = in.Flush(context.Background(), "w"+strconv.Itoa(w), chunk)
		}()
	}
	wg.Wait()
	for w, c := range codes {
		if c != OK {
			t.Errorf("worker %d: Flush = %v", w, c)
		}
	}
	var got []string
	for _, ev := range readEvents(t, out) {
		got = append(got, ev.ID)
		if !strings.HasPrefix(ev.ID, ev.Labels[TagLabel]+"-") {
			t.Errorf("event %s came back to chunk %s", ev.ID, ev.Labels[TagLabel])
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("ids:\n got %v\nwant %v", got, want)
	}
	childPID(t, test) // still one process
}
