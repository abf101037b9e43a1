package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAddReaderStartsAfterTheHead(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 1024, MaxBytes: 1 << 20}
	q := openQueue(t, cfg, "a")
	appendRange(t, q, 0, 50)
	if _, err := q.AddReader("a"); err == nil {
		t.Fatal("AddReader of an existing consumer succeeded")
	}
	nb, err := q.AddReader("b")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := q.Reader("b"); got != nb {
		t.Fatal("Reader does not return the added reader")
	}
	if st := q.Stats().Consumers["b"]; st.Acked != 50 || st.Pending != 0 {
		t.Fatalf("new consumer %+v, want acked 50, nothing pending", st)
	}
	// Nothing of the backlog: Next with no wait returns nothing yet.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	if recs, err := nb.Next(ctx, 10, 0, 0); len(recs) != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("new consumer read %d records (%v) before any append", len(recs), err)
	}
	cancel()
	appendRange(t, q, 50, 60)
	checkRecords(t, readN(t, nb, 10, 4), 51)
	if err := nb.Ack(55); err != nil {
		t.Fatal(err)
	}
	// The cursor was written at once: a restart resumes the consumer.
	q.Close()
	q = openQueue(t, cfg, "a", "b")
	rb, _ := q.Reader("b")
	checkRecords(t, readN(t, rb, 5, 5), 56)
	ra, _ := q.Reader("a")
	checkRecords(t, readN(t, ra, 60, 25), 1)
}

func TestRemoveReaderFreesItsSegments(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, Config{Dir: dir, SegmentBytes: 1024, MaxBytes: 1 << 20}, "a", "slow")
	appendRange(t, q, 0, 200)
	ra, _ := q.Reader("a")
	rs, _ := q.Reader("slow")
	readN(t, rs, 10, 10) // holds a segment reference
	if err := ra.Ack(200); err != nil {
		t.Fatal(err)
	}
	if n := len(segFiles(t, dir)); n < 5 {
		t.Fatalf("%d segments held by the slow consumer, want several", n)
	}
	cursor := filepath.Join(dir, cursorFile("slow"))
	if _, err := os.Stat(cursor); err != nil {
		t.Fatal(err)
	}
	if err := q.RemoveReader("slow"); err != nil {
		t.Fatal(err)
	}
	if n := len(segFiles(t, dir)); n != 1 {
		t.Fatalf("%d segments after removing the only consumer behind, want the current one", n)
	}
	if _, err := os.Stat(cursor); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("cursor of the removed consumer: %v", err)
	}
	st := q.Stats()
	if _, ok := st.Consumers["slow"]; ok || st.Records != 0 || st.Segments != 1 {
		t.Fatalf("stats after removal: %+v", st)
	}
	if err := rs.Ack(20); !errors.Is(err, ErrRemoved) {
		t.Fatalf("Ack of a removed reader: %v", err)
	}
	appendRange(t, q, 200, 201)
	if _, err := rs.Next(context.Background(), 1, 0, 0); !errors.Is(err, ErrRemoved) {
		t.Fatalf("Next of a removed reader: %v", err)
	}
	if err := q.RemoveReader("slow"); err == nil {
		t.Fatal("removing a consumer twice succeeded")
	}
	// Added again under the same name, it starts afresh after the head.
	rs2, err := q.AddReader("slow")
	if err != nil {
		t.Fatal(err)
	}
	appendRange(t, q, 201, 203)
	checkRecords(t, readN(t, rs2, 2, 2), 202)
}

// TestReadersComeAndGoUnderLoad adds and removes consumers while appenders
// write, a steady consumer reads and acks everything, and Stats is read:
// the steady consumer sees every record once, in order; each added
// consumer sees a contiguous run that starts after the head at its
// addition; segments are freed as they are done with. Run with -race.
func TestReadersComeAndGoUnderLoad(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, Config{Dir: dir, SegmentBytes: 2048, MaxBytes: 8 << 20, Fsync: boolp(false)}, "steady")
	const writers, perWriter = 4, 500
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var writing atomic.Int32
	writing.Store(writers)
	// A churning reader that has caught up waits in Next for more
	// records; once the writers are done none come, so the last writer
	// ends that wait.
	churnCtx, stopChurn := context.WithCancel(ctx)
	defer stopChurn()
	for w := range writers {
		wg.Go(func() {
			defer func() {
				if writing.Add(-1) == 0 {
					stopChurn()
				}
			}()
			for i := range perWriter {
				if _, err := q.Append(ctx, [][]byte{fmt.Appendf(nil, "w%d-%d", w, i)}); err != nil {
					t.Errorf("append: %v", err)
					return
				}
			}
		})
	}
	const total = writers * perWriter
	wg.Go(func() { // the steady consumer
		rd, _ := q.Reader("steady")
		next := uint64(1)
		for next <= total {
			recs, err := rd.Next(ctx, 37, 0, time.Millisecond)
			if err != nil {
				t.Errorf("steady: %v", err)
				return
			}
			for _, r := range recs {
				if r.Seq != next {
					t.Errorf("steady: record %d, want %d", r.Seq, next)
					return
				}
				next++
			}
			if err := rd.Ack(recs[len(recs)-1].Seq); err != nil {
				t.Errorf("steady: ack: %v", err)
				return
			}
		}
	})
	wg.Go(func() { // consumers that come and go
		for i := 0; writing.Load() > 0; i++ {
			name := fmt.Sprintf("c%d", i%3)
			rd, err := q.AddReader(name)
			if err != nil {
				t.Errorf("add %s: %v", name, err)
				return
			}
			start := q.Stats().Consumers[name].Acked
			recs, err := rd.Next(churnCtx, 50, 0, time.Millisecond)
			if errors.Is(err, context.Canceled) && ctx.Err() == nil { // the writers are done
				if err := q.RemoveReader(name); err != nil {
					t.Errorf("remove %s: %v", name, err)
				}
				return
			}
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			for j, r := range recs {
				if r.Seq != start+1+uint64(j) {
					t.Errorf("%s: record %d at %d, want %d", name, r.Seq, j, start+1+uint64(j))
					return
				}
			}
			if i%2 == 0 {
				if err := rd.Ack(recs[len(recs)-1].Seq); err != nil {
					t.Errorf("%s: ack: %v", name, err)
					return
				}
			}
			if err := q.RemoveReader(name); err != nil {
				t.Errorf("remove %s: %v", name, err)
				return
			}
		}
	})
	wg.Go(func() {
		for writing.Load() > 0 {
			q.Stats()
		}
	})
	wg.Wait()
	if t.Failed() {
		return
	}
	if got := q.Consumers(); len(got) != 1 || got[0] != "steady" {
		t.Fatalf("consumers %v", got)
	}
	eventually(t, "segments freed", func() bool { return len(segFiles(t, dir)) == 1 })
	left, _ := filepath.Glob(filepath.Join(dir, "*"+cursorSuffix))
	if len(left) != 1 {
		t.Fatalf("cursor files %v, want only steady's", left)
	}
}
