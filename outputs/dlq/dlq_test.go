package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/dlq"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
)

func letter(i int, output string) outputs.DeadLetter {
	ev := outputstest.Event(i)
	return outputs.DeadLetter{Time: outputstest.Base, Output: output, Error: fmt.Sprintf("rejected %d", i), Event: ev.AppendJSON(nil)}
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
	if _, err := dlq.Open(dlq.Config{}); err == nil || !strings.Contains(err.Error(), "dir: required") {
		t.Errorf("err = %v", err)
	}
	if _, err := dlq.Open(dlq.Config{Dir: t.TempDir(), MaxFileBytes: -1}); err == nil || !strings.Contains(err.Error(), "max_file_bytes") {
		t.Errorf("err = %v", err)
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

func TestReplay(t *testing.T) {
	dir := t.TempDir()
	s, _ := dlq.Open(dlq.Config{Dir: dir})
	var ls []outputs.DeadLetter
	for i := range 6 {
		out := "es"
		if i%3 == 2 {
			out = "kafka"
		}
		ls = append(ls, letter(i, out))
	}
	ls = append(ls, outputs.DeadLetter{Time: outputstest.Base, Output: "es", Error: "x", Source: "s", Payload: []byte("{")})
	if err := s.DeadLetter(context.Background(), ls); err != nil {
		t.Fatal(err)
	}

	// While the store holds its file, replay leaves it alone.
	out := &flaky{refuse: map[string]error{outputstest.Event(1).ID: outputs.Permanent(errors.New("still bad"))}}
	d, err := outputs.NewDeliverer(outputs.DelivererConfig{Name: "es", Output: out,
		Retry: outputs.RetryConfig{InitialInterval: time.Microsecond, MaxInterval: time.Microsecond}})
	if err != nil {
		t.Fatal(err)
	}
	byOutput := func(l *outputs.DeadLetter) bool { return l.Output == "es" }
	rep, err := dlq.Replay(context.Background(), dir, byOutput, d)
	if err != nil || rep.Busy != 1 || rep.Selected != 0 {
		t.Fatalf("replay of a busy file: %+v, %v", rep, err)
	}
	s.Close()

	rep, err = dlq.Replay(context.Background(), dir, byOutput, d)
	if err == nil || !strings.Contains(err.Error(), "still bad") {
		t.Errorf("err = %v, want the refusal", err)
	}
	// es letters: events 0, 1, 3, 4 and the payload; event 1 refused.
	if rep != (dlq.ReplayReport{Selected: 5, Delivered: 3, Unreplayable: 1}) {
		t.Errorf("report %+v", rep)
	}
	want := []string{outputstest.Event(0).ID, outputstest.Event(3).ID, outputstest.Event(4).ID}
	if !slices.Equal(out.delivered, want) {
		t.Errorf("delivered %v, want %v", out.delivered, want)
	}
	var left []string
	for _, e := range walk(t, dir) {
		left = append(left, e.Output+":"+e.Error)
	}
	wantLeft := []string{"es:rejected 1", "kafka:rejected 2", "kafka:rejected 5", "es:x"}
	if !slices.Equal(left, wantLeft) {
		t.Errorf("left %v, want %v", left, wantLeft)
	}

	// Once the cause is fixed, the rest goes and the file with it.
	out.refuse = nil
	all := func(l *outputs.DeadLetter) bool { return len(l.Event) > 0 }
	if rep, err := dlq.Replay(context.Background(), dir, all, d); err != nil || rep.Delivered != 3 {
		t.Fatalf("%+v, %v", rep, err)
	}
	if got := walk(t, dir); len(got) != 1 || got[0].Source != "s" {
		t.Errorf("left %+v, want only the payload letter", got)
	}
}
