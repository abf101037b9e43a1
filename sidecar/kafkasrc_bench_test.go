package sidecar_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditpipe/auditpipe/sidecar"
	"github.com/auditpipe/auditpipe/sidecar/config"
	"github.com/auditpipe/auditpipe/testenv/kafkatest"
)

// BenchmarkKafkaSource measures messages/s from Kafka into the queue
// (fsync'd, as configured by default) for one sidecar and for two in one
// consumer group, each a sidecar.New in this process, with kfake as the
// broker in the same process too: on a small machine all of them share
// its cores, so the 2-vs-1 ratio shows what a second instance gains when
// it has no cores of its own, a floor for a real fleet. Every iteration
// consumes the same pre-produced topic with a new group; the rate is
// taken from the moment the group's partitions are all assigned to the
// moment every message is durable, so joining (and the rebalance a
// second member causes) is not counted. Each
// message is one yoq audit entry (~120 bytes, one event). Run with
// `make bench-kafka`.
func BenchmarkKafkaSource(b *testing.B) {
	const messages, partitions = 200000, 8
	br, err := kafkatest.Start(kafkatest.Config{Topics: []string{"raw"}, Partitions: partitions})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	cl, err := br.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]*kgo.Record, 0, 5000)
	for i := range messages {
		recs = append(recs, &kgo.Record{Topic: "raw", Partition: int32(i % partitions),
			Value: fmt.Appendf(nil, `{"recorded_at": %d, "actor": "api-token", "action": "app_apply", "target": "app-%d", "outcome": "ok"}`, 1767312000+i, i)})
		if len(recs) == cap(recs) {
			if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	cl.Close()
	group := 0
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			var rates []float64
			for b.Loop() {
				group++
				rates = append(rates, consumeAll(b, br.Addrs()[0], fmt.Sprintf("bench-%d", group), n, messages, partitions))
			}
			var sum float64
			for _, r := range rates {
				sum += r
			}
			b.ReportMetric(sum/float64(len(rates)), "msgs/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// consumeAll runs n sidecars in group until they have queued messages,
// and returns the rate once they owned every partition.
func consumeAll(b *testing.B, broker, group string, n, messages, partitions int) float64 {
	b.StopTimer()
	defer b.StartTimer()
	urls := make([]string, n)
	stops := make([]func(), n)
	for i := range n {
		dir := b.TempDir()
		yaml := strings.NewReplacer("${DIR}", dir, "${BROKER}", broker, "${GROUP}", group).Replace(`
data_dir: ${DIR}
server: {listen: "127.0.0.1:0"}
pod_labels: false
sources:
  - name: raw
    format: app
    kafka: {brokers: ["${BROKER}"], topics: [raw], group_id: "${GROUP}", session_timeout: 6s, rebalance_timeout: 10s}
outputs:
  - {name: events, type: file, file: {path: "${DIR}/events.ndjson"}}
`)
		cfg, err := config.Parse([]byte(yaml), func(string) (string, bool) { return "", false })
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		s, err := sidecar.New(ctx, cfg, sidecar.Options{})
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		urls[i] = "http://" + s.Addr().String()
		stops[i] = func() { cancel(); <-done }
	}
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	sum := func(name, match string) float64 {
		var v float64
		for _, u := range urls {
			v += scrape(u, name, match)
		}
		return v
	}
	deadline := time.Now().Add(2 * time.Minute)
	poll := func(what string, cond func() bool) {
		for !cond() {
			if time.Now().After(deadline) {
				b.Fatalf("%s never happened", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	poll("every partition assigned", func() bool {
		if sum("auditpipe_kafka_assigned_partitions", "") != float64(partitions) {
			return false
		}
		for _, u := range urls {
			if scrape(u, "auditpipe_kafka_assigned_partitions", "") == 0 {
				return false
			}
		}
		return true
	})
	// A cooperative rebalance takes more than one round: wait until the
	// assignment has not changed for a while, so the rate is the steady
	// state's and not the handover's.
	for last, since := sum("auditpipe_kafka_rebalances_total", ""), time.Now(); time.Since(since) < time.Second; {
		time.Sleep(50 * time.Millisecond)
		if now := sum("auditpipe_kafka_rebalances_total", ""); now != last {
			last, since = now, time.Now()
		}
	}
	start, before := time.Now(), sum("auditpipe_kafka_messages_total", "")
	if before > float64(messages)*3/4 {
		b.Fatalf("%v of %d messages queued before the group settled: produce more", before, messages)
	}
	poll("every message queued", func() bool { return sum("auditpipe_kafka_messages_total", "") >= float64(messages) })
	return (float64(messages) - before) / time.Since(start).Seconds()
}

// scrape is metric for a benchmark.
func scrape(url, name, match string) float64 {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	return sumSeries(resp, name, match)
}
