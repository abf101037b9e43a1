package dlq_test

import (
	"context"
	"encoding/json"
	"errors"
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

func TestReplay(t *testing.T) {
	dir := t.TempDir()
	s, _ := dlq.Open(dlq.Config{Dir: dir})
	defer s.Close()
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

	// The store keeps its file open: replay takes it all the same.
	out := &flaky{refuse: map[string]error{outputstest.Event(1).ID: outputs.Permanent(errors.New("still bad"))}}
	d, err := outputs.NewDeliverer(outputs.DelivererConfig{Name: "es", Output: out,
		Retry: outputs.RetryConfig{InitialInterval: time.Microsecond, MaxInterval: time.Microsecond}})
	if err != nil {
		t.Fatal(err)
	}
	byOutput := func(l *outputs.DeadLetter) bool { return l.Output == "es" }
	rep, err := dlq.Replay(context.Background(), dir, byOutput, d)
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

// recorder is a Sender that records the ids it delivers and refuses the
// ids it is told to, as a Deliverer does (an *outputs.UndeliveredError
// listing them). during, when set, runs inside Deliver, before it answers.
type recorder struct {
	refuse map[string]bool
	during func()

	mu        sync.Mutex
	delivered []string
}

var errRefused = errors.New("refused")

func (r *recorder) Deliver(_ context.Context, evs []auditpipe.Event) (outputs.Report, error) {
	if r.during != nil {
		r.during()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var refused []auditpipe.Event
	for _, ev := range evs {
		if r.refuse[ev.ID] {
			refused = append(refused, ev)
			continue
		}
		r.delivered = append(r.delivered, ev.ID)
	}
	if len(refused) > 0 {
		return outputs.Report{Delivered: len(evs) - len(refused)}, &outputs.UndeliveredError{Events: refused, Err: errRefused}
	}
	return outputs.Report{Delivered: len(evs)}, nil
}

func (r *recorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.delivered)
}

func all(*outputs.DeadLetter) bool { return true }

func ids(n ...int) []string {
	var s []string
	for _, i := range n {
		s = append(s, outputstest.Event(i).ID)
	}
	return s
}

// storedIDs returns the event ids of the letters in dir, in store order.
func storedIDs(t *testing.T, dir string) []string {
	t.Helper()
	var got []string
	for _, e := range walk(t, dir) {
		var ev auditpipe.Event
		if err := jsonUnmarshal(e.Event, &ev); err != nil {
			t.Fatalf("%s:%d: %v", e.File, e.Line, err)
		}
		got = append(got, ev.ID)
	}
	return got
}

func deadLetter(t *testing.T, s *dlq.Store, n ...int) {
	t.Helper()
	for _, i := range n {
		if err := s.DeadLetter(context.Background(), []outputs.DeadLetter{letter(i, "es")}); err != nil {
			t.Fatal(err)
		}
	}
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	fs, err := dlq.Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// The store's letters written while Replay sends (between its read and its
// rewrite of the store's own file) stay, and the store's next letter goes
// to a new file, as the one it had is no longer at its path.
func TestReplayOfTheFileTheStoreWrites(t *testing.T) {
	dir := t.TempDir()
	s, _ := dlq.Open(dlq.Config{Dir: dir})
	defer s.Close()
	deadLetter(t, s, 0, 1, 2)
	before := files(t, dir)

	r := &recorder{refuse: map[string]bool{outputstest.Event(1).ID: true}}
	r.during = func() { deadLetter(t, s, 3, 4) }
	rep, err := dlq.Replay(context.Background(), dir, all, r)
	if !errors.Is(err, errRefused) || rep != (dlq.ReplayReport{Selected: 3, Delivered: 2}) {
		t.Fatalf("replay: %+v, %v", rep, err)
	}
	if got := r.ids(); !slices.Equal(got, ids(0, 2)) {
		t.Errorf("delivered %v", got)
	}
	if got := storedIDs(t, dir); !slices.Equal(got, ids(1, 3, 4)) {
		t.Errorf("stored %v, want the refused letter and those written meanwhile", got)
	}
	if got := files(t, dir); !slices.Equal(got, before) {
		t.Errorf("files %v, want %v rewritten in place", got, before)
	}

	deadLetter(t, s, 5)
	if got := files(t, dir); len(got) != 2 || got[0] != before[0] {
		t.Errorf("files %v; want a new file for the letter written after the replay", got)
	}
	if got := storedIDs(t, dir); !slices.Equal(got, ids(1, 3, 4, 5)) {
		t.Errorf("stored %v", got)
	}

	// Now replay removes every file, the store's current one too; its
	// next letter goes to a new one.
	r = &recorder{}
	if rep, err := dlq.Replay(context.Background(), dir, all, r); err != nil || rep.Delivered != 4 {
		t.Fatalf("replay: %+v, %v", rep, err)
	}
	if got := files(t, dir); len(got) != 0 {
		t.Errorf("files %v after everything was delivered", got)
	}
	deadLetter(t, s, 6)
	if got := storedIDs(t, dir); !slices.Equal(got, ids(6)) {
		t.Errorf("stored %v", got)
	}
	if st := s.Stats(); st.Letters != 7 || st.Err != nil {
		t.Errorf("stats %+v", st)
	}
}

func TestReplayExcludesAnotherReplay(t *testing.T) {
	dir := t.TempDir()
	s, _ := dlq.Open(dlq.Config{Dir: dir})
	defer s.Close()
	deadLetter(t, s, 0)
	var inner error
	r := &recorder{during: func() {
		_, inner = dlq.Replay(context.Background(), dir, all, &recorder{})
	}}
	if rep, err := dlq.Replay(context.Background(), dir, all, r); err != nil || rep.Delivered != 1 {
		t.Fatalf("replay: %+v, %v", rep, err)
	}
	if inner == nil || !strings.Contains(inner.Error(), "another replay is running") {
		t.Errorf("a replay during a replay: %v", inner)
	}
}

// Lines that are not letters cost only themselves: Replay delivers the
// letters around them and keeps them where they were, byte for byte.
func TestReplayKeepsBadLines(t *testing.T) {
	good := func(i int) string {
		b, err := json.Marshal(letter(i, "es"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	g0, g1, g2, g3 := good(0), good(1), good(2), good(3)
	torn := g1[:len(g1)/2]
	for _, tc := range []struct {
		name      string
		file      string
		refuse    []int
		delivered []string
		left      string
		bad       int
	}{
		{"torn line glued to the next letter", g0 + "\n" + torn + g2 + "\n" + g3 + "\n",
			nil, ids(0, 3), torn + g2 + "\n", 1},
		{"torn last line", g0 + "\n" + g2 + "\n" + torn,
			nil, ids(0, 2), torn + "\n", 1},
		{"garbage and refusals", "\x00\xff\xfe not json\r\n" + g0 + "\n" + g1 + "\n" + "null\n" + g2 + "\n" + "[1,2]\n",
			[]int{1}, ids(0, 2), "\x00\xff\xfe not json\r\n" + g1 + "\n" + "null\n" + "[1,2]\n", 3},
		{"blank lines", "\n" + g0 + "\n \t\n\n" + g1 + "\n\n",
			nil, ids(0, 1), "", 0},
		{"no letter at all", torn + "\n", nil, nil, torn + "\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "dlq-20261121T093000.000000000Z-1-1.ndjson")
			if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			r := &recorder{refuse: map[string]bool{}}
			for _, i := range tc.refuse {
				r.refuse[outputstest.Event(i).ID] = true
			}
			rep, err := dlq.Replay(context.Background(), dir, all, r)
			if err != nil && !errors.Is(err, errRefused) {
				t.Fatal(err)
			}
			if got := r.ids(); !slices.Equal(got, tc.delivered) {
				t.Errorf("delivered %v, want %v", got, tc.delivered)
			}
			if rep.Delivered != len(tc.delivered) || rep.Bad != tc.bad {
				t.Errorf("report %+v; want %d delivered, %d bad", rep, len(tc.delivered), tc.bad)
			}
			got, err := os.ReadFile(path)
			if tc.left == "" {
				if !errors.Is(err, os.ErrNotExist) {
					t.Errorf("file left with %q, %v; want it removed", got, err)
				}
				return
			}
			if string(got) != tc.left {
				t.Errorf("file left with\n%q\nwant\n%q", got, tc.left)
			}
		})
	}
}

// A store writing from several goroutines while Replay runs again and
// again on the same directory: every letter ends up exactly once either
// delivered or still in the store.
func TestReplayConcurrentWithStore(t *testing.T) {
	dir := t.TempDir()
	s, err := dlq.Open(dlq.Config{Dir: dir, MaxFileBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 3, 40
	r := &recorder{refuse: map[string]bool{}}
	var want []string
	for i := range writers * each {
		id := outputstest.Event(i).ID
		want = append(want, id)
		if i%7 == 0 {
			r.refuse[id] = true
		}
	}

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := s.DeadLetter(context.Background(), []outputs.DeadLetter{letter(w*each+i, "es")}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	written := make(chan struct{})
	go func() { wg.Wait(); close(written) }()

	replays := 0
	for done := false; !done; replays++ {
		select {
		case <-written:
			done = true // one more replay, after the last letter
		default:
		}
		_, err := dlq.Replay(context.Background(), dir, all, r)
		for _, err := range unjoin(err) {
			if !errors.Is(err, errRefused) {
				t.Fatalf("replay %d: %v", replays, err)
			}
		}
	}
	s.Close()

	delivered, stored := r.ids(), storedIDs(t, dir)
	got := append(slices.Clone(delivered), stored...)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%d delivered + %d stored = %d letters, want each of %d exactly once", len(delivered), len(stored), len(got), len(want))
	}
	for _, id := range stored {
		if !r.refuse[id] {
			t.Errorf("%s stored though the last replay should have delivered it", id)
		}
	}
	t.Logf("%d replays", replays)
}

func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var errs []error
		for _, e := range j.Unwrap() {
			errs = append(errs, unjoin(e)...)
		}
		return errs
	}
	return []error{err}
}
