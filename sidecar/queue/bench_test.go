package queue

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
)

// BenchmarkAppend: 64 appenders (as in the sidecar's performance target)
// of one 1 KB record each, fsync on and off.
func BenchmarkAppend(b *testing.B) {
	for _, fsync := range []bool{true, false} {
		name := "fsync=on"
		if !fsync {
			name = "fsync=off"
		}
		b.Run(name, func(b *testing.B) {
			q, err := Open(Config{Dir: b.TempDir(), Fsync: &fsync, MaxBytes: 64 << 30}, []string{"out"}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			ctx := context.Background()
			var id atomic.Int64
			b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
			b.SetBytes(1024)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				rec := [][]byte{benchRecord(int(id.Add(1)))}
				for pb.Next() {
					if _, err := q.Append(ctx, rec); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
			if fsync {
				b.ReportMetric(float64(b.N)/float64(q.syncs.Load()), "appends/fsync")
			}
		})
	}
}

// BenchmarkRead: one consumer reading 1 KB records in batches of 500 from
// a queue of 64 MiB, rewinding at the end (reads come from the page cache).
func BenchmarkRead(b *testing.B) {
	f := false
	q, err := Open(Config{Dir: b.TempDir(), Fsync: &f}, []string{"out"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	group := make([][]byte, 1024)
	for i := range group {
		group[i] = benchRecord(i)
	}
	for range 64 {
		if _, err := q.Append(ctx, group); err != nil {
			b.Fatal(err)
		}
	}
	r, _ := q.Reader("out")
	head := q.Stats().Head
	b.SetBytes(1024)
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; {
		recs, err := r.Next(ctx, min(500, b.N-n), 0, 0)
		if err != nil {
			b.Fatal(err)
		}
		n += len(recs)
		if recs[len(recs)-1].Seq == head {
			r.Rewind()
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkOpen: recovery of an 8 MiB segment of 1 KB records (from the
// page cache), which Open verifies record by record.
func BenchmarkOpen(b *testing.B) {
	f := false
	dir := b.TempDir()
	q, err := Open(Config{Dir: dir, Fsync: &f}, []string{"out"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	group := make([][]byte, 1024)
	for i := range group {
		group[i] = benchRecord(i)
	}
	for range 8 {
		if _, err := q.Append(context.Background(), group); err != nil {
			b.Fatal(err)
		}
	}
	q.Close()
	b.SetBytes(8 << 20)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		q, err := Open(Config{Dir: dir, Fsync: &f}, []string{"out"}, nil)
		if err != nil {
			b.Fatal(err)
		}
		q.Close()
	}
}
