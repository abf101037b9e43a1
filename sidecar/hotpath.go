package sidecar

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// sourceMetrics are a source's metric handles for what every accepted
// request records, resolved once: WithLabelValues validates and hashes
// its labels and takes a lock on every call.
type sourceMetrics struct {
	received prometheus.Counter
	ok       prometheus.Observer // latency of the 200 answers
	m        *metrics
	name     string
}

func (m *metrics) forSource(name string) *sourceMetrics {
	return &sourceMetrics{
		received: m.received.WithLabelValues(name),
		ok:       m.latency.WithLabelValues(name, "200"),
		m:        m,
		name:     name,
	}
}

// observe records a request's latency under its status.
func (sm *sourceMetrics) observe(code int, seconds float64) {
	if code == http.StatusOK {
		sm.ok.Observe(seconds)
		return
	}
	sm.m.latency.WithLabelValues(sm.name, strconv.Itoa(code)).Observe(seconds)
}

// jsonContentType is the Content-Type of every answer, one slice for all
// of them (Header.Set allocates one each); the writers only read it.
var jsonContentType = []string{"application/json"}

// writeAccepted writes the answer of a request whose events were all
// taken, {"accepted":n}, byte for byte what writeAnswer's json.Encoder
// writes, without its reflection and allocations.
func writeAccepted(w http.ResponseWriter, n int) int {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusOK)
	var b [48]byte
	out := append(b[:0], `{"accepted":`...)
	out = strconv.AppendInt(out, int64(n), 10)
	out = append(out, "}\n"...)
	w.Write(out)
	return http.StatusOK
}
