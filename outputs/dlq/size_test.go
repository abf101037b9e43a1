package dlq_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/dlq"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
	"github.com/auditpipe/auditpipe/testenv/tmpfs"
)

// snapshot returns the contents of dir's files by name.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, f := range files(t, dir) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m[f] = string(b)
	}
	return m
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	for _, b := range snapshot(t, dir) {
		n += int64(len(b))
	}
	return n
}

// letterSize is how many bytes the store takes for letter(i, "es").
func letterSize(t *testing.T, i int) int64 {
	t.Helper()
	dir := t.TempDir()
	s, err := dlq.Open(dlq.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	deadLetter(t, s, i)
	s.Close()
	return dirSize(t, dir)
}

func TestDeadLetterMaxBytes(t *testing.T) {
	dir := t.TempDir()
	const max = 8 << 10
	s, err := dlq.Open(dlq.Config{Dir: dir, MaxBytes: max, MaxFileBytes: 2 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var written []string
	var full error
	for i := 0; full == nil; i++ {
		if i == 1000 {
			t.Fatal("max_bytes never reached")
		}
		before := snapshot(t, dir)
		if full = s.DeadLetter(context.Background(), []outputs.DeadLetter{letter(i, "es")}); full == nil {
			written = append(written, outputstest.Event(i).ID)
		} else if after := snapshot(t, dir); !maps.Equal(after, before) {
			t.Error("the refused letter changed the store's files")
		}
	}
	if !errors.Is(full, dlq.ErrFull) || errors.Is(full, syscall.ENOSPC) || !strings.Contains(full.Error(), "max_bytes") {
		t.Errorf("err = %v; want ErrFull naming max_bytes", full)
	}
	st := s.Stats()
	if !errors.Is(st.Err, dlq.ErrFull) || st.Letters != uint64(len(written)) || st.MaxBytes != max || st.Bytes != dirSize(t, dir) || st.Bytes > max {
		t.Errorf("stats %+v when full; %d letters written, %d bytes on disk", st, len(written), dirSize(t, dir))
	}

	// A replay frees the space (as another process would: the store is not
	// told), and the next letter finds it.
	r := &recorder{}
	if rep, err := dlq.Replay(context.Background(), dir, all, r); err != nil || rep.Delivered != len(written) {
		t.Fatalf("replay: %+v, %v", rep, err)
	}
	next := len(written) + 1
	deadLetter(t, s, next)
	st = s.Stats()
	if st.Err != nil || st.Letters != uint64(len(written)+1) || st.Bytes != dirSize(t, dir) {
		t.Errorf("stats %+v after a letter found room; %d bytes on disk", st, dirSize(t, dir))
	}
	if got := storedIDs(t, dir); !slices.Equal(got, ids(next)) {
		t.Errorf("stored %v", got)
	}
}

// The store counts the files earlier stores left, to the byte.
func TestOpenMeasuresEarlierFiles(t *testing.T) {
	n := letterSize(t, 9)
	for _, tc := range []struct {
		name string
		max  func(held int64) int64
		fits bool
	}{
		{"room for the letter", func(held int64) int64 { return held + n }, true},
		{"a byte short", func(held int64) int64 { return held + n - 1 }, false},
		{"no room", func(held int64) int64 { return held }, false},
		{"a letter larger than max_bytes", func(int64) int64 { return n - 1 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			earlier, err := dlq.Open(dlq.Config{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			deadLetter(t, earlier, 0, 1, 2)
			earlier.Close()
			held := dirSize(t, dir)
			max := tc.max(held)
			s, err := dlq.Open(dlq.Config{Dir: dir, MaxBytes: max})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if st := s.Stats(); st.Bytes != held || st.MaxBytes != max || st.Letters != 0 || st.Err != nil {
				t.Errorf("stats at Open %+v; %d bytes on disk", st, held)
			}
			err = s.DeadLetter(context.Background(), []outputs.DeadLetter{letter(9, "es")})
			if tc.fits != (err == nil) || err != nil && !errors.Is(err, dlq.ErrFull) {
				t.Errorf("err = %v; fits %v", err, tc.fits)
			}
		})
	}
}

func TestDeadLetterDiskFull(t *testing.T) {
	mnt := tmpfs.Mount(t, "1m")
	dir := filepath.Join(mnt, "dlq")
	s, err := dlq.Open(dlq.Config{Dir: dir, MaxFileBytes: 128 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	// The filler takes half the space, and is removed to free it.
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 512<<10), 0o600); err != nil {
		t.Fatal(err)
	}

	// Letters of uneven sizes, so that the one that meets the full disk
	// is cut off in the middle.
	pad := strings.Repeat("x", 3000)
	l := func(i int) outputs.DeadLetter {
		l := letter(i, "es")
		l.Error += pad[:i*397%len(pad)]
		return l
	}
	var written []string
	var full error
	for i := 0; full == nil; i++ {
		if i == 10000 {
			t.Fatal("the disk never filled")
		}
		if full = s.DeadLetter(context.Background(), []outputs.DeadLetter{l(i)}); full == nil {
			written = append(written, outputstest.Event(i).ID)
		}
	}
	if !errors.Is(full, dlq.ErrFull) || !errors.Is(full, syscall.ENOSPC) {
		t.Fatalf("err = %v; want ErrFull and ENOSPC", full)
	}
	if st := s.Stats(); !errors.Is(st.Err, syscall.ENOSPC) || st.Letters != uint64(len(written)) {
		t.Errorf("stats %+v; %d letters written", st, len(written))
	}
	// No letter is torn: every file ends with a whole line, every line is
	// a letter, and the letters are those DeadLetter said it wrote.
	for f, b := range snapshot(t, dir) {
		if b != "" && !strings.HasSuffix(b, "\n") {
			t.Errorf("%s ends with a torn line: ...%q", f, b[max(0, len(b)-40):])
		}
	}
	if got := storedIDs(t, dir); !slices.Equal(got, written) {
		t.Fatalf("%d letters stored, want the %d written", len(got), len(written))
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	next := len(written) + 1
	if err := s.DeadLetter(context.Background(), []outputs.DeadLetter{l(next)}); err != nil {
		t.Fatalf("after space was freed: %v", err)
	}
	written = append(written, outputstest.Event(next).ID)
	if st := s.Stats(); st.Err != nil {
		t.Errorf("stats %+v after a letter was written", st)
	}
	if got := storedIDs(t, dir); !slices.Equal(got, written) {
		t.Errorf("%d letters stored, want the %d written", len(got), len(written))
	}
	r := &recorder{}
	if rep, err := dlq.Replay(context.Background(), dir, all, r); err != nil || rep.Bad != 0 || !slices.Equal(r.ids(), written) {
		t.Errorf("replay: %+v, %v; delivered %d of %d", rep, err, len(r.ids()), len(written))
	}
}
