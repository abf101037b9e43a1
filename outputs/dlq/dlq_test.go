package dlq_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/dlq"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
)

func letter(i int, output string) outputs.DeadLetter {
	ev := outputstest.Event(i)
	return outputs.DeadLetter{Time: outputstest.Base, Output: output, Error: fmt.Sprintf("rejected %d", i), Event: eventjson.Append(nil, &ev)}
}

func walk(t *testing.T, dir string) []dlq.Entry {
	t.Helper()
	var got []dlq.Entry
	if err := dlq.Walk(dir, func(e dlq.Entry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestStoreWritesReadableLetters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dlq")
	s, err := dlq.Open(dlq.Config{Dir: dir, MaxFileBytes: 1500})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 5 {
				if err := s.DeadLetter(context.Background(), []outputs.DeadLetter{letter(w*5+i, "es")}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := s.DeadLetter(context.Background(), []outputs.DeadLetter{{Time: outputstest.Base, Source: "spacelift", Error: "$.timestamp: missing", Payload: []byte(`{"x":1}`)}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	files, _ := dlq.Files(dir)
	if len(files) < 2 {
		t.Errorf("%d files; want rotation past max_file_bytes", len(files))
	}
	got := walk(t, dir)
	if len(got) != 21 {
		t.Fatalf("%d letters, want 21", len(got))
	}
	seen := map[string]bool{}
	for _, e := range got {
		if e.Payload != nil {
			if e.Source != "spacelift" || string(e.Payload) != `{"x":1}` {
				t.Errorf("payload letter = %+v", e.DeadLetter)
			}
			continue
		}
		var ev auditpipe.Event
		if err := jsonUnmarshal(e.Event, &ev); err != nil || ev.Validate() != nil {
			t.Errorf("%s:%d: event does not decode to a valid event: %v", e.File, e.Line, err)
		}
		seen[ev.ID] = true
	}
	if len(seen) != 20 {
		t.Errorf("%d distinct events, want 20", len(seen))
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, %v", fi.Mode(), err)
	}
}

func TestWalkReportsTornLines(t *testing.T) {
	dir := t.TempDir()
	s, _ := dlq.Open(dlq.Config{Dir: dir})
	if err := s.DeadLetter(context.Background(), []outputs.DeadLetter{letter(0, "es")}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	files, _ := dlq.Files(dir)
	f, _ := os.OpenFile(files[0], os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2026-`)
	f.Close()
	var n int
	err := dlq.Walk(dir, func(dlq.Entry) error { n++; return nil })
	if n != 1 || err == nil || !strings.Contains(err.Error(), ":2: not a dead letter") {
		t.Errorf("n=%d err=%v; want the good letter and an error naming line 2", n, err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  dlq.Config
		want string // in the error; "" for none
	}{
		{"no dir", dlq.Config{}, "dir: required"},
		{"negative max_file_bytes", dlq.Config{Dir: "d", MaxFileBytes: -1}, "max_file_bytes: must not be negative"},
		{"negative max_bytes", dlq.Config{Dir: "d", MaxBytes: -1}, "max_bytes: must not be negative"},
		{"file bound above the total", dlq.Config{Dir: "d", MaxBytes: 1000, MaxFileBytes: 1001}, "max_file_bytes: 1001 exceeds max_bytes 1000"},
		{"file bound equal to the total", dlq.Config{Dir: "d", MaxBytes: 1000, MaxFileBytes: 1000}, ""},
		{"total below the default file bound", dlq.Config{Dir: "d", MaxBytes: 1000}, ""},
		{"file bound above the default total", dlq.Config{Dir: "d", MaxFileBytes: 2 << 30}, ""},
		{"defaults", dlq.Config{Dir: "d"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Validate() = %v; want %q", err, tc.want)
			}
		})
	}
	if _, err := dlq.Open(dlq.Config{Dir: t.TempDir(), MaxBytes: -1}); err == nil || !strings.Contains(err.Error(), "max_bytes") {
		t.Errorf("Open: err = %v", err)
	}
}

// flaky accepts every event except those whose ids it is told to refuse.
type flaky struct {
	refuse    map[string]error
	delivered []string
}

func (f *flaky) Write(_ context.Context, evs []auditpipe.Event) error {
	var pe outputs.PartialError
	for i, ev := range evs {
		if err, ok := f.refuse[ev.ID]; ok {
			pe.Failures = append(pe.Failures, outputs.Failure{Index: i, Err: err})
			continue
		}
		f.delivered = append(f.delivered, ev.ID)
	}
	if len(pe.Failures) > 0 {
		return &pe
	}
	return nil
}
func (f *flaky) Close(context.Context) error { return nil }
