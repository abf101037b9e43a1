package fluentbithost_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fbh "github.com/auditpipe/auditpipe/testenv/fluentbithost"
	"github.com/auditpipe/auditpipe/testenv/kafkatest"
)

// kafkaChunk is one Fluent Bit chunk of Alertmanager webhook records (six
// alerts each) and the number of events it makes.
func kafkaChunk(t testing.TB, records int) ([]byte, int) {
	path := payloadPath(t, "alertmanager-audit.json")
	perRecord := len(expectedIDs(t, path, "auto", "e2e"))
	body := payloadRecords(t, path)[0]
	bodies := make([][]byte, records)
	for i := range bodies {
		bodies[i] = body
	}
	rs := make([]fbh.Record, records)
	for i := range rs {
		rs[i] = fbh.Record{Time: ts, Body: bodies[i]}
	}
	return fbh.Chunk(fbh.V2, fbh.EventTime, rs...), records * perRecord
}

func startKafka(t testing.TB) *kafkatest.Broker {
	b, err := kafkatest.Start(kafkatest.Config{Topics: []string{"audit"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func kafkaInstance(t testing.TB, b *kafkatest.Broker) fbh.Instance {
	return fbh.Instance{Name: "kafka", Props: map[string]string{
		"Output": "kafka", "Kafka_Brokers": strings.Join(b.Addrs(), ","), "Kafka_Topic": "audit",
		"DLQ_Dir": filepath.Join(t.TempDir(), "dlq"),
	}}
}

// End to end through the host into the Kafka peer: every event of every
// chunk is in the topic, and the rate is logged (no assertion on it).
func TestPluginKafkaEndToEnd(t *testing.T) {
	bin, so := needPlugin(t)
	broker := startKafka(t)
	h := fbh.Start(t, bin, so, kafkaInstance(t, broker))
	chunk, events := kafkaChunk(t, 50)
	const chunks = 20
	start := time.Now()
	for range chunks {
		mustFlush(t, h, "kafka", "am", chunk, fbh.FLBOK)
	}
	elapsed := time.Since(start)
	if got := broker.Count("audit"); got != int64(chunks*events) {
		t.Fatalf("topic holds %d records, want %d", got, chunks*events)
	}
	t.Logf("%d records (%d events) through the host into Kafka in %v: %.0f records/s, %.0f events/s",
		chunks*50, chunks*events, elapsed, float64(chunks*50)/elapsed.Seconds(), float64(chunks*events)/elapsed.Seconds())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs, err := broker.Records(ctx, "audit")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 || !strings.Contains(string(recs[0].Value), `"schema_version"`) {
		t.Errorf("record value is not an event: %.200s", recs[0].Value)
	}
}

// BenchmarkHostKafka: go test -run '^$' -bench HostKafka ./testenv/fluentbithost/
// One op is one flush of a 100-record chunk through the host (its own
// process: the plugin's Go runtime is not the benchmark's) into kafkatest.
func BenchmarkHostKafka(b *testing.B) {
	bin, so := needPlugin(b)
	broker := startKafka(b)
	h := fbh.Start(b, bin, so, kafkaInstance(b, broker))
	const records = 100
	chunk, events := kafkaChunk(b, records)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		code, err := h.Flush("kafka", "am", chunk)
		if err != nil || code != fbh.FLBOK {
			b.Fatalf("flush = %d, %v", code, err)
		}
	}
	b.ReportMetric(float64(b.N*records)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(b.N*events)/b.Elapsed().Seconds(), "events/s")
}
