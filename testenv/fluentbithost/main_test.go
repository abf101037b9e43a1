package fluentbithost_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/auditpipe/auditpipe/testenv/fluentbithost"
)

// Built once for the whole test binary: linking a c-shared Go library takes
// seconds, and every test loads the same one (in its own host process, so
// that no process ever holds two Go runtimes).
var (
	hostBin   string
	hostErr   error
	pluginSO  string
	pluginErr error
	cliBin    string
	cliErr    error
	echoSO    string
	echoErr   error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fluentbithost-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if hostErr = fluentbithost.HaveToolchain(); hostErr == nil {
		hostBin, hostErr = fluentbithost.BuildHost(dir)
	}
	if hostErr == nil {
		pluginSO, pluginErr = fluentbithost.BuildPluginPackage(dir, "./plugin", "out_auditpipe.so")
		echoSO, echoErr = fluentbithost.BuildPluginPackage(dir, "./testenv/fluentbithost/testdata/echoplugin", "out_echo.so")
	}
	if root, err := fluentbithost.ModuleRoot(); err == nil {
		cliBin = filepath.Join(dir, "auditpipe")
		cmd := exec.Command("go", "build", "-o", cliBin, "./cmd/auditpipe")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			cliErr = fmt.Errorf("go build ./cmd/auditpipe: %w\n%s", err, out)
		}
	} else {
		cliErr = err
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// needHost returns the host binary, or skips (fails under CI=true).
func needHost(t testing.TB) string {
	t.Helper()
	if hostErr != nil {
		fluentbithost.SkipOrFail(t, hostErr)
	}
	return hostBin
}

// needPlugin returns the host binary and auditpipe's plugin library, or
// skips while ./plugin does not build yet (fails under CI=true).
func needPlugin(t testing.TB) (string, string) {
	t.Helper()
	bin := needHost(t)
	if pluginErr != nil {
		fluentbithost.SkipOrFail(t, pluginErr)
	}
	return bin, pluginSO
}

func payloadPath(t testing.TB, name string) string {
	t.Helper()
	root, err := fluentbithost.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "examples", "payloads", name)
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// expectedIDs returns the sorted ids `auditpipe normalize` makes of the
// payload file, the reference the plugin must agree with.
func expectedIDs(t testing.TB, file, format, source string) []string {
	t.Helper()
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	cmd := exec.Command(cliBin, "normalize", "--format", format, "--source-name", source, file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("auditpipe normalize %s: %v\n%s", file, err, stderr.String())
	}
	return idsOfNDJSON(t, out)
}

func idsOfNDJSON(t testing.TB, data []byte) []string {
	t.Helper()
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var ev struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("event line %q: %v", sc.Text(), err)
		}
		ids = append(ids, ev.ID)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

// fileIDs returns the sorted ids of the events a file output wrote to
// path, none when it does not exist.
func fileIDs(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return idsOfNDJSON(t, b)
}

// payloadRecords turns a payload file into the record maps Fluent Bit's
// inputs would make of it: a JSON object is one record, a JSON array one
// record per element (as the http input does), NDJSON one per line (tail
// with the json parser).
func payloadRecords(t testing.TB, file string) [][]byte {
	t.Helper()
	data := bytes.TrimSpace(readFile(t, file))
	var docs []json.RawMessage
	switch {
	case filepath.Ext(file) == ".ndjson":
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) > 0 {
				docs = append(docs, line)
			}
		}
	case data[0] == '[':
		if err := json.Unmarshal(data, &docs); err != nil {
			t.Fatal(err)
		}
	default:
		docs = []json.RawMessage{data}
	}
	out := make([][]byte, 0, len(docs))
	for _, d := range docs {
		m, err := fluentbithost.AppendJSON(nil, d)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out = append(out, m)
	}
	return out
}
