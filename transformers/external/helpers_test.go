package external_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/transformers/external"
)

// recorder is a slog handler that keeps every record's message and
// attributes as one line, and lets a test wait for a line.
type recorder struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{}
	attrs   []slog.Attr
	parent  *recorder
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) root() *recorder {
	if r.parent != nil {
		return r.parent
	}
	return r
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Level.String() + " " + rec.Message)
	for _, a := range r.attrs {
		b.WriteString(" " + a.String())
	}
	rec.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	root := r.root()
	root.mu.Lock()
	root.lines = append(root.lines, b.String())
	close(root.changed)
	root.changed = make(chan struct{})
	root.mu.Unlock()
	return nil
}

func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &recorder{parent: r.root(), attrs: append(append([]slog.Attr(nil), r.attrs...), as...)}
}

func (r *recorder) WithGroup(string) slog.Handler { return r }

// waitFor returns the first line containing s, waiting up to a deadline.
func (r *recorder) waitFor(t *testing.T, s string) string {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	root := r.root()
	for {
		root.mu.Lock()
		for _, l := range root.lines {
			if strings.Contains(l, s) {
				root.mu.Unlock()
				return l
			}
		}
		changed := root.changed
		root.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no log line containing %q", s)
		}
	}
}

// newHost starts a transformer and closes it when the test ends.
func newHost(t *testing.T, cfg external.Config, h slog.Handler) *external.Transformer {
	t.Helper()
	if h == nil {
		h = slog.DiscardHandler
	}
	tr, err := external.New(context.Background(), cfg, slog.New(h))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// gone reports whether no process has pid any more (reaped, not a zombie).
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// eventually polls cond until it holds, failing the test after a deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		<-tick.C
	}
}
