//go:build queuecompare

package queue

// The measurement behind the choice of a log of our own (see doc.go): 64
// concurrent appenders of 1 KB records with fsync on, against bbolt (which
// the OpenTelemetry Collector's persistent queue uses), tidwall/wal and
// this package; CompareConsumed adds one consumer that reads and removes
// records in batches of 500 while the appends run, as the outputs will.
// Not part of make test:
//
//	go test -c -tags queuecompare -o /tmp/qc.test ./sidecar/queue/
//	/tmp/qc.test -test.run '^$' -test.bench 'Compare/queue$' -test.benchtime 20000x
//
// peak-rss-MiB is the process's high-water mark, so run each contender in
// a process of its own, as above; disk-MiB is what is on disk at the end.

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

const (
	compareClients = 64
	consumeBatch   = 500
)

// contender is one store driven the way the sidecar would drive it.
type contender struct {
	append func(rec []byte) error
	// consume reads and removes up to consumeBatch of the oldest
	// records, returning how many (0 when there are none yet).
	consume func(ctx context.Context) (int, error)
	close   func()
}

var contenders = []struct {
	name string
	open func(b *testing.B, dir string) contender
}{
	{"bbolt-update", func(b *testing.B, dir string) contender { return openBolt(b, dir, false, 0) }},
	{"bbolt-batch", func(b *testing.B, dir string) contender { return openBolt(b, dir, true, 0) }},
	// Batch runs when MaxBatchSize (1000) calls are waiting or after
	// MaxBatchDelay (10 ms); 64 clients never make 1000, so tuned for them:
	{"bbolt-batch-tuned", func(b *testing.B, dir string) contender { return openBolt(b, dir, true, time.Millisecond) }},
	{"tidwall-wal", func(b *testing.B, dir string) contender { return openTidwall(b, dir, false) }},
	{"tidwall-wal+groupcommit", func(b *testing.B, dir string) contender { return openTidwall(b, dir, true) }},
	{"queue", openOurs},
}

func BenchmarkCompare(b *testing.B) {
	for _, c := range contenders {
		b.Run(c.name, func(b *testing.B) { runLoad(b, c.open, false) })
	}
}

func BenchmarkCompareConsumed(b *testing.B) {
	for _, c := range contenders {
		b.Run(c.name, func(b *testing.B) { runLoad(b, c.open, true) })
	}
}

// BenchmarkCompareBacklog appends b.N records with no consumer (an output
// that is down), then drains them: what a backlog costs in memory and
// disk, during and after.
func BenchmarkCompareBacklog(b *testing.B) {
	for _, c := range contenders {
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			ct := c.open(b, dir)
			defer ct.close()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for g := range compareClients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rec := benchRecord(g)
					for next.Add(1) <= int64(b.N) {
						if err := ct.append(rec); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(dirMiB(dir), "full-disk-MiB")
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			for left := b.N; left > 1; { // tidwall/wal keeps its last entry
				n, err := ct.consume(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if n == 0 {
					break
				}
				left -= n
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "drained/s")
			b.ReportMetric(dirMiB(dir), "drained-disk-MiB")
			b.ReportMetric(peakRSSMiB(), "peak-rss-MiB")
		})
	}
}

// runLoad has compareClients goroutines append b.N records in all, with
// or without a consumer, and reports throughput and latency percentiles.
func runLoad(b *testing.B, open func(*testing.B, string) contender, consume bool) {
	dir := b.TempDir()
	c := open(b, dir)
	defer c.close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var consumed atomic.Int64
	var cwg sync.WaitGroup
	if consume {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			for ctx.Err() == nil {
				n, err := c.consume(ctx)
				if err != nil && ctx.Err() == nil {
					b.Error(err)
					return
				}
				consumed.Add(int64(n))
				if n == 0 {
					select { // the stores other than ours cannot wait for data
					case <-ctx.Done():
					case <-time.After(time.Millisecond):
					}
				}
			}
		}()
	}

	var next atomic.Int64
	lat := make([][]time.Duration, compareClients)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for g := range compareClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := benchRecord(g)
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := c.append(rec); err != nil {
					b.Error(err)
					return
				}
				lat[g] = append(lat[g], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	cwg.Wait()

	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[int(p*float64(len(all)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(dirMiB(dir), "disk-MiB")
	b.ReportMetric(peakRSSMiB(), "peak-rss-MiB")
	if consume {
		b.ReportMetric(100*float64(consumed.Load())/float64(b.N), "consumed-%")
	}
}

func dirMiB(dir string) float64 {
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

func openBolt(b *testing.B, dir string, batch bool, delay time.Duration) contender {
	db, err := bolt.Open(filepath.Join(dir, "queue.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
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
	var sink int
	return contender{
		append: func(rec []byte) error {
			return run(func(tx *bolt.Tx) error {
				bk := tx.Bucket(bucket)
				seq, err := bk.NextSequence()
				if err != nil {
					return err
				}
				return bk.Put(binary.BigEndian.AppendUint64(nil, seq), rec)
			})
		},
		consume: func(context.Context) (int, error) {
			n := 0
			err := db.Update(func(tx *bolt.Tx) error {
				bk := tx.Bucket(bucket)
				var keys [][]byte
				c := bk.Cursor()
				for k, v := c.First(); k != nil && len(keys) < consumeBatch; k, v = c.Next() {
					sink += len(v)
					keys = append(keys, slices.Clone(k))
				}
				for _, k := range keys {
					if err := bk.Delete(k); err != nil {
						return err
					}
				}
				n = len(keys)
				return nil
			})
			return n, err
		},
		close: func() { db.Close() },
	}
}

// openTidwall drives tidwall/wal with a Write (and fsync) per append, or
// with the group commit it lacks added by hand: one goroutine gathers what
// is pending into a wal.Batch (one write, one fsync).
func openTidwall(b *testing.B, dir string, grouped bool) contender {
	l, err := wal.Open(dir, nil) // NoSync false: fsync after every write
	if err != nil {
		b.Fatal(err)
	}
	consume := func(context.Context) (int, error) {
		first, err := l.FirstIndex()
		if err != nil {
			return 0, err
		}
		last, err := l.LastIndex()
		if err != nil || last <= first {
			return 0, err
		}
		// TruncateFront cannot remove the last entry.
		n := min(consumeBatch, last-first)
		for i := first; i < first+n; i++ {
			if _, err := l.Read(i); err != nil {
				return 0, err
			}
		}
		return int(n), l.TruncateFront(first + n)
	}
	if !grouped {
		// Indexes must be consecutive, so appenders take turns.
		var mu sync.Mutex
		var last uint64
		return contender{
			append: func(rec []byte) error {
				mu.Lock()
				defer mu.Unlock()
				if err := l.Write(last+1, rec); err != nil {
					return err
				}
				last++
				return nil
			},
			consume: consume,
			close:   func() { l.Close() },
		}
	}
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
	return contender{
		append: func(rec []byte) error {
			r := req{rec: rec, done: make(chan error, 1)}
			mu.Lock()
			pending = append(pending, r)
			mu.Unlock()
			select {
			case wake <- struct{}{}:
			default:
			}
			return <-r.done
		},
		consume: consume,
		close: func() {
			close(stop)
			wg.Wait()
			l.Close()
		},
	}
}

func openOurs(b *testing.B, dir string) contender {
	q, err := Open(Config{Dir: dir}, []string{"out"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	r, _ := q.Reader("out")
	ctx := context.Background()
	return contender{
		append: func(rec []byte) error {
			_, err := q.Append(ctx, [][]byte{rec})
			return err
		},
		consume: func(ctx context.Context) (int, error) {
			recs, err := r.Next(ctx, consumeBatch, 0, 0)
			if err != nil || len(recs) == 0 {
				return 0, err
			}
			return len(recs), r.Ack(recs[len(recs)-1].Seq)
		},
		close: func() {
			b.ReportMetric(float64(q.Stats().Head)/float64(q.syncs.Load()), "appends/fsync")
			q.Close()
		},
	}
}
