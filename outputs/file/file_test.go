package file_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/outputs/file"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
)

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func TestWritesNDJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "audit.ndjson")
	o, err := file.New(context.Background(), file.Config{Path: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	evs := outputstest.Events(10)
	if err := o.Write(context.Background(), evs[:4]); err != nil {
		t.Fatal(err)
	}
	if err := o.Write(context.Background(), evs[4:]); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := lines(t, path)
	if len(got) != 10 {
		t.Fatalf("%d lines, want 10", len(got))
	}
	for i, l := range got {
		if want := string(eventjson.Append(nil, &evs[i])); l != want {
			t.Errorf("line %d:\n got %s\nwant %s", i, l, want)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if err := o.Write(context.Background(), evs[:1]); err == nil {
		t.Error("write after close succeeded")
	}
	// Reopening appends.
	o2, _ := file.New(context.Background(), file.Config{Path: path, Mode: "0640"}, nil)
	o2.Write(context.Background(), evs[:1])
	o2.Close(context.Background())
	if n := len(lines(t, path)); n != 11 {
		t.Errorf("%d lines after reopen, want 11", n)
	}
}

func TestRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.ndjson")
	ev0 := outputstest.Event(0)
	one := len(eventjson.Append(nil, &ev0)) + 1
	no := false
	o, err := file.New(context.Background(), file.Config{Path: path, MaxBytes: int64(3 * one), MaxBackups: 2, Fsync: &no}, nil)
	if err != nil {
		t.Fatal(err)
	}
	evs := outputstest.Events(12)
	for i := 0; i < 12; i += 2 {
		if err := o.Write(context.Background(), evs[i:i+2]); err != nil {
			t.Fatal(err)
		}
	}
	o.Close(context.Background())
	// Batches of two, at most three lines a file: each batch starts a file.
	for _, p := range []string{path, path + ".1", path + ".2"} {
		if n := len(lines(t, p)); n != 2 {
			t.Errorf("%s: %d lines, want 2", p, n)
		}
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf("%s.3 kept beyond max_backups: %v", path, err)
	}
	if got := lines(t, path)[1]; got != string(eventjson.Append(nil, &evs[11])) {
		t.Errorf("newest file does not end with the newest event")
	}
}

func TestConcurrentBatchesDoNotInterleave(t *testing.T) {
	var buf bytes.Buffer
	o := file.NewWriter(&buf)
	evs := outputstest.Events(50)
	var wg sync.WaitGroup
	for w := range 5 {
		wg.Go(func() {
			if err := o.Write(context.Background(), evs[w*10:w*10+10]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(got) != 50 {
		t.Fatalf("%d lines", len(got))
	}
	pos := map[string]int{}
	for i, l := range got {
		pos[l] = i
	}
	for w := range 5 {
		first := pos[string(eventjson.Append(nil, &evs[w*10]))]
		for k := 1; k < 10; k++ {
			if pos[string(eventjson.Append(nil, &evs[w*10+k]))] != first+k {
				t.Fatalf("batch %d interleaved", w)
			}
		}
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		c    file.Config
		want string
	}{
		{file.Config{}, "path: required"},
		{file.Config{Path: "x", MaxBytes: -1}, "max_bytes"},
		{file.Config{Path: "x", MaxBackups: -1}, "max_backups"},
		{file.Config{Path: "x", Mode: "rw"}, "mode"},
		{file.Config{Path: "/proc/nope/x"}, "path"},
	} {
		if _, err := file.New(context.Background(), tc.c, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want mention of %q", tc.c, err, tc.want)
		}
	}
}

func BenchmarkWrite(b *testing.B) {
	no := false
	o, err := file.New(context.Background(), file.Config{Path: filepath.Join(b.TempDir(), "a.ndjson"), Fsync: &no}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close(context.Background())
	evs := outputstest.Events(100)
	b.ReportAllocs()
	for b.Loop() {
		if err := o.Write(context.Background(), evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "events/s")
}

// TestTornLastLineIsCut: a crash in the middle of a write leaves part of
// a line; the next start cuts it, so every line stays an event and the
// batch that was cut (never acknowledged) arrives whole when re-sent.
func TestTornLastLineIsCut(t *testing.T) {
	for name, torn := range map[string]string{
		"part of a line":         `{"schema_version":"1","id":"to`,
		"a line without its \\n": `{"schema_version":"1"}`,
		"nothing but a fragment": "",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.ndjson")
			evs := outputstest.Events(3)
			intact := string(eventjson.Append(nil, &evs[0])) + "\n"
			if name == "nothing but a fragment" {
				intact = ""
				torn = `{"sch`
			}
			os.WriteFile(path, []byte(intact+torn), 0o600)
			o, err := file.New(context.Background(), file.Config{Path: path}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := o.Write(context.Background(), evs[1:]); err != nil {
				t.Fatal(err)
			}
			o.Close(context.Background())
			var want []string
			if intact != "" {
				want = append(want, strings.TrimSuffix(intact, "\n"))
			}
			for i := 1; i < 3; i++ {
				want = append(want, string(eventjson.Append(nil, &evs[i])))
			}
			if got := lines(t, path); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("file after reopen:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}
