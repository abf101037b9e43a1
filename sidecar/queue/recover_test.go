package queue

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// writeSegmentDir makes a queue directory holding one segment file.
func writeSegmentDir(t testing.TB, first uint64, data []byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, segName(first)), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// recoverAndCheck opens dir, expects exactly records 1..n as rec made
// them, and checks that appending continues at n+1.
func recoverAndCheck(t *testing.T, dir string, n int) string {
	t.Helper()
	var logs logBuffer
	q, err := Open(Config{Dir: dir, Fsync: boolp(false)}, []string{"a"}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if h := q.Stats().Head; h != uint64(n) {
		t.Fatalf("head %d after recovery, want %d\n%s", h, n, logs.String())
	}
	r, _ := q.Reader("a")
	checkRecords(t, readN(t, r, n, 100), 1)
	last, err := q.Append(context.Background(), [][]byte{rec(n)})
	if err != nil || last != uint64(n+1) {
		t.Fatalf("append after recovery: %d, %v", last, err)
	}
	checkRecords(t, readN(t, r, 1, 1), n+1)
	return logs.String()
}

// Cut the last record at every byte, and flip every byte of it: recovery
// keeps the records before it, drops it, says so, and appends go on.
func TestRecoverTornTail(t *testing.T) {
	src := t.TempDir()
	q := openQueue(t, Config{Dir: src}, "a")
	appendRange(t, q, 0, 5)
	q.Close()
	orig, err := os.ReadFile(filepath.Join(src, segName(1)))
	if err != nil {
		t.Fatal(err)
	}
	start := len(orig) - frameHeaderSize - len(rec(4))

	t.Run("intact", func(t *testing.T) {
		if logs := recoverAndCheck(t, writeSegmentDir(t, 1, orig), 5); strings.Contains(logs, "cutting") {
			t.Fatalf("intact segment cut: %s", logs)
		}
	})
	for cut := start; cut < len(orig); cut++ {
		t.Run(fmt.Sprintf("cut at %d", cut), func(t *testing.T) {
			dir := writeSegmentDir(t, 1, orig[:cut])
			logs := recoverAndCheck(t, dir, 4)
			if cut > start && !strings.Contains(logs, "cutting") {
				t.Fatalf("cut not logged: %s", logs)
			}
		})
	}
	for i := start; i < len(orig); i++ {
		t.Run(fmt.Sprintf("flip byte %d", i), func(t *testing.T) {
			data := bytes.Clone(orig)
			data[i] ^= 0x20
			dir := writeSegmentDir(t, 1, data)
			if logs := recoverAndCheck(t, dir, 4); !strings.Contains(logs, "cutting") {
				t.Fatalf("corruption not logged: %s", logs)
			}
		})
	}
	for cut := range segHeaderSize {
		t.Run(fmt.Sprintf("header cut at %d", cut), func(t *testing.T) {
			recoverAndCheck(t, writeSegmentDir(t, 1, orig[:cut]), 0)
		})
	}
}

// Damage inside a closed segment costs the damaged record only: the
// records after it in the segment are recovered, the loss is logged as an
// error and reported in Stats, and readers skip the hole.
func TestRecoverCorruptClosedSegment(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 1024, MaxBytes: 1 << 20}
	q := openQueue(t, cfg, "a")
	appendRange(t, q, 0, 60)
	q.Close()
	segs := segFiles(t, dir)
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	second := segs[1]
	first, _ := parseSegName(filepath.Base(second))
	data, err := os.ReadFile(second)
	if err != nil {
		t.Fatal(err)
	}
	// Damage the second record of the second segment.
	off := segHeaderSize + frameHeaderSize + len(rec(int(first-1))) + frameHeaderSize
	data[off] ^= 1
	if err := os.WriteFile(second, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	q, err = Open(cfg, []string{"a"}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if !hasLogLine(logs.String(), "ERROR", msgLost) {
		t.Fatalf("damage to a closed segment not logged as an error: %s", logs.String())
	}
	st := q.Stats()
	if st.Damaged != 1 || len(st.Damage) != 1 || st.Damage[0].First != first+1 || st.Damage[0].Last != first+1 || st.Damage[0].Segment != second {
		t.Fatalf("damage %d %+v, want record %d of %s", st.Damaged, st.Damage, first+1, second)
	}
	r, _ := q.Reader("a")
	recs := readN(t, r, 59, 100)
	checkRecords(t, recs[:first], 1)
	checkRecords(t, recs[first:], int(first+2))
}

const crashDirEnv = "AUDITPIPE_QUEUE_CRASH_DIR"

// A child process appends from 16 goroutines and prints each record it
// was told is durable; it is killed with SIGKILL mid-stream, three times
// over. Every printed record must be in the queue after each restart.
func TestCrashKill(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(dir, os.Getenv("AUDITPIPE_QUEUE_CRASH_ROUND"))
		return
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	acked := map[string]uint64{}
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKill$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, "AUDITPIPE_QUEUE_CRASH_ROUND="+strconv.Itoa(round))
		var stderr logBuffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill() })
		sc := bufio.NewScanner(out)
		lines, killed := 0, false
		for sc.Scan() {
			var seq uint64
			var id string
			if _, err := fmt.Sscanf(sc.Text(), "ok %d %s", &seq, &id); err != nil {
				t.Fatalf("child said %q", sc.Text())
			}
			acked[id] = seq
			if lines++; lines == 2000 {
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		}
		err = cmd.Wait()
		if !killed {
			t.Fatalf("child exited after %d records: %v\n%s", lines, err, stderr.String())
		}

		q, err := Open(Config{Dir: dir, SegmentBytes: 64 << 10}, []string{"check"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		head := q.Stats().Head
		r, _ := q.Reader("check")
		got := map[string]uint64{}
		for _, rc := range readN(t, r, int(head), 1000) {
			got[string(rc.Data)] = rc.Seq
		}
		q.Close()
		for id, seq := range acked {
			if got[id] != seq {
				t.Fatalf("round %d: %q acknowledged as record %d, after restart found at %d (head %d)", round, id, seq, got[id], head)
			}
		}
		t.Logf("round %d: %d acknowledged before the kill, %d in the queue after restart", round, lines, head)
	}
}

func crashChild(dir, round string) {
	q, err := Open(Config{Dir: dir, SegmentBytes: 64 << 10}, []string{"check"}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	for g := range 16 {
		go func() {
			for i := 0; ; i++ {
				n := 1 + i%3
				group := make([][]byte, n)
				for j := range group {
					group[j] = fmt.Appendf(nil, "r%s-g%d-i%d-j%d-%s", round, g, i, j, strings.Repeat("x", i%40))
				}
				last, err := q.Append(context.Background(), group)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				var b []byte
				for j, rec := range group {
					b = fmt.Appendf(b, "ok %d %s\n", last-uint64(n-1-j), rec)
				}
				mu.Lock()
				os.Stdout.Write(b) // one write: a kill cannot split a line
				mu.Unlock()
			}
		}()
	}
	// The parent kills us long before this; it only stops an orphan.
	<-time.After(time.Minute)
	os.Exit(3)
}

// fuzzDir builds a queue directory from layout: 1 to 4 segments of 1 to
// 6 records each, rec(seq-1) as record seq. It returns each segment's
// path and bytes and each record's segment and frame.
type fuzzRecord struct {
	seg      int
	off, end int
}

func fuzzDir(t *testing.T, layout []byte) (string, []string, [][]byte, []fuzzRecord) {
	dir := t.TempDir()
	nseg := 1
	if len(layout) > 0 {
		nseg = 1 + int(layout[0])%4
	}
	var paths []string
	var files [][]byte
	var recs []fuzzRecord
	seq := uint64(1)
	for i := range nseg {
		n := 1 + i%3
		if len(layout) > 1+i {
			n = 1 + int(layout[1+i])%6
		}
		b := appendSegHeader(nil, seq)
		for range n {
			off := len(b)
			b = appendFrame(b, seq, int64(seq)*1e9, rec(int(seq-1)))
			recs = append(recs, fuzzRecord{seg: i, off: off, end: len(b)})
			seq++
		}
		paths = append(paths, filepath.Join(dir, segName(seq-uint64(n))))
		files = append(files, b)
	}
	return dir, paths, files, recs
}

// FuzzRecover: a directory of several segments of known records, damaged
// as damage says (4 bytes an operation: kind, segment, position and a
// length or value; flipped bytes, zeroed or overwritten runs, cuts,
// damaged segment headers, deleted files, in closed segments and the
// last one). Recovery must never panic or fail, must deliver every record
// whose frame is intact and wholly present, once and in order, and must
// account exactly for the others: each is in a Damage range, or is in
// the last segment after the last record delivered (a torn end, never
// acknowledged). Afterwards every segment verifies, so that the next
// Open finds nothing new (TestRecoverFaults opens twice).
func FuzzRecover(f *testing.F) {
	f.Add([]byte{3, 3, 4, 5}, []byte{})
	f.Add([]byte{3, 3, 4, 5}, []byte{0, 1, 0, 60})              // a byte of a closed segment's record
	f.Add([]byte{3, 3, 4, 5}, []byte{1, 1, 0, 40, 1, 3, 0, 90}) // zeroed runs, closed and last
	f.Add([]byte{3, 3, 4, 5}, []byte{2, 3, 0, 150})             // the last segment cut
	f.Add([]byte{3, 3, 4, 5}, []byte{2, 1, 0, 150})             // a closed segment cut
	f.Add([]byte{3, 3, 4, 5}, []byte{3, 1, 0, 9, 3, 3, 0, 2})   // segment headers
	f.Add([]byte{3, 3, 4, 5}, []byte{5, 2, 0, 0})               // a closed segment deleted
	f.Add([]byte{1, 6, 6}, []byte{4, 0, 0, 20, 4, 1, 1, 3})     // length fields overwritten
	f.Fuzz(fuzzRecover)
}

func fuzzRecover(t *testing.T, layout, damage []byte) {
	dir, paths, files, recs := fuzzDir(t, layout)
	orig := make([][]byte, len(files))
	for i, b := range files {
		orig[i] = bytes.Clone(b)
	}
	gone := make([]bool, len(files))
	for ; len(damage) >= 4; damage = damage[4:] {
		kind, i := damage[0]%6, int(damage[1])%len(files)
		b := files[i]
		pos := (int(damage[2])<<8 | int(damage[3])) % (len(b) + 1)
		switch kind {
		case 0: // flip one byte
			if pos < len(b) {
				b[pos] ^= 1 << (damage[3] % 8)
			}
		case 1: // zero a run
			clear(b[pos:min(len(b), pos+1+int(damage[3])%64)])
		case 2: // cut
			files[i] = b[:pos]
		case 3: // a segment header byte
			if h := int(damage[3]) % segHeaderSize; h < len(b) {
				b[h] ^= 0x41
			}
		case 4: // overwrite a run with bytes of the operation
			for j := pos; j < min(len(b), pos+4); j++ {
				b[j] = damage[2] ^ byte(j)
			}
		case 5:
			gone[i] = true
		}
	}
	// Leading files deleted look like segments every consumer had
	// acknowledged; trailing ones like a torn end.
	firstFile, lastFile := -1, -1
	for i, b := range files {
		if gone[i] {
			continue
		}
		if firstFile < 0 {
			firstFile = i
		}
		lastFile = i
		if err := os.WriteFile(paths[i], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	intact := func(r fuzzRecord) bool {
		b := files[r.seg]
		return !gone[r.seg] && r.end <= len(b) && bytes.Equal(b[r.off:r.end], orig[r.seg][r.off:r.end])
	}

	cfg := Config{Dir: dir, Fsync: boolp(false), SegmentBytes: 1024, MaxBytes: 1 << 20}
	q, err := Open(cfg, []string{"a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	st := q.Stats()
	got := fuzzReadAll(t, q, "a")
	delivered := map[uint64]bool{}
	var maxDelivered uint64
	for i, rc := range got {
		if rc.Seq < 1 || rc.Seq > uint64(len(recs)) || !bytes.Equal(rc.Data, rec(int(rc.Seq-1))) {
			t.Fatalf("delivered record %d: %q, not one of the %d written", rc.Seq, rc.Data, len(recs))
		}
		if i > 0 && rc.Seq <= got[i-1].Seq {
			t.Fatalf("record %d delivered after %d", rc.Seq, got[i-1].Seq)
		}
		delivered[rc.Seq] = true
		maxDelivered = rc.Seq
	}
	damaged := map[uint64]bool{}
	var sum uint64
	for i, d := range st.Damage {
		if d.First > d.Last || d.First < 1 || d.Last > uint64(len(recs)) || (i > 0 && d.First <= st.Damage[i-1].Last) {
			t.Fatalf("damage ranges %+v for %d records", st.Damage, len(recs))
		}
		if _, err := os.Stat(d.Evidence); err != nil && d.Evidence != "" { // "": the file was empty
			t.Fatalf("evidence of %+v: %v", d, err)
		}
		for s := d.First; s <= d.Last; s++ {
			damaged[s] = true
		}
		sum += d.Last - d.First + 1
	}
	if sum != st.Damaged {
		t.Fatalf("Damaged %d, ranges %+v", st.Damaged, st.Damage)
	}
	for i, r := range recs {
		seq := uint64(i + 1)
		switch {
		case delivered[seq] && damaged[seq]:
			t.Fatalf("record %d both delivered and counted damaged", seq)
		case intact(r) && !delivered[seq]:
			t.Fatalf("intact record %d (segment %d, bytes %d-%d) not delivered; delivered %d, damage %+v", seq, r.seg, r.off, r.end, len(got), st.Damage)
		case !delivered[seq] && !damaged[seq] && r.seg >= firstFile && (r.seg < lastFile || seq < maxDelivered):
			t.Fatalf("record %d (segment %d, last file %d) neither delivered nor counted damaged; damage %+v", seq, r.seg, lastFile, st.Damage)
		}
	}
	if st.Head < maxDelivered || st.Head > uint64(len(recs)) {
		t.Fatalf("head %d; %d records written, %d the last delivered", st.Head, len(recs), maxDelivered)
	}
	last, err := q.Append(context.Background(), [][]byte{rec(int(st.Head))})
	if err != nil || last != st.Head+1 {
		t.Fatalf("append after recovery: %d, %v", last, err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	// What the next Open would do, without one: every segment file now
	// verifies.
	segs := segFiles(t, dir)
	for i, p := range segs {
		first, _ := parseSegName(filepath.Base(p))
		maxSeq := ^uint64(0)
		if i+1 < len(segs) {
			next, _ := parseSegName(filepath.Base(segs[i+1]))
			maxSeq = next - 1
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := scanSegment(bytes.NewReader(b), int64(len(b)), first, maxSeq, i == len(segs)-1)
		if err != nil || !sc.clean() {
			t.Fatalf("%s after recovery: %+v, %v", p, sc, err)
		}
	}
}

// fuzzReadAll reads everything consumer name has pending; Pending leaves
// out holes, so it is exactly what is deliverable.
func fuzzReadAll(t *testing.T, q *Queue, name string) []Record {
	t.Helper()
	r, _ := q.Reader(name)
	n := q.Stats().Consumers[name].Pending
	if n == 0 {
		return nil
	}
	got := readN(t, r, int(n), 100)
	// Nothing more to read: past the last record there are only holes.
	r.mu.Lock()
	pos := r.pos
	r.mu.Unlock()
	if head := q.Stats().Head; pos <= head && !allHoles(q, pos, head) {
		t.Fatalf("read %d records up to %d; head %d", n, pos-1, head)
	}
	return got
}

// allHoles reports whether holes cover from..to.
func allHoles(q *Queue, from, to uint64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, h := range q.holes {
		if h.first <= from && from <= h.last {
			from = h.last + 1
		}
	}
	return from > to
}
