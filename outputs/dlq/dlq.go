// Package dlq is the dead-letter store: NDJSON files holding every event an
// output rejected permanently (and every payload that could not be
// transformed), with the reason and the time, so that nothing auditpipe
// accepted is ever silently lost. An operator lists them, fixes the cause
// (a mapping, a size limit) and replays them to an output.
//
// A Store appends to one file at a time and fsyncs before DeadLetter
// returns. Files are named dlq-<UTC time>-<pid>-<seq>.ndjson and sort in
// the order they were made. Only the Store that made a file appends to it
// (a restart starts a new file); Replay replaces files whole.
//
// # Locking
//
// The Store holds an exclusive flock on its file only while it appends
// and fsyncs, not for the file's life, so that an operator can replay the
// file a running sidecar is writing. Replay (another process, or the same
// one) takes the same lock to read a file and again to replace it, and
// never holds it while the letters are sent: a slow output must not stall
// the sidecar's writes. Having waited for the lock, the Store checks that
// its descriptor is still the file at its path; when Replay has renamed a
// rewritten file over it or removed it, the Store starts a new file rather
// than append to one nobody will read. Replays exclude each other with a
// flock on the directory, so that Replay can trust that a file whose
// identity did not change was only appended to while it sent. Walk reads
// each file under a shared lock, so it never sees half a letter being
// written.
//
// # Size
//
// Malformed payloads alone could otherwise fill the disk that the queue
// needs for valid events, so the store's files are bounded by
// Config.MaxBytes. A DeadLetter that would pass it, or that meets a full
// disk (ENOSPC, EDQUOT), fails with ErrFull and writes nothing. The Store
// measures the directory at Open and counts what it writes; a replay by
// another process frees space the Store cannot see, so it measures again
// when the bound is reached, and only then, since that is a directory
// read.
//
// # Torn writes
//
// A failed write can leave part of a letter in the file; the next letter
// would be glued to it and both lost to readers. So after a failed write
// or fsync the Store cuts the file back to its size before the write, and
// when that fails too it leaves the file for good and starts a new one.
// Lines torn some other way (a crash mid-write) are still possible, so
// readers take each line on its own: Walk reports the bad ones and goes
// on, and Replay delivers the good ones and keeps the bad ones in the
// file, byte for byte.
package dlq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/auditpipe/auditpipe/internal/durable"
	"github.com/auditpipe/auditpipe/outputs"
)

const (
	defaultMaxBytes     = 1 << 30
	defaultMaxFileBytes = 64 << 20
)

// ErrFull is returned (wrapped) by DeadLetter when the letters would take
// the store past max_bytes or the disk is full; nothing was written. It is
// transient: a replay, or space freed on the disk, makes room.
var ErrFull = errors.New("dead-letter store full")

// Config configures the dead-letter store.
type Config struct {
	// Dir holds the store's files; it is created (mode 0700) if missing.
	// Required.
	Dir string `yaml:"dir"`
	// MaxFileBytes starts a new file once the current one is this large.
	// At most max_bytes. Default 64 MiB, or max_bytes when that is
	// smaller.
	MaxFileBytes int64 `yaml:"max_file_bytes"`
	// MaxBytes bounds the total size of the store's files. A DeadLetter
	// that would pass it fails with ErrFull rather than take the disk the
	// queue needs. Default 1 GiB.
	MaxBytes int64 `yaml:"max_bytes"`
}

// Validate names the bad key.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("dir: required")
	}
	if c.MaxFileBytes < 0 {
		return errors.New("max_file_bytes: must not be negative")
	}
	if c.MaxBytes < 0 {
		return errors.New("max_bytes: must not be negative")
	}
	if c.MaxBytes > 0 && c.MaxFileBytes > c.MaxBytes {
		return fmt.Errorf("max_file_bytes: %d exceeds max_bytes %d", c.MaxFileBytes, c.MaxBytes)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MaxBytes == 0 {
		c.MaxBytes = defaultMaxBytes
	}
	if c.MaxFileBytes == 0 {
		c.MaxFileBytes = min(defaultMaxFileBytes, c.MaxBytes)
	}
	return c
}

// Store appends dead letters to NDJSON files. It is safe for concurrent use.
type Store struct {
	dir      string
	maxFile  int64
	maxBytes int64
	now      func() time.Time

	// mu serialises writers; it is held while waiting for the file lock.
	mu   sync.Mutex
	f    *os.File // nil until the first letter, after Close, and after a file is given up
	path string
	size int64 // of f
	seq  int

	// statMu guards what Stats reports, apart from mu so that a probe
	// never waits for a write held up by a replay.
	statMu  sync.Mutex
	bytes   int64 // the store's files on disk, as last measured plus what was written since
	letters uint64
	err     error
}

var _ outputs.DeadLetterer = (*Store)(nil)

// Open validates cfg, creates the directory if needed and measures the
// files already in it. No file is created until the first letter arrives.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dead letter: %w", err)
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("dead letter: dir: %w", err)
	}
	s := &Store{dir: cfg.Dir, maxFile: cfg.MaxFileBytes, maxBytes: cfg.MaxBytes, now: time.Now}
	if err := s.measure(); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir is the directory the store writes to.
func (s *Store) Dir() string { return s.dir }

// Stats is a snapshot for metrics and readiness.
type Stats struct {
	Bytes, MaxBytes int64  // the store's files on disk, and the bound
	Letters         uint64 // letters written by this Store since Open
	Err             error  // the last failed DeadLetter's error, nil once one succeeds
}

// Stats returns the store's counters. It does no I/O and never waits for
// a write. Bytes is what the store measured at Open, or when it last
// reached MaxBytes, plus what it wrote since: space a replay by another
// process freed shows only after the next measure. Err is set by failures
// to store letters (ErrFull among them), not by a cancelled context or a
// letter that does not encode, which say nothing about the store.
func (s *Store) Stats() Stats {
	s.statMu.Lock()
	defer s.statMu.Unlock()
	return Stats{Bytes: s.bytes, MaxBytes: s.maxBytes, Letters: s.letters, Err: s.err}
}

// DeadLetter appends letters and fsyncs them before returning. When it
// fails, none of the letters is in the store.
func (s *Store) DeadLetter(ctx context.Context, letters []outputs.DeadLetter) error {
	if len(letters) == 0 {
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range letters {
		if err := enc.Encode(&letters[i]); err != nil {
			return fmt.Errorf("dead letter: encode: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.append(buf.Bytes())
	s.statMu.Lock()
	s.err = err
	if err == nil {
		s.letters += uint64(len(letters))
		s.bytes += int64(buf.Len())
	}
	s.statMu.Unlock()
	return err
}

// append writes b at the end of the current file, under the file lock.
// The caller holds s.mu.
func (s *Store) append(b []byte) error {
	n := int64(len(b))
	if held := s.held(); held+n > s.maxBytes {
		if err := s.measure(); err != nil {
			return err
		}
		if held = s.held(); held+n > s.maxBytes {
			return fmt.Errorf("%w: max_bytes: %d bytes held, %d more would pass %d", ErrFull, held, n, s.maxBytes)
		}
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.unlock()
	off := s.size
	if _, err := s.f.Write(b); err != nil {
		return s.undo(off, false, err)
	}
	if err := s.f.Sync(); err != nil {
		return s.undo(off, true, err)
	}
	s.size += n
	return nil
}

// undo cuts the file back to off after a failed write, so that the next
// letter does not start on a torn line. A file that cannot be cut back,
// or whose fsync failed (the kernel may have dropped pages it could not
// write, so what is on disk is no longer known), is given up: the next
// letter starts a new file.
func (s *Store) undo(off int64, giveUp bool, err error) error {
	if terr := s.f.Truncate(off); terr != nil {
		giveUp = true
		err = fmt.Errorf("%w (and cutting it back to %d bytes: %w)", err, off, terr)
	} else if off == 0 {
		// Rather than leave an empty file behind. A replay waiting for
		// its lock finds it gone and skips it.
		if os.Remove(s.path) == nil {
			giveUp = true
		}
	}
	if giveUp {
		s.closeFile()
	}
	return storeErr(err)
}

// storeErr marks a full disk as ErrFull; the syscall error stays
// reachable with errors.Is.
func storeErr(err error) error {
	if durable.NoSpace(err) {
		return fmt.Errorf("%w: %w", ErrFull, err)
	}
	return fmt.Errorf("dead letter: %w", err)
}

func (s *Store) held() int64 {
	s.statMu.Lock()
	defer s.statMu.Unlock()
	return s.bytes
}

// measure sets the store's size to that of its files on disk.
func (s *Store) measure() error {
	n, err := dirBytes(s.dir)
	if err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	s.statMu.Lock()
	s.bytes = n
	s.statMu.Unlock()
	return nil
}

func dirBytes(dir string) (int64, error) {
	files, err := Files(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, f := range files {
		fi, err := os.Lstat(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue // replayed away since the listing
		}
		if err != nil {
			return 0, err
		}
		n += fi.Size()
	}
	return n, nil
}

// lock leaves s.f open on a file at its path, holding its flock, with
// s.size its size. The caller holds s.mu.
func (s *Store) lock() error {
	// A replay replaces a file only after delivering letters from it, and
	// a new file has none until this lock is taken, so the second round
	// succeeds; the bound is for files removed by hand.
	for range 3 {
		if s.f == nil || s.size >= s.maxFile {
			if err := s.rotate(); err != nil {
				return storeErr(err)
			}
		}
		if err := flock(s.f, syscall.LOCK_EX); err != nil {
			return storeErr(fmt.Errorf("lock %s: %w", s.path, err))
		}
		fi, ok, err := same(s.f, s.path)
		if err != nil {
			s.unlock()
			return storeErr(err)
		}
		if ok {
			s.size = fi.Size()
			return nil
		}
		// A replay replaced or removed the file while we did not hold
		// its lock: what we append would be in no file anyone reads.
		s.closeFile()
	}
	return storeErr(fmt.Errorf("%s: replaced by a replay three times in a row", s.dir))
}

func (s *Store) unlock() {
	if s.f != nil {
		flock(s.f, syscall.LOCK_UN)
	}
}

func (s *Store) rotate() error {
	if s.f != nil {
		s.closeFile()
	}
	s.seq++
	name := fmt.Sprintf("dlq-%s-%d-%d.ndjson", s.now().UTC().Format("20060102T150405.000000000Z"), os.Getpid(), s.seq)
	path := filepath.Join(s.dir, name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	// The new name must survive a crash as well as the data written to it.
	if err := durable.SyncDir(s.dir); err != nil {
		f.Close()
		return err
	}
	s.f, s.path, s.size = f, path, 0
	return nil
}

func (s *Store) closeFile() {
	// Closing the descriptor releases the flock, if held.
	s.f.Close()
	s.f, s.path = nil, ""
}

// Close closes the current file. A later DeadLetter starts a new one.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		s.closeFile()
	}
	return nil
}

func flock(f *os.File, how int) error { return flockFd(int(f.Fd()), how) }

func flockFd(fd, how int) error {
	for {
		err := syscall.Flock(fd, how)
		if err != syscall.EINTR {
			return err
		}
	}
}

// same reports whether f is still the file at path, and f's metadata.
func same(f *os.File, path string) (os.FileInfo, bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	pi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fi, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return fi, os.SameFile(fi, pi), nil
}

// Entry is one stored letter and where it is.
type Entry struct {
	outputs.DeadLetter
	File string
	Line int
	raw  []byte // the line as it is in the file, without its newline
	off  int    // where raw starts in the file
	err  error  // why the line is not a letter; nil for a letter
}

// Files returns the store's files in dir, oldest first.
func Files(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), "dlq-") && strings.HasSuffix(e.Name(), ".ndjson") {
			names = append(names, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(names)
	return names, nil
}

// Walk calls fn for every letter in dir, oldest first. A line that is not a
// letter (a torn line after a crash) is reported as an error naming file
// and line, and Walk goes on; the errors are joined. A directory that does
// not exist holds no letters.
func Walk(dir string, fn func(Entry) error) error {
	files, err := Files(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	var bad []error
	for _, f := range files {
		lines, err := readFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue // replayed away since the listing
		}
		if err != nil {
			return err
		}
		for _, e := range lines {
			if e.err != nil {
				bad = append(bad, e.err)
				continue
			}
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return errors.Join(bad...)
}

// readFile returns the lines of the file at path that are not blank,
// letters and others, in order. It reads under a shared lock, so no letter
// is half written.
func readFile(path string) ([]Entry, error) {
	for range 3 {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		if err := flock(f, syscall.LOCK_SH); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		_, ok, err := same(f, path)
		if err != nil || !ok {
			// Replaced by a replay between the open and the lock: the
			// path now names a newer file (or none).
			f.Close()
			if err != nil {
				return nil, err
			}
			continue
		}
		data, err := readFrom(f, 0)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return parse(path, data), nil
	}
	return nil, fmt.Errorf("%s: replaced three times while being opened", path)
}

// readFrom reads f from off to its end.
func readFrom(f *os.File, off int64) ([]byte, error) {
	return io.ReadAll(io.NewSectionReader(f, off, math.MaxInt64-off))
}

// parse splits data into lines and decodes each one on its own, so that a
// torn line costs only itself. Blank lines are skipped; a line that is not
// a JSON object holding a letter is returned with its error.
func parse(path string, data []byte) []Entry {
	var ents []Entry
	for line, off := 1, 0; off < len(data); line++ {
		raw := data[off:]
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			raw = raw[:i]
		}
		start := off
		off += len(raw) + 1
		t := bytes.TrimSpace(raw)
		if len(t) == 0 {
			continue
		}
		e := Entry{File: path, Line: line, raw: raw, off: start}
		if t[0] != '{' {
			e.err = fmt.Errorf("%s:%d: not a dead letter: not a JSON object", path, line)
		} else if err := json.Unmarshal(t, &e.DeadLetter); err != nil {
			e.DeadLetter = outputs.DeadLetter{}
			e.err = fmt.Errorf("%s:%d: not a dead letter: %w", path, line, err)
		}
		ents = append(ents, e)
	}
	return ents
}
