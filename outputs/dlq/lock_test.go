package dlq

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A replay that stops waiting for a file's lock (its context ended) leaves
// the lock to nobody once it does get it.
func TestLockCtxGivesUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	open := func() *os.File {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	holder := open()
	if err := flock(holder, syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := lockCtx(ctx, open()); !errors.Is(err, context.Canceled) {
		t.Fatalf("lockCtx = %v while the lock is held and ctx is done", err)
	}
	holder.Close()
	// Returns once the abandoned wait has taken the lock and let it go
	// (or before it took it; either way it is not kept).
	probe := open()
	if err := flock(probe, syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	probe.Close()
	if err := lockCtx(context.Background(), open()); err != nil {
		t.Fatal(err)
	}
}
