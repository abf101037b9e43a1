package flb

import (
	"context"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/transformers/formats"
)

// BenchmarkFlushPath measures what a flush costs without the network: a
// chunk of Alertmanager-alert-sized records (one alert each) read as
// Instance.Flush reads them (decoded, transformed, enriched), then encoded
// as the outputs encode events. records/s is per core: run with -cpu 1.
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
	reg, err := formats.NewRegistry(formats.Config{})
	if err != nil {
		b.Fatal(err)
	}
	tr, _ := reg.Get("alertmanager")
	in, err := newInstance(&Config{}, nil, tr, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var buf []byte
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		bt := in.batches.Get().(*batch)
		if err := in.read(ctx, "bench", chunk, time.Now(), bt); err != nil || len(bt.letters) > 0 || len(bt.res.Events) != perChunk {
			b.Fatal(err, bt.letters, len(bt.res.Events))
		}
		buf = buf[:0]
		for i := range bt.res.Events {
			buf = bt.res.Events[i].AppendJSON(buf)
		}
		in.putBatch(bt)
	}
	b.ReportMetric(float64(b.N*perChunk)/b.Elapsed().Seconds(), "records/s")
}
