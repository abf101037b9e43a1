package tlsfiles

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultInterval is how often files are checked when Options.Interval is
// zero. A stat of two files costs about a microsecond; a rotated
// certificate reaches a pod's volume a minute or more after the Secret
// changes, so checking more often would gain nothing.
const DefaultInterval = time.Second

// rereadEvery is how often files are read even though their stat has not
// changed: a file rewritten in place within one tick of the file system's
// clock, at the same size, looks unchanged to stat.
const rereadEvery = time.Minute

// Options are what every file source shares.
type Options struct {
	// Logger gets one line per change: loaded, or kept the old one and
	// why. Default: discard.
	Logger *slog.Logger
	// Interval is the least time between two checks of the files.
	// Default DefaultInterval; negative checks on every use (tests).
	Interval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// loaded is one parsed version of the files, numbered from 1.
type loaded[T any] struct {
	val T
	gen uint64
}

// stamp is what stat says of a file: a change of any field is a change of
// the file. The inode changes when a symlink on the path is swapped to a
// new file, as the kubelet does.
type stamp struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

// watched is a value parsed from files, re-parsed when they change.
type watched[T any] struct {
	field string   // key path of the first file, for log lines: tls.cert_file
	paths []string // the files, passed to parse in this order
	parse func(data [][]byte) (T, error)
	// describe says what was loaded, for the log line: no secrets.
	describe func(T) []any
	opts     Options

	cur  atomic.Pointer[loaded[T]]
	next atomic.Int64 // unix nanoseconds before which no check is made

	mu       sync.Mutex // held by the one goroutine checking
	stamps   []stamp
	sum      [sha256.Size]byte // of the content last parsed, good or bad
	lastRead time.Time
	lastErr  string // the problem last logged, so that it is logged once
}

// newWatched reads and parses the files once: an error here is the
// caller's to report (the configuration names a bad file).
func newWatched[T any](field string, paths []string, parse func([][]byte) (T, error), describe func(T) []any, opts Options) (*watched[T], error) {
	w := &watched[T]{field: field, paths: paths, parse: parse, describe: describe, opts: opts.withDefaults()}
	now := w.opts.Now()
	stamps, err := w.stat()
	if err != nil {
		return nil, err
	}
	data, err := w.read()
	if err != nil {
		return nil, err
	}
	v, err := parse(data)
	if err != nil {
		return nil, err
	}
	w.stamps, w.sum, w.lastRead = stamps, hash(data), now
	w.cur.Store(&loaded[T]{val: v, gen: 1})
	w.next.Store(now.Add(w.opts.Interval).UnixNano())
	return w, nil
}

// get returns the current value, checking the files first when the
// interval has passed. A check in progress elsewhere is not waited for:
// the handshake goes on with what is loaded.
func (w *watched[T]) get() *loaded[T] {
	if now := w.opts.Now(); now.UnixNano() >= w.next.Load() && w.mu.TryLock() {
		w.check(now)
		w.mu.Unlock()
	}
	return w.cur.Load()
}

func (w *watched[T]) check(now time.Time) {
	w.next.Store(now.Add(w.opts.Interval).UnixNano())
	stamps, err := w.stat()
	if err != nil {
		w.problem(err)
		return
	}
	if stampsEqual(stamps, w.stamps) && now.Sub(w.lastRead) < rereadEvery {
		return
	}
	// Stat before reading: a change made while reading shows as a stamp
	// different from the one kept, and is read at the next check.
	w.stamps = stamps
	data, err := w.read()
	if err != nil {
		w.problem(err)
		return
	}
	w.lastRead = now
	sum := hash(data)
	if sum == w.sum {
		w.lastErr = "" // readable again: a later problem is news
		return
	}
	w.sum = sum
	w.lastErr = "" // new content: its problem is news even if worded as the last
	v, err := w.parse(data)
	if err != nil {
		w.problem(err)
		return
	}
	w.cur.Store(&loaded[T]{val: v, gen: w.cur.Load().gen + 1})
	w.opts.Logger.Info("tls: re-read "+w.field+" after a change", append([]any{"files", w.paths}, w.describe(v)...)...)
}

// problem logs err once, however many checks find it again.
func (w *watched[T]) problem(err error) {
	if msg := err.Error(); msg != w.lastErr {
		w.lastErr = msg
		w.opts.Logger.Warn("tls: keeping the previous "+w.field+": the changed files do not load",
			"files", w.paths, "err", err)
	}
}

func (w *watched[T]) stat() ([]stamp, error) {
	stamps := make([]stamp, len(w.paths))
	for i, p := range w.paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		stamps[i] = stamp{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			stamps[i].dev, stamps[i].ino = uint64(st.Dev), st.Ino //nolint:unconvert // Dev is not uint64 everywhere
		}
	}
	return stamps, nil
}

func (w *watched[T]) read() ([][]byte, error) {
	data := make([][]byte, len(w.paths))
	for i, p := range w.paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(b)) == 0 {
			return nil, fmt.Errorf("%s: %w", p, errEmpty)
		}
		data[i] = b
	}
	return data, nil
}

var errEmpty = errors.New("the file is empty")

func stampsEqual(a, b []stamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func hash(data [][]byte) [sha256.Size]byte {
	h := sha256.New()
	for _, d := range data {
		// Lengths first, so that moving bytes from one file to the other
		// changes the sum.
		h.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(d))))
		h.Write(d)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
