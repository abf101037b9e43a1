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

// Damage inside a closed segment: its later records are lost (and logged
// as an error), the segments after it are kept, and readers skip the gap.
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
	third, _ := parseSegName(filepath.Base(segs[2]))
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
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Fatalf("damage to a closed segment not logged as an error: %s", logs.String())
	}
	r, _ := q.Reader("a")
	want := int(first) + int(60-third+1) // records before the damage, then the third segment on
	recs := readN(t, r, want, 100)
	checkRecords(t, recs[:first], 1)
	checkRecords(t, recs[first:], int(third))
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

// Arbitrary bytes as a segment file: Open never panics, the records it
// recovers, encoded again, are exactly the start of the file (a prefix of
// valid records), the file is cut to them, and appends continue.
func FuzzRecover(f *testing.F) {
	valid := appendSegHeader(nil, 1)
	for i := 1; i <= 3; i++ {
		valid = appendFrame(valid, uint64(i), int64(i)*1e9, rec(i))
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add(valid[:segHeaderSize+frameHeaderSize-1])
	f.Add(valid[:7])
	f.Add([]byte{})
	flipped := bytes.Clone(valid)
	flipped[segHeaderSize+frameHeaderSize+5] ^= 1
	f.Add(flipped)
	f.Add(appendFrame(appendSegHeader(nil, 1), 2, 0, []byte("wrong seq")))
	f.Add(append(bytes.Clone(valid), make([]byte, 100)...)) // zeros after a crash
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := writeSegmentDir(t, 1, data)
		q, err := Open(Config{Dir: dir, Fsync: boolp(false)}, []string{"a"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		head := q.Stats().Head
		r, _ := q.Reader("a")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var recs []Record
		for uint64(len(recs)) < head {
			got, err := r.Next(ctx, 100, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, got...)
		}
		want := appendSegHeader(nil, 1)
		for _, rc := range recs {
			want = appendFrame(want, rc.Seq, rc.Time.UnixNano(), rc.Data)
		}
		if len(recs) > 0 && !bytes.HasPrefix(data, want) {
			t.Fatalf("recovered %d records that are not the file's prefix", len(recs))
		}
		onDisk, err := os.ReadFile(filepath.Join(dir, segName(1)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(onDisk, want) {
			t.Fatalf("segment is %d bytes after recovery, want the %d of its valid records", len(onDisk), len(want))
		}
		last, err := q.Append(ctx, [][]byte{[]byte("after")})
		if err != nil || last != head+1 {
			t.Fatalf("append after recovery: %d, %v", last, err)
		}
	})
}
