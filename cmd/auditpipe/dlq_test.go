package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/dlq"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
)

func TestDLQListAndReplay(t *testing.T) {
	dir := t.TempDir()
	store, err := dlq.Open(dlq.Config{Dir: filepath.Join(dir, "dlq")})
	if err != nil {
		t.Fatal(err)
	}
	evs := outputstest.Events(3)
	var ls []outputs.DeadLetter
	for i := range evs {
		out := "archive"
		if i == 2 {
			out = "siem"
		}
		ls = append(ls, outputs.DeadLetter{Time: outputstest.Base, Output: out, Error: "HTTP 400 Bad Request:\nmapper_parsing_exception", Event: eventjson.Append(nil, &evs[i])})
	}
	ls = append(ls, outputs.DeadLetter{Time: outputstest.Base, Source: "spacelift", Error: "$.timestamp: missing", Payload: []byte(`{}`)})
	if err := store.DeadLetter(context.Background(), ls); err != nil {
		t.Fatal(err)
	}
	store.Close()

	archive := filepath.Join(dir, "archive.ndjson")
	cfg := filepath.Join(dir, "auditpipe.yaml")
	os.WriteFile(cfg, []byte(`
server: {listen: ":8080"}   # another section of the sidecar's file: ignored here
dead_letter: {dir: `+filepath.Join(dir, "dlq")+`}
outputs:
  - name: archive
    type: file
    file: {path: `+archive+`}
`), 0o600)

	out, errOut, code := runCLI(t, "", "dlq", "list", "--config", cfg)
	if code != exitOK {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	for _, want := range []string{evs[0].ID, evs[2].ID, "siem", "(payload from spacelift)", "HTTP 400 Bad Request: mapper_parsing_exception"} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "archive: 2 letters") {
		t.Errorf("list summary: %q", errOut)
	}
	if out, _, _ := runCLI(t, "", "dlq", "list", "--dir", filepath.Join(dir, "dlq"), "--output", "siem", "--json"); strings.Count(out, "\n") != 1 || !strings.Contains(out, evs[2].ID) {
		t.Errorf("list --output siem --json:\n%s", out)
	}

	_, errOut, code = runCLI(t, "", "dlq", "replay", "--config", cfg, "--output", "archive")
	if code != exitOK || !strings.Contains(errOut, "replayed 2 of 2 letters of archive to archive") {
		t.Fatalf("replay: exit %d: %s", code, errOut)
	}
	got, _ := os.ReadFile(archive)
	if want := string(eventjson.Append(nil, &evs[0])) + "\n" + string(eventjson.Append(nil, &evs[1])) + "\n"; string(got) != want {
		t.Errorf("archive:\n%s\nwant\n%s", got, want)
	}
	// The siem letter replayed into archive with --from; the payload stays.
	_, errOut, code = runCLI(t, "", "dlq", "replay", "--config", cfg, "--output", "archive", "--from", "siem")
	if code != exitOK || !strings.Contains(errOut, "replayed 1 of 1") {
		t.Fatalf("replay --from: exit %d: %s", code, errOut)
	}
	out, _, _ = runCLI(t, "", "dlq", "list", "--dir", filepath.Join(dir, "dlq"))
	if strings.Count(out, "\n") != 2 || !strings.Contains(out, "payload from spacelift") {
		t.Errorf("after replay:\n%s", out)
	}
}

func TestDLQUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq"}, "Usage"},
		{[]string{"dlq", "frob"}, "unknown command"},
		{[]string{"dlq", "list"}, "--dir or --config is required"},
		{[]string{"dlq", "replay", "--dir", "x"}, "--config and --output are required"},
	} {
		_, errOut, code := runCLI(t, "", tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want usage error with %q", tc.args, code, errOut, tc.want)
		}
	}
}

// Without dead_letter.dir, list reads where the sidecar writes:
// <data_dir>/dlq, data_dir defaulting to ./data and, when relative, taken
// from the working directory.
func TestDLQListUsesTheSidecarsDefaultDir(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dataDir string // the data_dir line, "" for none
		dlqDir  string // where the sidecar writes, relative to the working directory
	}{
		{"data_dir set", "data_dir: var/auditpipe", filepath.Join("var", "auditpipe", "dlq")},
		{"data_dir default", "", filepath.Join("data", "dlq")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wd := t.TempDir()
			t.Chdir(wd)
			store, err := dlq.Open(dlq.Config{Dir: tc.dlqDir})
			if err != nil {
				t.Fatal(err)
			}
			ev := outputstest.Event(7)
			if err := store.DeadLetter(context.Background(), []outputs.DeadLetter{{Time: outputstest.Base, Output: "archive", Error: "rejected", Event: eventjson.Append(nil, &ev)}}); err != nil {
				t.Fatal(err)
			}
			store.Close()
			cfg := filepath.Join(wd, "auditpipe.yaml")
			if err := os.WriteFile(cfg, []byte(tc.dataDir+"\noutputs: [{name: archive, type: stdout}]\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			out, errOut, code := runCLI(t, "", "dlq", "list", "--config", cfg)
			if code != exitOK || !strings.Contains(out, ev.ID) || !strings.Contains(errOut, "archive: 1 letters") {
				t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
		})
	}
}

func TestDLQDirMustExist(t *testing.T) {
	tmp := t.TempDir()
	missing := filepath.Join(tmp, "nonexistent")
	file := filepath.Join(tmp, "file")
	os.WriteFile(file, nil, 0o600)
	empty := filepath.Join(tmp, "empty")
	os.Mkdir(empty, 0o700)
	cfg := filepath.Join(tmp, "auditpipe.yaml")
	os.WriteFile(cfg, []byte("outputs: [{name: archive, type: stdout}]\n"), 0o600)
	for _, tc := range []struct {
		args    []string
		code    int
		stderr  string // the whole of it, when the directory is wrong
		stdouts int    // lines on stdout
	}{
		{[]string{"list", "--dir", missing}, exitFailed, "auditpipe dlq list: " + missing + ": no such directory\n", 0},
		{[]string{"list", "--dir", missing, "--json"}, exitFailed, "auditpipe dlq list: " + missing + ": no such directory\n", 0},
		{[]string{"list", "--dir", file}, exitFailed, "auditpipe dlq list: " + file + ": not a directory\n", 0},
		{[]string{"replay", "--dir", missing, "--config", cfg, "--output", "archive"}, exitFailed, "auditpipe dlq replay: " + missing + ": no such directory\n", 0},
		{[]string{"list", "--dir", empty}, exitOK, "", 1}, // the table's header
		{[]string{"list", "--dir", empty, "--json"}, exitOK, "", 0},
	} {
		out, errOut, code := runCLI(t, "", append([]string{"dlq"}, tc.args...)...)
		if code != tc.code || errOut != tc.stderr || strings.Count(out, "\n") != tc.stdouts {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want exit %d, stderr %q and %d lines", tc.args, code, errOut, out, tc.code, tc.stderr, tc.stdouts)
		}
	}
}
