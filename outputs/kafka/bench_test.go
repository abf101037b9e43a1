package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/outputs/kafka"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
	"github.com/auditpipe/auditpipe/testenv/kafkatest"
)

const benchBatch = 100

// BenchmarkWrite writes batches of 100 events, one Write at a time, to the
// in-process broker over loopback, with the default configuration (so each
// Write waits for batch_timeout unless its records fill a batch). The
// allocations include the broker's, which runs in the same process.
func BenchmarkWrite(b *testing.B) {
	for _, tt := range []struct {
		name string
		cfg  kafka.Config
	}{
		{"compression=lz4", kafka.Config{}},
		{"compression=none", kafka.Config{Compression: "none"}},
		{"compression=zstd", kafka.Config{Compression: "zstd"}},
		{"batch_timeout=10ms", kafka.Config{BatchTimeout: 10 * time.Millisecond}},
	} {
		b.Run(fmt.Sprintf("batch=%d/%s", benchBatch, tt.name), func(b *testing.B) {
			benchWrite(b, tt.cfg, 1)
		})
	}
}

// BenchmarkWriteParallel writes from 8 goroutines per CPU at once, as
// concurrent engine flushes or Fluent Bit workers do: their records share
// produce requests, so throughput is no longer bound by batch_timeout.
func BenchmarkWriteParallel(b *testing.B) {
	b.Run(fmt.Sprintf("batch=%d", benchBatch), func(b *testing.B) {
		benchWrite(b, kafka.Config{}, 8)
	})
}

func benchWrite(b *testing.B, cfg kafka.Config, parallelism int) {
	br := startBroker(b, kafkatest.Config{Topics: sourceTopics})
	cfg.Brokers = br.Addrs()
	o := newOutput(b, cfg)
	events := outputstest.Events(benchBatch)
	ctx := context.Background()
	if err := o.Write(ctx, events); err != nil { // connections and metadata
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if parallelism == 1 {
		for i := 0; i < b.N; i++ {
			if err := o.Write(ctx, events); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := o.Write(ctx, events); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "events/s")
}
