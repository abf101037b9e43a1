package fluentbittest_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/testenv/fluentbithost"
	fbt "github.com/auditpipe/auditpipe/testenv/fluentbittest"
)

// Built once for the test binary, and only when there is a Fluent Bit to
// run them in: linking the c-shared plugin and the CLI takes seconds.
var (
	fluentBit string
	pluginSO  string
	cliBin    string
	setupErr  error
	seeds     []seed
)

// seed is one example payload: the records Fluent Bit's inputs make of it
// (compact JSON: a JSON array is one record per element, as the http input
// makes it, NDJSON one per line, as tail does) and the sorted ids
// `auditpipe normalize` gives the file, which the plugin must match.
type seed struct {
	name string // file name without extension, [a-z0-9_]: the http input turns '-' in a tag from the URL into '_'

	file    string
	records []string
	ids     []string
}

// seedFiles are the example payloads: every seed format (Spacelift,
// Alertmanager, yoq, Teabar, CloudEvents, Kubernetes event and log).
var seedFiles = []string{
	"spacelift-stack-create.json", "spacelift-audit-trail-set.json", "spacelift-audit-trail-delete.json",
	"alertmanager-audit.json", "yoq-entries.json", "teabar-event.json", "teabar-cloudevent.json",
	"k8s-audit-event.json", "k8s-audit.log.ndjson",
}

func TestMain(m *testing.M) {
	code := func() int {
		bin, ok, err := fbt.Binary()
		if !ok {
			return m.Run() // every test skips
		}
		if err != nil {
			setupErr = err
			return m.Run()
		}
		fluentBit = bin
		dir, err := os.MkdirTemp("", "fluentbittest-")
		if err != nil {
			setupErr = err
			return m.Run()
		}
		defer os.RemoveAll(dir)
		setupErr = setup(dir)
		return m.Run()
	}()
	os.Exit(code)
}

// setup builds the plugin and the CLI side by side, then asks the CLI for
// the ids of every seed.
func setup(dir string) error {
	root, err := fluentbithost.ModuleRoot()
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var pluginErr, cliErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		pluginSO, pluginErr = fluentbithost.BuildPluginPackage(dir, "./plugin", "out_auditpipe.so")
	}()
	go func() {
		defer wg.Done()
		cliBin = filepath.Join(dir, "auditpipe")
		cmd := exec.Command("go", "build", "-o", cliBin, "./cmd/auditpipe")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			cliErr = fmt.Errorf("go build ./cmd/auditpipe: %w\n%s", err, out)
		}
	}()
	wg.Wait()
	if pluginErr != nil || cliErr != nil {
		return fmt.Errorf("%v %v", pluginErr, cliErr)
	}
	for _, f := range seedFiles {
		s, err := loadSeed(filepath.Join(root, "examples", "payloads", f))
		if err != nil {
			return err
		}
		seeds = append(seeds, s)
	}
	return nil
}

func loadSeed(file string) (seed, error) {
	base := filepath.Base(file)
	s := seed{name: strings.NewReplacer(".", "_", "-", "_").Replace(strings.TrimSuffix(base, filepath.Ext(base))), file: file}
	data, err := os.ReadFile(file)
	if err != nil {
		return s, err
	}
	data = bytes.TrimSpace(data)
	var docs []json.RawMessage
	switch {
	case filepath.Ext(file) == ".ndjson":
		for line := range bytes.SplitSeq(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) > 0 {
				docs = append(docs, line)
			}
		}
	case data[0] == '[':
		if err := json.Unmarshal(data, &docs); err != nil {
			return s, fmt.Errorf("%s: %w", file, err)
		}
	default:
		docs = []json.RawMessage{data}
	}
	for _, d := range docs {
		var b bytes.Buffer
		if err := json.Compact(&b, d); err != nil {
			return s, fmt.Errorf("%s: %w", file, err)
		}
		s.records = append(s.records, b.String())
	}
	cmd := exec.Command(cliBin, "normalize", "--format", "auto", file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return s, fmt.Errorf("auditpipe normalize %s: %w\n%s", file, err, stderr.String())
	}
	evs, err := parseEvents(out)
	if err != nil {
		return s, err
	}
	for _, e := range evs {
		s.ids = append(s.ids, e.ID)
	}
	slices.Sort(s.ids)
	if len(s.ids) == 0 {
		return s, fmt.Errorf("%s: normalize made no event", file)
	}
	return s, nil
}

// env is what every test needs: Fluent Bit, the plugin, and a directory.
type env struct {
	t   *testing.T
	dir string
}

// need skips the test without FLB_BIN and fails it when the setup failed.
func need(t *testing.T) env {
	t.Helper()
	fbt.Require(t)
	if setupErr != nil {
		t.Fatal(setupErr)
	}
	return env{t: t, dir: t.TempDir()}
}

func (e env) start(cfg fbt.Config) *fbt.Process {
	e.t.Helper()
	return fbt.Start(e.t, fbt.Options{Binary: fluentBit, Plugin: pluginSO, Dir: e.dir}, cfg)
}

func (e env) path(name string) string { return filepath.Join(e.dir, name) }

// event is what the tests read of an event.
type event struct {
	ID     string `json:"id"`
	Source struct {
		Name string `json:"name"`
	} `json:"source"`
	Labels map[string]string `json:"labels"`
}

func parseEvents(data []byte) ([]event, error) {
	var out []event
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("event line %q: %w", sc.Text(), err)
		}
		out = append(out, ev)
	}
	return out, sc.Err()
}

// fileEvents reads the events a file output wrote; none when the file does
// not exist yet. A line being written is left for the next poll.
func fileEvents(t *testing.T, path string) []event {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	evs, err := parseEvents(b)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// eventually polls cond until it holds, failing the test after within.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

func sorted(ids []string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ids
}

func allIDs() []string {
	var ids []string
	for _, s := range seeds {
		ids = append(ids, s.ids...)
	}
	return sorted(ids)
}

// Timeouts of the waits: generous for a busy 2-core machine, and never
// reached when things work (every wait polls for its condition).
const (
	startup  = 20 * time.Second
	delivery = 30 * time.Second
)
