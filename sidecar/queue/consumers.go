package queue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/auditpipe/auditpipe/internal/durable"
)

// ErrRemoved is returned by the methods of a Reader whose consumer was
// removed (RemoveReader).
var ErrRemoved = errors.New("queue: consumer removed")

// AddReader adds a consumer while the queue is in use (an output added by
// a configuration reload). It starts after the last appended record: it
// reads only what is appended from now on, never the backlog the other
// consumers may still hold, which can be days old and already delivered
// elsewhere. Its cursor file is written before AddReader returns, so a
// restart resumes it from there; a cursor file left under that name by an
// earlier consumer is replaced. Safe against concurrent appends, acks and
// segment deletion: the new consumer has acknowledged everything that
// exists, so it holds no segment back.
func (q *Queue) AddReader(name string) (*Reader, error) {
	if name == "" {
		return nil, errors.New("queue: empty consumer name")
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil, ErrClosed
	}
	if slices.ContainsFunc(q.readers, func(r *Reader) bool { return r.name == name }) {
		q.mu.Unlock()
		return nil, fmt.Errorf("queue: consumer %q exists", name)
	}
	r := &Reader{q: q, name: name, path: filepath.Join(q.dir, cursorFile(name)), acked: q.head, pos: q.head + 1}
	// A new slice, not an append in place: Stats and Close range over the
	// slice they took under q.mu after releasing it.
	q.readers = append(slices.Clip(q.readers), r)
	q.mu.Unlock()

	r.ackMu.Lock()
	err := writeCursor(r.path, r.acked, nil, q.fsync)
	if err == nil {
		r.persisted = r.acked
	}
	r.ackMu.Unlock()
	if err != nil {
		if rerr := q.RemoveReader(name); rerr != nil && !errors.Is(rerr, ErrClosed) {
			err = errors.Join(err, rerr)
		}
		return nil, fmt.Errorf("queue: %s: write cursor: %w", name, err)
	}
	return r, nil
}

// RemoveReader drops a consumer while the queue is in use (an output
// removed by a configuration reload): it no longer holds any record back,
// so the segments only it still needed are deleted at once, and its
// cursor file is deleted. What it had not acknowledged is not delivered
// to it, ever. The caller stops using the reader first; its methods
// return ErrRemoved afterwards (a Next already waiting does when the next
// record is appended). A cursor write in progress is waited for.
func (q *Queue) RemoveReader(name string) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	i := slices.IndexFunc(q.readers, func(r *Reader) bool { return r.name == name })
	if i < 0 {
		q.mu.Unlock()
		return fmt.Errorf("queue: %q is not a consumer of this queue", name)
	}
	r := q.readers[i]
	q.readers = slices.Delete(slices.Clone(q.readers), i, i+1)
	q.mu.Unlock()

	// Close's lock order: a cursor write finishes first, and the reader's
	// segment reference is dropped so that a deleted segment's file closes.
	r.ackMu.Lock()
	r.mu.Lock()
	q.mu.Lock()
	r.removed = true
	r.releaseLocked()
	var collected []*segment
	if !q.closed {
		collected = q.collectAckedLocked()
	}
	q.mu.Unlock()
	r.mu.Unlock()
	r.ackMu.Unlock()
	q.removeSegments(collected)

	// A crash before this leaves a cursor file of a consumer that is no
	// longer configured, which Open ignores.
	if err := os.Remove(r.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("queue: %s: delete cursor: %w", name, err)
	}
	if q.fsync {
		if err := durable.SyncDir(q.dir); err != nil {
			return fmt.Errorf("queue: %s: delete cursor: %w", name, err)
		}
	}
	return nil
}

// Consumers returns the names of the current consumers, in the order they
// were added.
func (q *Queue) Consumers() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	names := make([]string, len(q.readers))
	for i, r := range q.readers {
		names[i] = r.name
	}
	return names
}
