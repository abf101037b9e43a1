// Package inflight lets an HTTP output close gracefully: Close waits for
// the Writes in progress, and cancels their requests only when its own
// context ends first. The webhook and splunk_hec outputs share it.
package inflight

import (
	"context"
	"sync"
)

// Gate counts the Writes in progress and refuses new ones once closed.
type Gate struct {
	mu     sync.Mutex
	closed bool
	writes sync.WaitGroup // added to only while !closed
	stop   context.Context
	cancel context.CancelFunc
}

// New returns an open Gate.
func New() *Gate {
	g := &Gate{}
	g.stop, g.cancel = context.WithCancel(context.Background())
	return g
}

// Enter admits a Write; false once the Gate is closed. Each true is
// matched by a Leave.
func (g *Gate) Enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.writes.Add(1)
	return true
}

// Leave ends a Write Enter admitted.
func (g *Gate) Leave() { g.writes.Done() }

// Stopped is done once Close has given up waiting: requests tie their
// contexts to it (context.AfterFunc) to be cancelled then.
func (g *Gate) Stopped() context.Context { return g.stop }

// Close refuses new Writes and waits for those in progress, or, when ctx
// ends first, cancels them and waits for them to return; the error is
// then ctx's cause. A second Close returns nil at once.
func (g *Gate) Close(ctx context.Context) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	g.mu.Unlock()
	done := make(chan struct{})
	go func() {
		g.writes.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = context.Cause(ctx)
		g.cancel()
		<-done
	}
	g.cancel()
	return err
}
