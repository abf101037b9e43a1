package webhook

import (
	"context"
	"errors"
	"net"
	"sync"
)

// conns tracks the connections the transport dials, so that Close can
// close the ones CloseIdleConnections misses: an HTTP/2 connection whose
// last stream is still being cleaned up when the response is already
// returned is not yet idle (go.dev/issue/50027) and would otherwise linger
// until IdleConnTimeout.
type conns struct {
	mu     sync.Mutex
	open   map[*trackedConn]struct{}
	closed bool
}

func (cs *conns) dialer(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, cs: cs}
		cs.mu.Lock()
		defer cs.mu.Unlock()
		if cs.closed {
			c.Close()
			return nil, errors.New("output is closed")
		}
		if cs.open == nil {
			cs.open = map[*trackedConn]struct{}{}
		}
		cs.open[tc] = struct{}{}
		return tc, nil
	}
}

// closeAll closes every connection still open and refuses new ones.
func (cs *conns) closeAll() {
	cs.mu.Lock()
	cs.closed = true
	open := make([]*trackedConn, 0, len(cs.open))
	for c := range cs.open {
		open = append(open, c)
	}
	cs.mu.Unlock()
	for _, c := range open {
		c.Close()
	}
}

type trackedConn struct {
	net.Conn
	cs   *conns
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.cs.mu.Lock()
		delete(c.cs.open, c)
		c.cs.mu.Unlock()
	})
	return c.Conn.Close()
}
