package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// --- helpers ---------------------------------------------------------------

func boolp(b bool) *bool { return &b }

// logBuffer collects a queue's log so tests can both see it and check it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func openQueue(t testing.TB, cfg Config, consumers ...string) *Queue {
	t.Helper()
	q, err := Open(cfg, consumers, slog.New(slog.NewTextHandler(&testWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

type testWriter struct{ t testing.TB }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func rec(i int) []byte {
	return fmt.Appendf(nil, `{"id":"evt-%d","pad":"%s"}`, i, strings.Repeat("p", i%50))
}

// appendRange appends records from..to-1 in groups of up to three.
func appendRange(t testing.TB, q *Queue, from, to int) {
	t.Helper()
	for i := from; i < to; {
		var group [][]byte
		for ; i < to && len(group) < 1+i%3; i++ {
			group = append(group, rec(i))
		}
		if _, err := q.Append(context.Background(), group); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
}

// readN reads exactly n records with batches of at most batch records.
func readN(t testing.TB, r *Reader, n, batch int) []Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []Record
	for len(out) < n {
		recs, err := r.Next(ctx, min(batch, n-len(out)), 0, 0)
		if err != nil {
			t.Fatalf("next after %d of %d records: %v", len(out), n, err)
		}
		out = append(out, recs...)
	}
	return out
}

// checkRecords asserts that recs are records first.. in order, as rec made them.
func checkRecords(t testing.TB, recs []Record, first int) {
	t.Helper()
	for i, r := range recs {
		want := first + i
		if r.Seq != uint64(want) || !bytes.Equal(r.Data, rec(want-1)) {
			t.Fatalf("record %d: seq %d data %q, want seq %d data %q", i, r.Seq, r.Data, want, rec(want-1))
		}
	}
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func checkNoLeak(t testing.TB, baseline int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling interval
	}
}

// --- tests -----------------------------------------------------------------

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{Config{Dir: "d"}, ""},
		{Config{}, "dir:"},
		{Config{Dir: "d", MaxBytes: -1}, "max_bytes:"},
		{Config{Dir: "d", MaxBytes: 100}, "max_bytes:"},
		{Config{Dir: "d", SegmentBytes: -1}, "segment_bytes:"},
		{Config{Dir: "d", SegmentBytes: 10}, "segment_bytes:"},
		{Config{Dir: "d", MaxBytes: 1 << 20, SegmentBytes: 2 << 20}, "segment_bytes:"},
		{Config{Dir: "d", MaxBytes: 1 << 20}, ""}, // segment default shrinks to fit
		{Config{Dir: "d", MaxBytes: 4096, SegmentBytes: 4096, Fsync: boolp(false)}, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%+v", tt.cfg), func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
				t.Fatalf("error %v, want one starting %q", err, tt.want)
			}
		})
	}
	d := Config{Dir: "d", MaxBytes: 1 << 20}.withDefaults()
	if d.SegmentBytes != 256<<10 || !*d.Fsync {
		t.Fatalf("defaults: %+v", d)
	}
	if d := (Config{Dir: "d"}).withDefaults(); d.MaxBytes != 1<<30 || d.SegmentBytes != 64<<20 {
		t.Fatalf("defaults: %+v", d)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name      string
		consumers []string
		want      string
	}{
		{"empty consumer", []string{""}, "empty consumer"},
		{"duplicate consumer", []string{"a", "b", "a"}, `"a" given twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(Config{Dir: dir}, tt.consumers, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
	t.Run("locked", func(t *testing.T) {
		openQueue(t, Config{Dir: dir}, "a")
		_, err := Open(Config{Dir: dir}, []string{"a"}, nil)
		if err == nil || !strings.Contains(err.Error(), "locked") {
			t.Fatalf("second Open of one dir: %v", err)
		}
	})
	t.Run("unknown reader", func(t *testing.T) {
		q := openQueue(t, Config{Dir: t.TempDir()}, "a")
		if _, err := q.Reader("b"); err == nil {
			t.Fatal("Reader of an unknown consumer succeeded")
		}
	})
}

// Three consumers read the same records at their own pace, batch sizes and
// ack rhythm, while appends continue.
func TestRoundTripSeveralConsumers(t *testing.T) {
	baseline := runtime.NumGoroutine()
	q := openQueue(t, Config{Dir: t.TempDir(), SegmentBytes: 4096, MaxBytes: 1 << 20}, "fast", "slow", "lazy")
	const total = 600
	consumers := []struct {
		name     string
		batch    int
		maxBytes int
		ackEvery int // batches between acks
	}{
		{"fast", 100, 0, 1},
		{"slow", 7, 300, 3},
		{"lazy", 1000, 0, 1000},
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(consumers))
	for _, c := range consumers {
		r, err := q.Reader(c.name)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			next := uint64(1)
			for batches := 1; next <= total; batches++ {
				recs, err := r.Next(ctx, c.batch, c.maxBytes, time.Millisecond)
				if err != nil {
					errs <- fmt.Errorf("%s: %w", c.name, err)
					return
				}
				size := 0
				for _, rc := range recs {
					size += len(rc.Data)
					if rc.Seq != next || !bytes.Equal(rc.Data, rec(int(next-1))) {
						errs <- fmt.Errorf("%s: got record %d %q, want %d", c.name, rc.Seq, rc.Data, next)
						return
					}
					next++
				}
				if len(recs) > c.batch || (c.maxBytes > 0 && len(recs) > 1 && size > c.maxBytes) {
					errs <- fmt.Errorf("%s: batch of %d records, %d bytes exceeds its limits", c.name, len(recs), size)
					return
				}
				if batches%c.ackEvery == 0 || next > total {
					if err := r.Ack(next - 1); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	appendRange(t, q, 0, total)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := q.Stats()
	if st.Head != total || st.Records != 0 || st.Segments != 1 {
		t.Fatalf("stats after everything acked: %+v", st)
	}
	for name, cs := range st.Consumers {
		if cs.Acked != total || cs.Pending != 0 || !cs.OldestPending.IsZero() {
			t.Fatalf("%s: %+v", name, cs)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	checkNoLeak(t, baseline)
}

// 64 appenders, and the first fsync held until all the others are queued:
// whatever the first group took, the rest must share the second fsync.
func TestGroupCommitSharesFsyncs(t *testing.T) {
	q := openQueue(t, Config{Dir: t.TempDir()}, "out")
	const appenders = 64
	one := make([]byte, 100)
	all := int64(appenders * (frameHeaderSize + len(one)))
	var once sync.Once
	q.testHookSync = func() error {
		var err error
		once.Do(func() {
			// q.reserved counts the group being synced and those queued.
			deadline := time.Now().Add(10 * time.Second)
			for {
				q.mu.Lock()
				reserved := q.reserved
				q.mu.Unlock()
				if reserved == all {
					return
				}
				if time.Now().After(deadline) {
					err = fmt.Errorf("only %d of %d bytes queued", reserved, all)
					return
				}
				time.Sleep(time.Millisecond) // polling interval
			}
		})
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, appenders)
	for range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := q.Append(context.Background(), [][]byte{one})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := q.syncs.Load(); n != 2 {
		t.Fatalf("%d fsyncs for %d concurrent appends, want 2", n, appenders)
	}

	// Without the hook: many rounds of 64 concurrent appenders; the
	// writer's own fsync time is enough for groups to form.
	before := q.syncs.Load()
	q2 := q
	const rounds = 20
	wg = sync.WaitGroup{}
	for g := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				if _, err := q2.Append(context.Background(), [][]byte{rec(g*rounds + i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	syncs := q.syncs.Load() - before
	t.Logf("%d appends, %d fsyncs", appenders*rounds, syncs)
	if syncs >= appenders*rounds {
		t.Fatalf("%d fsyncs for %d appends: no group commit", syncs, appenders*rounds)
	}
	if st := q.Stats(); st.Head != appenders*(rounds+1) {
		t.Fatalf("head %d, want %d", st.Head, appenders*(rounds+1))
	}
}

func TestSegmentsDeletedOnlyWhenEveryConsumerAcked(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, Config{Dir: dir, SegmentBytes: 1024, MaxBytes: 1 << 20}, "a", "b")
	appendRange(t, q, 0, 200)
	segs := len(segFiles(t, dir))
	if segs < 5 {
		t.Fatalf("%d segments for 200 records of 1 KiB segments", segs)
	}
	if st := q.Stats(); st.Segments != segs || st.Records != 200 {
		t.Fatalf("stats %+v, %d files", st, segs)
	}
	ra, _ := q.Reader("a")
	rb, _ := q.Reader("b")
	if err := ra.Ack(200); err != nil {
		t.Fatal(err)
	}
	if n := len(segFiles(t, dir)); n != segs {
		t.Fatalf("%d segments after one of two consumers acked, want %d", n, segs)
	}
	if err := rb.Ack(100); err != nil {
		t.Fatal(err)
	}
	mid := len(segFiles(t, dir))
	if mid >= segs || mid <= 1 {
		t.Fatalf("%d segments after b acked half, had %d", mid, segs)
	}
	// What b has not acknowledged is all still there.
	checkRecords(t, readN(t, rb, 100, 30), 101)
	if err := rb.Ack(200); err != nil {
		t.Fatal(err)
	}
	if n := len(segFiles(t, dir)); n != 1 {
		t.Fatalf("%d segments after both acked everything, want only the current one", n)
	}
	st := q.Stats()
	if st.Segments != 1 || st.Records != 0 || st.Bytes > 1024 {
		t.Fatalf("stats %+v", st)
	}
	// Appends go on, and a reader that was behind still sees them.
	appendRange(t, q, 200, 210)
	checkRecords(t, readN(t, ra, 10, 3), 201)
}

func TestCursorsPersistAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 1024, MaxBytes: 1 << 20}
	q := openQueue(t, cfg, "a", "b", "gone")
	appendRange(t, q, 0, 100)
	ra, _ := q.Reader("a")
	rb, _ := q.Reader("b")
	readN(t, ra, 60, 100) // read further than acked
	if err := ra.Ack(40); err != nil {
		t.Fatal(err)
	}
	if err := rb.Ack(70); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	// "gone" (acked nothing) is no longer configured: it must not hold
	// segments back. a's cursor at 40 is now the oldest.
	q = openQueue(t, cfg, "a", "b")
	if st := q.Stats(); st.Records != 60 || st.Consumers["a"].Acked != 40 || st.Consumers["b"].Acked != 70 {
		t.Fatalf("stats after reopen without gone: %+v", st)
	}
	ra, _ = q.Reader("a")
	rb, _ = q.Reader("b")
	checkRecords(t, readN(t, ra, 60, 25), 41)
	checkRecords(t, readN(t, rb, 30, 25), 71)
	q.Close()

	// "new" has no cursor: it starts at the oldest record kept, which the
	// deleted segments put after 1 and no later than a's next record.
	q = openQueue(t, cfg, "a", "b", "new")
	rn, _ := q.Reader("new")
	first := readN(t, rn, 1, 1)[0].Seq
	if first < 2 || first > 41 {
		t.Fatalf("new consumer starts at %d: want the oldest retained record", first)
	}
	if st := q.Stats(); st.Consumers["new"].Acked != first-1 || st.Records != 100-(first-1) {
		t.Fatalf("stats with new: %+v", st)
	}
	// Numbering continues after reopen.
	last, err := q.Append(context.Background(), [][]byte{rec(100)})
	if err != nil || last != 101 {
		t.Fatalf("append after reopen: %d, %v", last, err)
	}
}

func TestAck(t *testing.T) {
	q := openQueue(t, Config{Dir: t.TempDir()}, "a")
	appendRange(t, q, 0, 10)
	r, _ := q.Reader("a")
	tests := []struct {
		seq     uint64
		wantErr bool
		acked   uint64
	}{
		{5, false, 5},
		{3, false, 5}, // lower: ignored
		{5, false, 5},
		{11, true, 5}, // beyond head
		{10, false, 10},
	}
	for _, tt := range tests {
		err := r.Ack(tt.seq)
		if (err != nil) != tt.wantErr {
			t.Fatalf("Ack(%d): %v", tt.seq, err)
		}
		if got := q.Stats().Consumers["a"].Acked; got != tt.acked {
			t.Fatalf("after Ack(%d): acked %d, want %d", tt.seq, got, tt.acked)
		}
	}
	// An ack past the read position moves it.
	appendRange(t, q, 10, 20)
	if err := r.Ack(15); err != nil {
		t.Fatal(err)
	}
	checkRecords(t, readN(t, r, 5, 10), 16)
}

func TestRewind(t *testing.T) {
	// Small segments and a record index every 64 KiB: rewinding crosses
	// segments and uses the index.
	q := openQueue(t, Config{Dir: t.TempDir(), SegmentBytes: 256 << 10, MaxBytes: 8 << 20, Fsync: boolp(false)}, "a")
	big := make([][]byte, 2000)
	for i := range big {
		big[i] = bytes.Repeat([]byte{byte('a' + i%26)}, 1000)
	}
	if _, err := q.Append(context.Background(), big); err != nil {
		t.Fatal(err)
	}
	r, _ := q.Reader("a")
	tests := []struct {
		read, ack int
	}{
		{10, 0},
		{500, 300},
		{1000, 1301},
		{200, 1400},
		{600, 2000},
	}
	for _, tt := range tests {
		recs := readN(t, r, tt.read, 128)
		if err := r.Ack(uint64(tt.ack)); err != nil {
			t.Fatal(err)
		}
		r.Rewind()
		if tt.ack == 2000 {
			break
		}
		got := readN(t, r, 1, 1)[0]
		if got.Seq != uint64(tt.ack+1) || !bytes.Equal(got.Data, big[tt.ack]) {
			t.Fatalf("after reading to %d, ack %d, rewind: next is %d", recs[len(recs)-1].Seq, tt.ack, got.Seq)
		}
		r.Rewind()
	}
}

func TestNextBlocking(t *testing.T) {
	t.Run("waits for an append", func(t *testing.T) {
		q := openQueue(t, Config{Dir: t.TempDir()}, "a")
		r, _ := q.Reader("a")
		got := make(chan []Record, 1)
		go func() {
			recs, err := r.Next(context.Background(), 10, 0, 0)
			if err != nil {
				t.Error(err)
			}
			got <- recs
		}()
		appendRange(t, q, 0, 1)
		checkRecords(t, <-got, 1)
	})
	t.Run("maxWait collects until the batch is full", func(t *testing.T) {
		q := openQueue(t, Config{Dir: t.TempDir()}, "a")
		r, _ := q.Reader("a")
		got := make(chan []Record, 1)
		go func() {
			recs, err := r.Next(context.Background(), 3, 0, time.Hour)
			if err != nil {
				t.Error(err)
			}
			got <- recs
		}()
		for i := range 3 {
			appendRange(t, q, i, i+1)
		}
		checkRecords(t, <-got, 1)
	})
	t.Run("maxWait returns a partial batch when it passes", func(t *testing.T) {
		q := openQueue(t, Config{Dir: t.TempDir()}, "a")
		r, _ := q.Reader("a")
		appendRange(t, q, 0, 2)
		recs, err := r.Next(context.Background(), 100, 0, 20*time.Millisecond)
		if err != nil || len(recs) != 2 {
			t.Fatalf("%d records, %v", len(recs), err)
		}
	})
	t.Run("maxWait 0 returns what is there", func(t *testing.T) {
		q := openQueue(t, Config{Dir: t.TempDir()}, "a")
		r, _ := q.Reader("a")
		appendRange(t, q, 0, 5)
		recs, err := r.Next(context.Background(), 100, 0, 0)
		if err != nil || len(recs) != 5 {
			t.Fatalf("%d records, %v", len(recs), err)
		}
	})
	t.Run("maxBytes, but at least one record", func(t *testing.T) {
		q := openQueue(t, Config{Dir: t.TempDir()}, "a")
		r, _ := q.Reader("a")
		if _, err := q.Append(context.Background(), [][]byte{make([]byte, 500), make([]byte, 10), make([]byte, 10), make([]byte, 500)}); err != nil {
			t.Fatal(err)
		}
		for _, want := range []int{1, 2, 1} {
			recs, err := r.Next(context.Background(), 100, 100, 0)
			if err != nil || len(recs) != want {
				t.Fatalf("%d records, %v; want %d", len(recs), err, want)
			}
		}
	})
	t.Run("ctx cancelled", func(t *testing.T) {
		q := openQueue(t, Config{Dir: t.TempDir()}, "a")
		r, _ := q.Reader("a")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := r.Next(ctx, 10, 0, 0)
			done <- err
		}()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Next after cancel: %v", err)
		}
	})
	t.Run("ctx cancelled with records collected", func(t *testing.T) {
		q := openQueue(t, Config{Dir: t.TempDir()}, "a")
		r, _ := q.Reader("a")
		appendRange(t, q, 0, 1)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan []Record, 1)
		go func() {
			recs, err := r.Next(ctx, 10, 0, time.Hour)
			if err != nil {
				t.Error(err)
			}
			done <- recs
		}()
		eventually(t, "Next to collect the record", func() bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.pos == 2
		})
		cancel()
		checkRecords(t, <-done, 1)
	})
	t.Run("Close wakes a blocked Next", func(t *testing.T) {
		baseline := runtime.NumGoroutine()
		q, err := Open(Config{Dir: t.TempDir()}, []string{"a"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := q.Reader("a")
		done := make(chan error, 1)
		go func() {
			_, err := r.Next(context.Background(), 10, 0, 0)
			done <- err
		}()
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked Next after Close: %v", err)
		}
		if _, err := r.Next(context.Background(), 1, 0, 0); !errors.Is(err, ErrClosed) {
			t.Fatalf("Next after Close: %v", err)
		}
		checkNoLeak(t, baseline)
	})
}

func TestFullAndBackPressure(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, Config{Dir: dir, MaxBytes: 16 << 10, SegmentBytes: 4 << 10}, "a", "b")
	one := [][]byte{bytes.Repeat([]byte("x"), 1000)}
	n := 0
	for {
		_, err := q.Append(context.Background(), one)
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	st := q.Stats()
	if st.Bytes > st.MaxBytes || st.Bytes < st.MaxBytes-2048 {
		t.Fatalf("full at %d of %d bytes after %d records", st.Bytes, st.MaxBytes, n)
	}
	if _, err := q.Append(context.Background(), [][]byte{make([]byte, 16<<10)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("record larger than max_bytes: %v", err)
	}
	ra, _ := q.Reader("a")
	rb, _ := q.Reader("b")
	// One consumer's acks free nothing while the other holds the segments.
	if err := ra.Ack(uint64(n)); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Append(context.Background(), one); !errors.Is(err, ErrFull) {
		t.Fatalf("append with b behind: %v", err)
	}
	if err := rb.Ack(uint64(n / 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Append(context.Background(), one); err != nil {
		t.Fatalf("append after acks freed segments: %v", err)
	}
	if _, err := q.Append(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

// With segment_bytes equal to max_bytes, a fully acknowledged segment is
// the only thing taking space: the queue must replace it rather than stay
// full forever.
func TestFullTailFullyAcked(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, Config{Dir: dir, MaxBytes: 4096, SegmentBytes: 4096}, "a")
	r, _ := q.Reader("a")
	one := [][]byte{bytes.Repeat([]byte("y"), 900)}
	for round := range 5 {
		var last uint64
		for {
			l, err := q.Append(context.Background(), one)
			if errors.Is(err, ErrFull) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			last = l
		}
		if last == 0 {
			t.Fatalf("round %d: nothing appended", round)
		}
		recs := readN(t, r, int(last-q.Stats().Consumers["a"].Acked), 100)
		if err := r.Ack(recs[len(recs)-1].Seq); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(segFiles(t, dir)); n > 2 {
		t.Fatalf("%d segment files", n)
	}
}

// An fsync that fails must fail its appends and leave the log as it was:
// no record of the group is readable, and later appends reuse the numbers.
func TestFailedFsyncRollsBack(t *testing.T) {
	dir := t.TempDir()
	var logs logBuffer
	q, err := Open(Config{Dir: dir, SegmentBytes: 2048, MaxBytes: 1 << 20}, []string{"a"}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	appendRange(t, q, 0, 3)
	errDisk := errors.New("disk on fire")
	var fail sync.Mutex
	failing, calls := true, 0
	q.testHookSync = func() error {
		fail.Lock()
		defer fail.Unlock()
		calls++
		// The first fsync (of the full segment) succeeds, the one after
		// the rotation fails: the rollback must undo both.
		if failing && calls > 1 {
			return errDisk
		}
		return nil
	}
	segsBefore := len(segFiles(t, dir))
	big := make([][]byte, 10) // crosses a segment boundary: the rollback removes the new file
	for i := range big {
		big[i] = bytes.Repeat([]byte("z"), 500)
	}
	if _, err := q.Append(context.Background(), big); !errors.Is(err, errDisk) {
		t.Fatalf("append with a failing fsync: %v", err)
	}
	if st := q.Stats(); st.Head != 3 || st.Bytes != segBytesOnDisk(t, dir) {
		t.Fatalf("after the failed append: %+v, %d bytes on disk", st, segBytesOnDisk(t, dir))
	}
	if n := len(segFiles(t, dir)); n != segsBefore {
		t.Fatalf("%d segment files after rollback, had %d", n, segsBefore)
	}
	if calls != 2 {
		t.Fatalf("%d fsyncs in the failed append, want 2 (one each side of the rotation)", calls)
	}
	if !strings.Contains(logs.String(), "disk on fire") {
		t.Fatalf("failure not logged: %s", logs.String())
	}
	fail.Lock()
	failing = false
	fail.Unlock()
	appendRange(t, q, 3, 6)
	r, _ := q.Reader("a")
	checkRecords(t, readN(t, r, 6, 10), 1)
	q.Close()
	q = openQueue(t, Config{Dir: dir, SegmentBytes: 2048, MaxBytes: 1 << 20}, "a")
	r, _ = q.Reader("a")
	checkRecords(t, readN(t, r, 6, 10), 1)
}

func segBytesOnDisk(t testing.TB, dir string) int64 {
	var n int64
	for _, p := range segFiles(t, dir) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// An Append whose ctx ends while it waits behind a slow fsync returns at
// once, and if the writer had not taken it, it is never written.
func TestAppendHonoursContext(t *testing.T) {
	q := openQueue(t, Config{Dir: t.TempDir()}, "a")
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before the queue's Close, even if the test fails
	entered := make(chan struct{})
	var once sync.Once
	q.testHookSync = func() error {
		once.Do(func() {
			close(entered)
			<-release
		})
		return nil
	}
	first := make(chan error, 1)
	go func() {
		_, err := q.Append(context.Background(), [][]byte{rec(0)})
		first <- err
	}()
	<-entered // the writer is inside the first fsync
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() {
		_, err := q.Append(ctx, [][]byte{rec(1)})
		second <- err
	}()
	eventually(t, "the second append to queue up", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return len(q.pending) == 1
	})
	cancel()
	if err := <-second; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled append: %v", err)
	}
	unblock()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	q.mu.Lock()
	reserved, pending := q.reserved, len(q.pending)
	q.mu.Unlock()
	if reserved != 0 || pending != 0 {
		t.Fatalf("after cancel: %d bytes reserved, %d pending", reserved, pending)
	}
	last, err := q.Append(context.Background(), [][]byte{rec(1)})
	if err != nil || last != 2 {
		t.Fatalf("append after cancel: %d, %v (the cancelled one must not have been written)", last, err)
	}
}

func TestCloseFlushesAndRefuses(t *testing.T) {
	baseline := runtime.NumGoroutine()
	dir := t.TempDir()
	q, err := Open(Config{Dir: dir}, []string{"a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok []uint64
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last, err := q.Append(context.Background(), [][]byte{rec(i)})
			switch {
			case err == nil:
				mu.Lock()
				ok = append(ok, last)
				mu.Unlock()
			case !errors.Is(err, ErrClosed):
				t.Error(err)
			}
		}()
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := q.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := q.Append(context.Background(), [][]byte{rec(0)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	r, _ := q.Reader("a")
	if err := r.Ack(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ack after Close: %v", err)
	}
	checkNoLeak(t, baseline)

	// Every append that returned nil was written.
	q = openQueue(t, Config{Dir: dir}, "a")
	if got := q.Stats().Head; got != uint64(len(ok)) {
		t.Fatalf("head %d after reopen, %d appends succeeded", got, len(ok))
	}
}

func TestStatsOldestPending(t *testing.T) {
	q := openQueue(t, Config{Dir: t.TempDir()}, "a", "b")
	appendRange(t, q, 0, 3)
	appendRange(t, q, 3, 6)
	ra, _ := q.Reader("a")
	recs := readN(t, ra, 6, 10)
	st := q.Stats()
	if !st.Consumers["a"].OldestPending.Equal(recs[0].Time) || st.Consumers["a"].Pending != 6 {
		t.Fatalf("stats %+v, first record at %v", st.Consumers["a"], recs[0].Time)
	}
	if err := ra.Ack(4); err != nil {
		t.Fatal(err)
	}
	st = q.Stats()
	if a := st.Consumers["a"]; !a.OldestPending.Equal(recs[4].Time) || a.Pending != 2 || a.Acked != 4 {
		t.Fatalf("a: %+v, record 5 at %v", a, recs[4].Time)
	}
	if st.Records != 6 || st.Head != 6 || st.MaxBytes != 1<<30 || st.Bytes != segBytesOnDisk(t, q.dir) {
		t.Fatalf("stats %+v", st)
	}
	if err := ra.Ack(6); err != nil {
		t.Fatal(err)
	}
	if a := q.Stats().Consumers["a"]; !a.OldestPending.IsZero() || a.Pending != 0 {
		t.Fatalf("a after acking everything: %+v", a)
	}
}

// A cursor ahead of the log (fsync off and a power loss) must not make
// new records look acknowledged. The numbers skipped become a hole, not
// damage, and do not count as pending.
func TestCursorAheadOfLog(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, Config{Dir: dir}, "a")
	appendRange(t, q, 0, 5)
	q.Close()
	if err := writeCursor(filepath.Join(dir, cursorFile("a")), 9, nil, true); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, Config{Dir: dir}, "a", "b")
	if st := q.Stats(); st.Head != 9 || st.Consumers["b"].Pending != 5 || st.Damaged != 0 {
		t.Fatalf("stats %+v", st)
	}
	last, err := q.Append(context.Background(), [][]byte{rec(0)})
	if err != nil || last != 10 {
		t.Fatalf("append: %d, %v; want record 10", last, err)
	}
	ra, _ := q.Reader("a")
	if got := readN(t, ra, 1, 10)[0].Seq; got != 10 {
		t.Fatalf("a reads %d, want 10", got)
	}
	rb, _ := q.Reader("b")
	got := readN(t, rb, 6, 10)
	if got[4].Seq != 5 || got[5].Seq != 10 {
		t.Fatalf("b reads %d then %d across the gap", got[4].Seq, got[5].Seq)
	}
}

func TestCursorFileNames(t *testing.T) {
	tests := map[string]string{
		"siem":          "siem.cursor",
		"kafka-prod_1":  "kafka-prod_1.cursor",
		"../etc/passwd": "%2E%2E%2Fetc%2Fpasswd.cursor",
		"a.b":           "a%2Eb.cursor",
		"a%2Eb":         "a%252Eb.cursor",
	}
	for name, want := range tests {
		if got := cursorFile(name); got != want {
			t.Errorf("cursorFile(%q) = %q, want %q", name, got, want)
		}
	}
	// A corrupt cursor file restarts its consumer at the oldest record.
	dir := t.TempDir()
	q := openQueue(t, Config{Dir: dir}, "a")
	appendRange(t, q, 0, 3)
	r, _ := q.Reader("a")
	if err := r.Ack(2); err != nil {
		t.Fatal(err)
	}
	q.Close()
	if err := os.WriteFile(filepath.Join(dir, cursorFile("a")), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, Config{Dir: dir}, "a")
	r, _ = q.Reader("a")
	checkRecords(t, readN(t, r, 3, 10), 1)
}

// TestAppendFunc: records encoded straight into the frames read back as
// Append's do, whatever the size hint, and a group over the queue's size
// is refused whole.
func TestAppendFunc(t *testing.T) {
	q := openQueue(t, Config{Dir: t.TempDir(), MaxBytes: 1 << 20}, "out")
	ctx := context.Background()
	next := 1
	for _, hint := range []int{0, 1, 10_000} {
		for _, n := range []int{1, 3, 7} {
			first := next
			if _, err := q.AppendFunc(ctx, n, hint, func(dst []byte, i int) []byte { return append(dst, rec(first+i-1)...) }); err != nil {
				t.Fatal(err)
			}
			next += n
		}
	}
	rd, err := q.Reader("out")
	if err != nil {
		t.Fatal(err)
	}
	checkRecords(t, readN(t, rd, next-1, 100), 1)
	big := make([]byte, 1<<19)
	if _, err := q.AppendFunc(ctx, 3, 0, func(dst []byte, i int) []byte { return append(dst, big...) }); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("3 x 512 KiB into a 1 MiB queue: %v, want ErrTooLarge", err)
	}
	if _, err := q.Append(ctx, [][]byte{rec(next)}); err != nil {
		t.Fatalf("append after a refused group: %v", err)
	}
}
