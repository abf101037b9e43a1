package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe"
)

func runCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

func events(t *testing.T, ndjson string) []auditpipe.Event {
	t.Helper()
	var evs []auditpipe.Event
	dec := json.NewDecoder(strings.NewReader(ndjson))
	for dec.More() {
		var e auditpipe.Event
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("stdout is not NDJSON events: %v\n%s", err, ndjson)
		}
		if err := e.Validate(); err != nil {
			t.Errorf("event %s: %v", e.ID, err)
		}
		evs = append(evs, e)
	}
	return evs
}

func TestNormalizeSeedFile(t *testing.T) {
	out, errOut, code := runCLI(t, "", "normalize", "../../transformers/spacelift/testdata/seed_stack_create.json")
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	evs := events(t, out)
	if len(evs) != 1 || evs[0].Action != "stack.create" || evs[0].Source.Name != "seed_stack_create.json" || evs[0].Source.Format != "spacelift" {
		t.Errorf("unexpected events: %+v", evs)
	}
}

func TestNormalizeStdinWithFormatAndSourceName(t *testing.T) {
	body := `{"account":"a","action":"stack.delete","actor":"github::x","timestamp":1674124447947,"remoteIP":"192.0.2.1"}`
	out, errOut, code := runCLI(t, body, "normalize", "--format", "spacelift", "--source-name", "ci")
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if evs := events(t, out); len(evs) != 1 || evs[0].Source.Name != "ci" || evs[0].Operation != auditpipe.OperationDelete {
		t.Errorf("unexpected events: %+v", evs)
	}
}

func TestNormalizeReportsFileAndLine(t *testing.T) {
	dir := t.TempDir()
	ndjson := filepath.Join(dir, "trail.ndjson")
	lines := `{"account":"a","action":"stack.create","actor":"github::x","timestamp":1,"remoteIP":"192.0.2.1"}
{"account":"a","action":
{"account":"a","action":"stack.lock","actor":"github::x","timestamp":2,"remoteIP":"192.0.2.1"}
`
	if err := os.WriteFile(ndjson, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	array := filepath.Join(dir, "batch.json")
	if err := os.WriteFile(array, []byte("[\n {\"account\":\"a\",\"action\":\"stack.create\",\"actor\":\"github::x\",\"timestamp\":1,\"remoteIP\":\"192.0.2.1\"},\n {\"account\":\"a\",\"action\":\"stack.create\",\"actor\":\"github::x\",\"timestamp\":\"soon\",\"remoteIP\":\"192.0.2.1\"}\n]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, "", "normalize", "--format", "spacelift", ndjson, array)
	if code != exitFailed {
		t.Errorf("exit %d, want %d when an item failed", code, exitFailed)
	}
	if n := len(events(t, out)); n != 3 {
		t.Errorf("%d events, want the 3 good ones", n)
	}
	for _, want := range []string{ndjson + ":2: ", array + ":3: spacelift: $[1].timestamp"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

func TestNormalizeUsageErrors(t *testing.T) {
	if _, errOut, code := runCLI(t, "", "normalize", "--format", "nope", "x.json"); code != exitUsage || !strings.Contains(errOut, "--format") {
		t.Errorf("unknown format: exit %d, stderr %q", code, errOut)
	}
	if _, errOut, code := runCLI(t, "", "normalize", "missing-file.json"); code != exitFailed || !strings.Contains(errOut, "missing-file.json") {
		t.Errorf("missing file: exit %d, stderr %q", code, errOut)
	}
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte("limits:\n  max_depht: 3\n"), 0o600)
	if _, errOut, code := runCLI(t, "", "normalize", "--config", cfg); code != exitUsage || !strings.Contains(errOut, "max_depht") {
		t.Errorf("unknown config key: exit %d, stderr %q", code, errOut)
	}
	if _, _, code := runCLI(t, "", "frobnicate"); code != exitUsage {
		t.Errorf("unknown command: exit %d", code)
	}
}

func TestVersion(t *testing.T) {
	out, _, code := runCLI(t, "", "version")
	if code != exitOK || !strings.HasPrefix(out, "auditpipe ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
}

func TestLineOf(t *testing.T) {
	doc := []byte("{\n \"a\": [\n  1,\n  {\"b c\": 2}\n ],\n \"d\": {}\n}")
	tests := map[string]int{"$": 1, "$.a": 2, "$.a[0]": 3, `$.a[1]["b c"]`: 4, "$.d": 6, "$.d.missing": 6, "$.zz": 1, "bogus": 0}
	for path, want := range tests {
		if got := lineOf(doc, path); got != want {
			t.Errorf("lineOf(%s) = %d, want %d", path, got, want)
		}
	}
}

// FuzzLineOf: the error locator parses JSONPaths and scans documents the
// transformers rejected; it must never panic or point past the input.
func FuzzLineOf(f *testing.F) {
	f.Add([]byte("{\n \"a\": [1, {\"b c\": 2}]\n}"), `$.a[1]["b c"]`)
	f.Add([]byte(`{"a":`), "$.a")
	f.Fuzz(func(t *testing.T, doc []byte, path string) {
		if line := lineOf(doc, path); line < 0 || line > 1+bytes.Count(doc, []byte{'\n'}) {
			t.Fatalf("lineOf = %d for a %d-line document", line, 1+bytes.Count(doc, []byte{'\n'}))
		}
	})
}

func TestNormalizeVerboseSummary(t *testing.T) {
	_, errOut, code := runCLI(t, "", "normalize", "-v", "../../transformers/alertmanager/testdata/other_alertname.json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := "other_alertname.json: format alertmanager (decided by $.alerts), "
	if !strings.Contains(errOut, want) || !strings.Contains(errOut, "skipped (alertname)") {
		t.Errorf("summary %q lacks %q and the skip count", errOut, want)
	}
}
