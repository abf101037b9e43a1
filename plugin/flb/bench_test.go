package flb

import (
	"context"
	"testing"

	"github.com/auditpipe/auditpipe"
	tbuiltin "github.com/auditpipe/auditpipe/transformers/builtin"
)

// BenchmarkFlushPath measures what a flush costs without the network: a
// chunk of Alertmanager-alert-sized records (one alert each) decoded,
// transformed, enriched and encoded as the outputs encode events. records/s
// is per core: run with -cpu 1.
func BenchmarkFlushPath(b *testing.B) {
	am := payload(b, "alertmanager-audit.json").(map[string]any)
	alerts := am["alerts"].([]any)
	const perChunk = 100
	var chunk []byte
	for i := range perChunk {
		one := map[string]any{}
		for k, v := range am {
			one[k] = v
		}
		one["alerts"] = []any{alerts[i%len(alerts)]}
		chunk = appendRecord(b, chunk, v2, eventTime, map[string]any{}, one)
	}
	reg, err := tbuiltin.NewRegistry(tbuiltin.Config{})
	if err != nil {
		b.Fatal(err)
	}
	tr, _ := reg.Get("alertmanager")
	in := &Instance{cfg: &Config{}, tr: tr}
	ctx := context.Background()
	var buf []byte
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		dec := NewDecoder(chunk)
		var rec Record
		var events []auditpipe.Event
		for {
			more, err := dec.Next(&rec)
			if err != nil {
				b.Fatal(err)
			}
			if !more {
				break
			}
			evs, reason, err := in.transform(ctx, "bench", "bench", &rec)
			if err != nil || reason != "" {
				b.Fatal(err, reason)
			}
			events = append(events, evs...)
		}
		buf = buf[:0]
		for i := range events {
			buf = events[i].AppendJSON(buf)
		}
	}
	b.ReportMetric(float64(b.N*perChunk)/b.Elapsed().Seconds(), "records/s")
}
