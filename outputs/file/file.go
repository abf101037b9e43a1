// Package file writes events as NDJSON, one event's JSON form per line, to
// a file with optional size-based rotation, or to standard output. The
// stdout output is what auditpipe uses when no output is configured, so a
// first run shows its events at once.
//
// A file output fsyncs every batch by default: an audit event counts as
// delivered only once it is on disk.
package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/keypath"
	"github.com/auditpipe/auditpipe/outputs"
)

// Config configures the file output.
type Config struct {
	// Path is the file to append to; its directory is created if missing.
	// Required.
	Path string `yaml:"path"`
	// MaxBytes rotates the file before a write would take it past this
	// size: path becomes path.1, path.1 becomes path.2, and so on.
	// Default 0: never rotate.
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxBackups is how many rotated files to keep; older ones are
	// removed. Default 5 (when max_bytes is set).
	MaxBackups int `yaml:"max_backups"`
	// Fsync syncs the file after every batch. Default true; false trades
	// the guarantee for speed on a disk you trust less than the sender.
	Fsync *bool `yaml:"fsync"`
	// Mode is the permission of a new file, in octal. Default "0600":
	// audit events are sensitive.
	Mode string `yaml:"mode"`
}

// Validate names the bad key.
func (c Config) Validate() error {
	if c.Path == "" {
		return keypath.Errorf("path", "required")
	}
	if c.MaxBytes < 0 {
		return keypath.Errorf("max_bytes", "must not be negative")
	}
	if c.MaxBackups < 0 {
		return keypath.Errorf("max_backups", "must not be negative")
	}
	if c.Mode != "" {
		if m, err := strconv.ParseUint(c.Mode, 8, 32); err != nil || m > 0o777 {
			return keypath.Errorf("mode", "%q is not an octal permission such as 0600", c.Mode)
		}
	}
	return nil
}

// Output appends NDJSON to a writer.
type Output struct {
	path       string
	maxBytes   int64
	maxBackups int
	fsync      bool
	mode       os.FileMode
	log        *slog.Logger

	mu   sync.Mutex
	w    io.Writer
	f    *os.File // nil for stdout
	size int64
	buf  []byte
}

var _ outputs.Output = (*Output)(nil)

// New opens (or creates) the file.
func New(_ context.Context, cfg Config, logger *slog.Logger) (*Output, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := &Output{path: cfg.Path, maxBytes: cfg.MaxBytes, maxBackups: cfg.MaxBackups, fsync: true, mode: 0o600, log: logger}
	if o.maxBackups == 0 {
		o.maxBackups = 5
	}
	if cfg.Fsync != nil {
		o.fsync = *cfg.Fsync
	}
	if cfg.Mode != "" {
		m, _ := strconv.ParseUint(cfg.Mode, 8, 32)
		o.mode = os.FileMode(m)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o750); err != nil {
		return nil, fmt.Errorf("path: %w", err)
	}
	if err := o.open(); err != nil {
		return nil, fmt.Errorf("path: %w", err)
	}
	return o, nil
}

// NewWriter returns an output writing to w without rotation or fsync: the
// stdout output (type stdout) is NewWriter(os.Stdout).
func NewWriter(w io.Writer) *Output {
	return &Output{w: w}
}

func (o *Output) open() error {
	f, err := os.OpenFile(o.path, os.O_CREATE|os.O_RDWR|os.O_APPEND, o.mode)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	size, err := cutTornTail(f, fi.Size())
	if err != nil {
		f.Close()
		return fmt.Errorf("file: %s: cutting a torn last line: %w", o.path, err)
	}
	if size != fi.Size() {
		o.log.Warn("file: cut a torn last line left by an interrupted write; its batch is delivered again",
			"path", o.path, "bytes", fi.Size()-size)
	}
	o.f, o.w, o.size = f, f, size
	return nil
}

// cutTornTail truncates f after its last newline. A write that a crash
// or a full disk interrupted leaves part of a line at the end; the next
// batch would be appended to it and that line would be unreadable. The
// cut part was never acknowledged, so it is delivered again whole.
func cutTornTail(f *os.File, size int64) (int64, error) {
	buf := make([]byte, 64<<10)
	end := size
	for end > 0 {
		n := min(int64(len(buf)), end)
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return size, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end = end - n + int64(i) + 1
			break
		}
		end -= n
	}
	if end == size {
		return size, nil
	}
	return end, f.Truncate(end)
}

// Write appends one line per event. The lines of a batch go in one write
// call, so concurrent writers never interleave within a batch.
func (o *Output) Write(ctx context.Context, events []auditpipe.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.w == nil {
		return errors.New("file: output closed")
	}
	buf := o.buf[:0]
	for i := range events {
		buf = eventjson.Append(buf, &events[i])
		buf = append(buf, '\n')
	}
	o.buf = buf
	if o.f != nil && o.maxBytes > 0 && o.size > 0 && o.size+int64(len(buf)) > o.maxBytes {
		if err := o.rotate(); err != nil {
			return fmt.Errorf("file: rotate %s: %w", o.path, err)
		}
	}
	n, err := o.w.Write(buf)
	o.size += int64(n)
	if err != nil {
		// A short write leaves part of a batch in the file. The whole
		// batch is retried; the torn line is cut first, so that the
		// retry does not run on from it.
		if o.f != nil {
			if size, cerr := cutTornTail(o.f, o.size); cerr == nil {
				o.size = size
			}
		}
		return fmt.Errorf("file: write: %w", err)
	}
	if o.f != nil && o.fsync {
		if err := o.f.Sync(); err != nil {
			return fmt.Errorf("file: fsync %s: %w", o.path, err)
		}
	}
	return nil
}

func (o *Output) rotate() error {
	if err := o.f.Close(); err != nil {
		o.log.Warn("closing rotated file", "path", o.path, "err", err)
	}
	o.f, o.w = nil, nil
	os.Remove(fmt.Sprintf("%s.%d", o.path, o.maxBackups))
	for i := o.maxBackups - 1; i >= 1; i-- {
		from := fmt.Sprintf("%s.%d", o.path, i)
		if err := os.Rename(from, fmt.Sprintf("%s.%d", o.path, i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Rename(o.path, o.path+".1"); err != nil {
		return err
	}
	return o.open()
}

// Close closes the file. Writing to a closed output fails.
func (o *Output) Close(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	f := o.f
	o.f, o.w = nil, nil
	if f != nil {
		return f.Close()
	}
	return nil
}
