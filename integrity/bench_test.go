package integrity_test

import (
	"bytes"
	"testing"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/integrity"
)

// BenchmarkSeal is the cost of sealing per event, in batches of 100 (the
// sidecar's delivery batches are larger): batch mode signs once per
// batch, every_event signs each.
func BenchmarkSeal(b *testing.B) {
	priv, _ := key(b, 1)
	for _, mode := range []integrity.Mode{integrity.SignBatch, integrity.SignEveryEvent} {
		b.Run(string(mode), func(b *testing.B) {
			s, _ := integrity.NewSealer(integrity.SealerConfig{Stream: "out/gw-0", Key: priv, Mode: mode})
			evs := events(100)
			var st integrity.State
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if st, err = s.Seal(st, evs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs))/1e3, "µs/event")
		})
	}
}

// BenchmarkVerify reads NDJSON and verifies it: events/s on one core is
// the figure the issue sets (200,000).
func BenchmarkVerify(b *testing.B) {
	priv, pub := key(b, 1)
	for _, mode := range []integrity.Mode{integrity.SignBatch, integrity.SignEveryEvent} {
		b.Run(string(mode), func(b *testing.B) {
			const n = 10000
			data := bytes.Join(seal(b, priv, mode, events(n), 500), nil)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				v, _ := integrity.NewVerifier(pub)
				if err := v.ReadNDJSON(bytes.NewReader(data), "bench"); err != nil {
					b.Fatal(err)
				}
				if r := v.Report(); !r.OK {
					b.Fatal("does not verify")
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkCanonical is the canonical encoding alone, the part of the
// hash's cost that is not SHA-256.
func BenchmarkCanonical(b *testing.B) {
	ev := events(1)[0]
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = integrity.AppendCanonical(buf[:0], &ev)
	}
	_ = auditpipe.Event{}
}
