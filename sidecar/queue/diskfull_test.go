package queue

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/auditpipe/auditpipe/testenv/tmpfs"
)

// fillDisk appends 1 KB records until the disk is full and checks how
// the failure looks to the caller and in Stats. It returns the last
// record appended.
func fillDisk(t *testing.T, q *Queue) uint64 {
	t.Helper()
	var last uint64
	for i := 0; ; i++ {
		l, err := q.Append(context.Background(), one)
		if err == nil {
			last = l
			continue
		}
		if !errors.Is(err, ErrFull) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("append %d on a full disk: %v, want ErrFull and ENOSPC", i, err)
		}
		if i < 100 {
			t.Fatalf("disk full after %d appends", i)
		}
		break
	}
	st := q.Stats()
	if !errors.Is(st.AppendErr, ErrFull) || !errors.Is(st.AppendErr, syscall.ENOSPC) || st.AppendErrAt.IsZero() || st.Head != last {
		t.Fatalf("stats on a full disk: AppendErr %v at %v, head %d, last appended %d", st.AppendErr, st.AppendErrAt, st.Head, last)
	}
	return last
}

// one is the record that fills the disk; a smaller one could still fit
// in the last page.
var one = [][]byte{bytes.Repeat([]byte("f"), 1000)}

// drain reads and acknowledges everything consumer name has.
func drain(t *testing.T, q *Queue, name string) {
	t.Helper()
	r, _ := q.Reader(name)
	st := q.Stats()
	if n := st.Consumers[name].Pending; n > 0 {
		recs := readN(t, r, int(n), 500)
		if err := r.Ack(recs[len(recs)-1].Seq); err != nil {
			t.Fatalf("%s acks on a full disk: %v", name, err)
		}
	}
}

// A 2 MiB disk under the default 64 MiB segment: the one open segment
// fills it. Appends fail with ErrFull (and ENOSPC), which the sidecar
// answers with 503 and Retry-After, and Stats says why; acks still work;
// once every consumer has acknowledged everything the very next append
// succeeds, without a restart; and the queue reopens on the full disk.
func TestDiskFull(t *testing.T) {
	vol := tmpfs.Mount(t, "2m")
	dir := filepath.Join(vol, "queue")
	cfg := Config{Dir: dir} // default segment_bytes (64 MiB) and max_bytes (1 GiB)
	var logs logBuffer
	q, err := Open(cfg, []string{"a", "b"}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })

	last := fillDisk(t, q)
	// Not a byte left, so that acks cannot write a new cursor file.
	fillRest(t, filepath.Join(vol, "filler"))
	drain(t, q, "a")
	// b has not acknowledged: still full.
	if _, err := q.Append(context.Background(), one); !errors.Is(err, ErrFull) {
		t.Fatalf("append with b behind: %v", err)
	}
	drain(t, q, "b")
	next, err := q.Append(context.Background(), one)
	if err != nil || next != last+1 {
		t.Fatalf("append once everything was acknowledged: %d, %v; want %d", next, err, last+1)
	}
	if st := q.Stats(); st.AppendErr != nil || st.Segments != 1 || st.Bytes > 4096 {
		t.Fatalf("stats after the disk was reclaimed: %+v", st)
	}
	if !hasLogLine(logs.String(), "INFO", "queue: disk full; emptied the fully acknowledged segment to make room") {
		t.Fatalf("reclaim not logged:\n%s", logs.String())
	}
	ra, _ := q.Reader("a")
	if got := readN(t, ra, 1, 10); got[0].Seq != next || !bytes.Equal(got[0].Data, one[0]) {
		t.Fatalf("a reads %d %q after the reclaim", got[0].Seq, got[0].Data)
	}

	// Full again, then closed and reopened on the full disk: recovery
	// needs no space, and nothing acknowledged is lost.
	last = fillDisk(t, q)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q, err = Open(cfg, []string{"a", "b"}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("open on a full disk: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	if st := q.Stats(); st.Head != last || st.Consumers["b"].Pending != last-next+1 {
		t.Fatalf("after reopening on a full disk: %+v; want head %d", st, last)
	}
	rb, _ := q.Reader("b")
	checkSeqs(t, readN(t, rb, int(last-next+1), 500), next)
	if _, err := q.Append(context.Background(), one); !errors.Is(err, ErrFull) {
		t.Fatalf("append on the full disk after reopening: %v", err)
	}
	if err := rb.Ack(last); err != nil {
		t.Fatal(err)
	}
	drain(t, q, "a")
	if l, err := q.Append(context.Background(), one); err != nil || l != last+1 {
		t.Fatalf("append after draining, reopened: %d, %v; want %d", l, err, last+1)
	}
	if segs := segFiles(t, dir); len(segs) != 1 || filepath.Base(segs[0]) != segName(last+1) {
		t.Fatalf("segments %v, want only %s", segs, segName(last+1))
	}
}

// fillRest writes path until the disk has no space left.
func fillRest(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for n := 4096; n > 0; {
		if _, err := f.Write(make([]byte, n)); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			n /= 2
		}
	}
}

func checkSeqs(t *testing.T, recs []Record, first uint64) {
	t.Helper()
	for i, r := range recs {
		if r.Seq != first+uint64(i) {
			t.Fatalf("record %d is %d, want %d", i, r.Seq, first+uint64(i))
		}
	}
}

// The same path without root: the disk reports ENOSPC at fsync.
func TestNoSpaceAtFsync(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, Config{Dir: dir}, "a")
	appendRange(t, q, 0, 3)
	failures := 0
	q.testHookSync = func() error {
		if failures > 0 {
			failures--
			return &os.PathError{Op: "fdatasync", Path: "segment", Err: syscall.ENOSPC}
		}
		return nil
	}
	failures = 1
	_, err := q.Append(context.Background(), [][]byte{rec(3)})
	if !errors.Is(err, ErrFull) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append failing with ENOSPC: %v", err)
	}
	if st := q.Stats(); !errors.Is(st.AppendErr, syscall.ENOSPC) || st.Head != 3 {
		t.Fatalf("stats: %+v", st)
	}
	// Not everything acknowledged: nothing to reclaim.
	failures = 1
	if _, err := q.Append(context.Background(), [][]byte{rec(3)}); !errors.Is(err, ErrFull) {
		t.Fatalf("append with records pending: %v", err)
	}
	r, _ := q.Reader("a")
	checkRecords(t, readN(t, r, 3, 10), 1)
	if err := r.Ack(3); err != nil {
		t.Fatal(err)
	}
	// Everything acknowledged: the failed write is tried again in an
	// emptied segment, and succeeds.
	failures = 1
	last, err := q.Append(context.Background(), [][]byte{rec(3)})
	if err != nil || last != 4 {
		t.Fatalf("append after everything was acknowledged: %d, %v", last, err)
	}
	if st := q.Stats(); st.AppendErr != nil || st.Head != 4 {
		t.Fatalf("stats: %+v", st)
	}
	if segs := segFiles(t, dir); len(segs) != 1 || filepath.Base(segs[0]) != segName(4) {
		t.Fatalf("segments %v", segs)
	}
	checkRecords(t, readN(t, r, 1, 10), 4)
	q.Close()
	q = openQueue(t, Config{Dir: dir}, "a")
	r, _ = q.Reader("a")
	if st := q.Stats(); st.Head != 4 || st.Consumers["a"].Pending != 1 {
		t.Fatalf("after reopening: %+v", st)
	}
	checkRecords(t, readN(t, r, 1, 10), 4)
}

// A crash while reclaimTail empties and renames the segment leaves it
// empty behind the cursors, under its old name, with its old header or
// the new one. Recovery finishes the job: numbering continues after the
// cursors, and nothing is reported damaged.
func TestReclaimCrashWindows(t *testing.T) {
	for _, header := range []uint64{1, 6} {
		t.Run(segName(header), func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, segName(1)), appendSegHeader(nil, header), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, c := range []string{"a", "b"} {
				if err := writeCursor(filepath.Join(dir, cursorFile(c)), 5, nil, true); err != nil {
					t.Fatal(err)
				}
			}
			q := openQueue(t, Config{Dir: dir}, "a", "b")
			st := q.Stats()
			if st.Head != 5 || st.Damaged != 0 || st.Records != 0 || st.Segments != 1 {
				t.Fatalf("stats %+v", st)
			}
			if segs := segFiles(t, dir); len(segs) != 1 || filepath.Base(segs[0]) != segName(6) {
				t.Fatalf("segments %v", segs)
			}
			last, err := q.Append(context.Background(), [][]byte{rec(5)})
			if err != nil || last != 6 {
				t.Fatalf("append: %d, %v", last, err)
			}
			r, _ := q.Reader("b")
			checkRecords(t, readN(t, r, 1, 1), 6)
		})
	}
}
