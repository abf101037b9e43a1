package sidecar

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"
)

// drainPoll is how often a drain looks at the outputs' cursors. The queue
// has no "cursor moved" signal for outsiders, and a drain ends once in a
// pod's life, so polling its counters costs nothing worth a new API.
const drainPoll = 100 * time.Millisecond

// drainDefaultTimeout bounds a drain without a timeout parameter; the
// request's own context (the client going away) may end it sooner.
const drainDefaultTimeout = 5 * time.Minute

// DrainResult is the answer of POST /-/drain.
type DrainResult struct {
	// Drained is true when no output has anything pending.
	Drained bool `json:"drained"`
	// Pending is each output's count of queued events not yet delivered
	// or dead-lettered.
	Pending map[string]uint64 `json:"pending"`
	// Waited is how long the drain waited, as a Go duration.
	Waited string `json:"waited"`
}

// serveDrain takes the sidecar out of service for good and waits for the
// queue to empty: /readyz and new source requests answer 503 from now on
// (the same state as a shutdown, so a Service stops routing here), while
// the delivery loops keep going. It answers 200 once every output's cursor
// has reached the queue head (dead-lettered events count as done), or 503
// with what is left when the timeout query parameter (a Go duration) or
// the request ends first.
//
// It is meant for a pod's preStop hook, before the pod and possibly its
// volume go away: the pod does not become ready again, so only loopback
// clients may drain (a kubelet exec hook or kubectl port-forward) and one
// on the network cannot take a pod out of service.
func (s *Sidecar) serveDrain(w http.ResponseWriter, r *http.Request) {
	if !loopback(r.RemoteAddr) {
		http.Error(w, "drain is accepted from loopback only (a preStop exec hook, kubectl port-forward)", http.StatusForbidden)
		return
	}
	timeout := drainDefaultTimeout
	if v := r.URL.Query().Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			http.Error(w, fmt.Sprintf("timeout %q: want a positive Go duration such as 90s", v), http.StatusBadRequest)
			return
		}
		timeout = d
	}
	// The server's write_timeout would cut a drain's answer short; it is
	// bounded by the timeout instead.
	if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(timeout + 10*time.Second)); err != nil {
		s.log.Debug("drain: the write deadline stays", "err", err)
	}
	start := s.now()
	if !s.draining.Swap(true) {
		s.log.Info("draining: refusing new events until the queue is delivered", "timeout", timeout)
	}
	res := s.waitDrained(r.Context(), timeout)
	res.Waited = s.now().Sub(start).Round(time.Millisecond).String()
	code := http.StatusOK
	if res.Drained {
		s.log.Info("drained: every output has delivered the queue", "waited", res.Waited)
	} else {
		code = http.StatusServiceUnavailable
		s.log.Warn("drain ended with events still queued", "pending", res.Pending, "waited", res.Waited)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(res)
}

// waitDrained polls the outputs' cursors until nothing is pending, ctx
// ends or timeout passes, and returns what is left.
func (s *Sidecar) waitDrained(ctx context.Context, timeout time.Duration) DrainResult {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		if res := s.pending(); res.Drained {
			return res
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return s.pending()
		case <-deadline.C:
			return s.pending()
		}
	}
}

// pending reads every output's count of undelivered events.
func (s *Sidecar) pending() DrainResult {
	st := s.queue.Stats()
	res := DrainResult{Drained: true, Pending: make(map[string]uint64, len(st.Consumers))}
	for name, c := range st.Consumers {
		res.Pending[name] = c.Pending
		if c.Pending > 0 {
			res.Drained = false
		}
	}
	return res
}

func loopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
