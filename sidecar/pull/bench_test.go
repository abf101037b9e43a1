package pull_test

import (
	"context"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/sidecar/pull"
)

// BenchmarkPoll is one poll against the in-test yoq over loopback, with a
// full page of 500: "unchanged" finds nothing new (the idle cost of a
// poll), "50 new" queues 50 entries per poll (written before the timer
// runs on). events/s counts queued events.
func BenchmarkPoll(b *testing.B) {
	for _, tc := range []struct {
		name  string
		fresh int
	}{{"unchanged", 0}, {"50 new", 50}} {
		b.Run(tc.name, func(b *testing.B) {
			y := newYoq(b, false)
			y.append(seq(1767312000, 500)...)
			queued := 0
			p, err := pull.New(pull.Config{URL: y.url(), Limit: 500, BearerToken: token, Timeout: 10 * time.Second}, pull.Options{
				Source:      "yoq",
				Transformer: yoqTransformer(b),
				Enqueue: func(_ context.Context, evs []auditpipe.Event) error {
					queued += len(evs)
					return nil
				},
				StateDir: b.TempDir(),
			})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if _, err := p.Poll(ctx); err != nil {
				b.Fatal(err)
			}
			queued = 0
			next := int64(1767312500)
			b.ReportAllocs()
			for b.Loop() {
				if tc.fresh > 0 {
					b.StopTimer()
					y.append(seq(next, tc.fresh)...)
					next += int64(tc.fresh)
					b.StartTimer()
				}
				res, err := p.Poll(ctx)
				if err != nil || res.New != tc.fresh {
					b.Fatalf("poll: %+v, %v", res, err)
				}
			}
			b.ReportMetric(float64(queued)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
