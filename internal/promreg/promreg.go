// Package promreg registers Prometheus collectors so that a second
// sidecar built on the same registry (tests, a reload) reuses the first
// one's collectors instead of failing.
package promreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg and returns it, or returns the collector
// of the same kind already registered under its descriptors.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A name clash with a different kind of collector is a programming
		// error of the binary, not a runtime condition.
		panic(err)
	}
	return c
}
