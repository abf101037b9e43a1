package outputstest

import (
	"context"
	"encoding/json"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/outputs"
)

// Letters is a dead-letter store (an outputs.DeadLetterer) that remembers
// what it is given. Its zero value is ready to use and its methods are safe
// for concurrent use.
type Letters struct {
	// Err, when set, is what DeadLetter returns, keeping nothing: a store
	// that fails. Set it before the store is used.
	Err error

	mu  sync.Mutex
	got []outputs.DeadLetter
}

// DeadLetter keeps ls, or returns l.Err when it is set.
func (l *Letters) DeadLetter(_ context.Context, ls []outputs.DeadLetter) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Err != nil {
		return l.Err
	}
	l.got = append(l.got, ls...)
	return nil
}

// All returns a copy of the letters kept, in the order they came.
func (l *Letters) All() []outputs.DeadLetter {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got)
}

// IDs returns the ids of the letters' events, read from each letter's Event
// JSON, sorted. A letter whose Event is not a JSON object fails the test.
func (l *Letters) IDs(t testing.TB) []string {
	t.Helper()
	var ids []string
	for _, d := range l.All() {
		var ev struct{ ID string }
		if err := json.Unmarshal(d.Event, &ev); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	slices.Sort(ids)
	return ids
}

// Eventually polls cond every couple of milliseconds until it holds,
// failing the test with "timed out waiting for what" once within has
// passed.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling interval
	}
}

// CheckNoLeak fails the test, with every goroutine's stack, unless the
// number of goroutines falls back to baseline within the given time. Call
// it once everything the test started is closed; it polls, because the
// goroutines of closed connections and timers take a moment to return.
func CheckNoLeak(t testing.TB, within time.Duration, baseline int) {
	t.Helper()
	deadline := time.Now().Add(within)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

// FreeAddr returns a loopback address nothing listens on (for now), for a
// peer started later than the output that connects to it.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}
