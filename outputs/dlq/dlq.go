// Package dlq is the dead-letter store: NDJSON files holding every event an
// output rejected permanently (and every payload that could not be
// transformed), with the reason and the time, so that nothing auditpipe
// accepted is ever silently lost. An operator lists them, fixes the cause
// (a mapping, a size limit) and replays them to an output.
//
// A Store appends to one file at a time, fsyncs before DeadLetter returns,
// and holds an exclusive flock on the file it writes, so a concurrent
// replay (another process) leaves that file alone. Files are named
// dlq-<UTC time>-<pid>-<seq>.ndjson and sort in the order they were made.
package dlq

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/auditpipe/auditpipe/outputs"
)

// Config configures the dead-letter store.
type Config struct {
	// Dir holds the store's files; it is created (mode 0700) if missing.
	// Required.
	Dir string `yaml:"dir"`
	// MaxFileBytes starts a new file once the current one is this large.
	// Default 64 MiB.
	MaxFileBytes int64 `yaml:"max_file_bytes"`
}

// Validate names the bad key.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("dir: required")
	}
	if c.MaxFileBytes < 0 {
		return errors.New("max_file_bytes: must not be negative")
	}
	return nil
}

// Store appends dead letters to NDJSON files. It is safe for concurrent use.
type Store struct {
	dir     string
	maxSize int64
	now     func() time.Time

	mu   sync.Mutex
	f    *os.File
	size int64
	seq  int
}

var _ outputs.DeadLetterer = (*Store)(nil)

// Open validates cfg and opens the store. No file is created until the
// first letter arrives.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dead letter: %w", err)
	}
	if cfg.MaxFileBytes == 0 {
		cfg.MaxFileBytes = 64 << 20
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("dead letter: dir: %w", err)
	}
	return &Store{dir: cfg.Dir, maxSize: cfg.MaxFileBytes, now: time.Now}, nil
}

// Dir is the directory the store writes to.
func (s *Store) Dir() string { return s.dir }

// DeadLetter appends letters and fsyncs them before returning.
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
	if s.f == nil || s.size >= s.maxSize {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	n, err := s.f.Write(buf.Bytes())
	s.size += int64(n)
	if err != nil {
		return fmt.Errorf("dead letter: write %s: %w", s.f.Name(), err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("dead letter: fsync %s: %w", s.f.Name(), err)
	}
	return nil
}

func (s *Store) rotate() error {
	if s.f != nil {
		s.closeFile()
	}
	s.seq++
	name := fmt.Sprintf("dlq-%s-%d-%d.ndjson", s.now().UTC().Format("20060102T150405.000000000Z"), os.Getpid(), s.seq)
	f, err := os.OpenFile(filepath.Join(s.dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("dead letter: lock %s: %w", name, err)
	}
	// The new name must survive a crash as well as the data written to it.
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return err
	}
	s.f, s.size = f, 0
	return nil
}

func (s *Store) closeFile() {
	// Closing the descriptor releases the flock.
	s.f.Close()
	s.f = nil
}

// Close closes the current file.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		s.closeFile()
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("dead letter: fsync %s: %w", dir, err)
	}
	return nil
}

// Entry is one stored letter and where it is.
type Entry struct {
	outputs.DeadLetter
	File string
	Line int
	raw  []byte
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
// letter (a torn last line after a crash) is reported as an error naming
// file and line, and Walk goes on; the errors are joined.
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
		ents, errs, err := readFile(f)
		if err != nil {
			return err
		}
		bad = append(bad, errs...)
		for _, e := range ents {
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return errors.Join(bad...)
}

func readFile(path string) ([]Entry, []error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var ents []Entry
	var bad []error
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<30)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e.DeadLetter); err != nil {
			bad = append(bad, fmt.Errorf("%s:%d: not a dead letter: %w", path, line, err))
			continue
		}
		e.File, e.Line, e.raw = path, line, slices.Clone(sc.Bytes())
		ents = append(ents, e)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return ents, bad, nil
}
