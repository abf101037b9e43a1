//go:build queuecompare

package queue

// The measurement behind the choice of a hand-written log (see doc.go):
// 64 concurrent appenders of 1 KB records with fsync on, against bbolt (as
// the OpenTelemetry Collector's persistent queue uses it), tidwall/wal and
// this package. Not part of make test:
//
//	go test -tags queuecompare -run '^$' -bench Compare -benchtime 20000x ./sidecar/queue/
//
// peak-rss-MiB is the process's high-water mark, meaningful when each
// contender runs in its own process (-bench 'Compare/queue$' and so on).

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/wal"
	bolt "go.etcd.io/bbolt"
)

const compareClients = 64

// runLoad has compareClients goroutines call appendOne b.N times in all
// and reports throughput and latency percentiles.
func runLoad(b *testing.B, dir string, appendOne func(rec []byte) error) {
	b.Helper()
	var next atomic.Int64
	lat := make([][]time.Duration, compareClients)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := range compareClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := benchRecord(c)
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := appendOne(rec); err != nil {
					b.Error(err)
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[int(p*float64(len(all)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(dirMiB(b, dir), "disk-MiB")
	b.ReportMetric(peakRSSMiB(), "peak-rss-MiB")
}

func peakRSSMiB() float64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func dirMiB(b *testing.B, dir string) float64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return float64(n) / (1 << 20)
}

func BenchmarkCompare(b *testing.B) {
	b.Run("bbolt-update", func(b *testing.B) { benchBolt(b, false, 0) })
	b.Run("bbolt-batch", func(b *testing.B) { benchBolt(b, true, 0) })
	// Batch waits for MaxBatchSize (1000) calls or MaxBatchDelay (10 ms);
	// 64 clients never fill 1000, so tuned for them:
	b.Run("bbolt-batch-tuned", func(b *testing.B) { benchBolt(b, true, time.Millisecond) })
	b.Run("tidwall-wal", benchTidwall)
	b.Run("tidwall-wal+groupcommit", benchTidwallGrouped)
	b.Run("queue", benchQueue)
}

func benchBolt(b *testing.B, batch bool, delay time.Duration) {
	dir := b.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "queue.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if delay > 0 {
		db.MaxBatchDelay = delay
		db.MaxBatchSize = compareClients
	}
	bucket := []byte("q")
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	run := db.Update
	if batch {
		run = db.Batch
	}
	runLoad(b, dir, func(rec []byte) error {
		return run(func(tx *bolt.Tx) error {
			bk := tx.Bucket(bucket)
			seq, err := bk.NextSequence()
			if err != nil {
				return err
			}
			return bk.Put(binary.BigEndian.AppendUint64(nil, seq), rec)
		})
	})
}

func benchTidwall(b *testing.B) {
	dir := b.TempDir()
	l, err := wal.Open(dir, nil) // NoSync false: fsync after every write
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	// Indexes must be consecutive, so appenders take turns.
	var mu sync.Mutex
	var last uint64
	runLoad(b, dir, func(rec []byte) error {
		mu.Lock()
		defer mu.Unlock()
		if err := l.Write(last+1, rec); err != nil {
			return err
		}
		last++
		return nil
	})
}

// benchTidwallGrouped adds by hand the group commit tidwall/wal lacks: one
// goroutine gathers what is pending into a wal.Batch (one write, one fsync).
func benchTidwallGrouped(b *testing.B) {
	dir := b.TempDir()
	l, err := wal.Open(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	type req struct {
		rec  []byte
		done chan error
	}
	var mu sync.Mutex
	var pending []req
	wake := make(chan struct{}, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var last uint64
		var batch wal.Batch
		for {
			select {
			case <-wake:
			case <-stop:
				return
			}
			mu.Lock()
			group := pending
			pending = nil
			mu.Unlock()
			batch.Clear()
			for _, r := range group {
				last++
				batch.Write(last, r.rec)
			}
			err := l.WriteBatch(&batch)
			for _, r := range group {
				r.done <- err
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	runLoad(b, dir, func(rec []byte) error {
		r := req{rec: rec, done: make(chan error, 1)}
		mu.Lock()
		pending = append(pending, r)
		mu.Unlock()
		select {
		case wake <- struct{}{}:
		default:
		}
		return <-r.done
	})
}

func benchQueue(b *testing.B) {
	dir := b.TempDir()
	q, err := Open(Config{Dir: dir}, []string{"out"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	runLoad(b, dir, func(rec []byte) error {
		_, err := q.Append(ctx, [][]byte{rec})
		return err
	})
	b.ReportMetric(float64(b.N)/float64(q.syncs.Load()), "appends/fsync")
}
