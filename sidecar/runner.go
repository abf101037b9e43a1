package sidecar

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"
)

// runner is a source with a loop of its own instead of requests: a pull
// source's poller, a Kafka consumer. It runs while its source belongs to
// the current configuration: started by Run, or by the reload that adds
// or changes the source, and stopped by the reload that removes or
// changes it (the new version starts once the old one has returned, so
// the two never share a state file or a consumer-group membership), or
// by shutdown. Run returns when ctx ends; a runner that also implements
// io.Closer is closed after its Run returns.
type runner interface {
	Run(ctx context.Context) error
}

// running is a runner's goroutine.
type running struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs r under parent until stop or parent ends.
func start(parent context.Context, log *slog.Logger, name string, r runner) *running {
	ctx, cancel := context.WithCancel(parent)
	rn := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(rn.done)
		if err := r.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("source loop stopped", "source", name, "err", err)
		}
		if c, ok := r.(io.Closer); ok {
			if err := c.Close(); err != nil {
				log.Error("closing a source loop", "source", name, "err", err)
			}
		}
	}()
	return rn
}

// stop ends the runner and waits for it.
func (rn *running) stop() {
	rn.cancel()
	<-rn.done
}

// loop is an output's delivery loop. halt asks it to stop after the
// batch in flight (delivered and acknowledged); kill cancels that batch
// too, which then stays queued, unacknowledged.
type loop struct {
	halt, kill context.CancelFunc
	done       chan struct{}
}

// stopGrace is how long a reload lets a changed or removed output finish
// the batch it is delivering before canceling it. A healthy destination
// answers well within it; one that is down (which may be why its
// settings changed) would otherwise hold the reload for its whole retry
// schedule.
const stopGrace = 5 * time.Second

// startLoop starts o's delivery loop under parent.
func (s *Sidecar) startLoop(parent context.Context, o *output) {
	hard, kill := context.WithCancel(parent)
	soft, halt := context.WithCancel(hard)
	l := &loop{halt: halt, kill: kill, done: make(chan struct{})}
	o.loop = l
	go func() {
		defer close(l.done)
		s.deliverLoop(soft, hard, o.route, o.rd, o.chain)
	}()
}

// stop stops the loop after its batch in flight, or cancels that batch
// after grace, and waits for the loop to return. It reports whether the
// batch had to be canceled.
func (l *loop) stop(grace time.Duration) (canceled bool) {
	l.halt()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-l.done:
	case <-t.C:
		canceled = true
		l.kill()
		<-l.done
	}
	l.kill()
	return canceled
}
