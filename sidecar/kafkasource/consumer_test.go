package kafkasource_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/internal/ingest"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/sidecar/kafkasource"
	"github.com/auditpipe/auditpipe/testenv/kafkatest"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/formats"
)

// sink is the queue and the dead-letter store of a test: it keeps what it
// is given, and refuses while down is set.
type sink struct {
	mu      sync.Mutex
	events  map[string]int // event id -> times queued
	letters []outputs.DeadLetter
	appends int
	down    error
}

func newSink() *sink { return &sink{events: map[string]int{}} }

func (s *sink) Enqueue(_ context.Context, evs []auditpipe.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down != nil {
		return s.down
	}
	s.appends++
	for _, e := range evs {
		s.events[e.ID]++
	}
	return nil
}

func (s *sink) DeadLetter(_ context.Context, ls []outputs.DeadLetter) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.letters = append(s.letters, ls...)
	return nil
}

func (s *sink) counts() (distinct, letters int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events), len(s.letters)
}

// unstable is a transformer that is unavailable while off is set.
type unstable struct {
	transformers.Transformer
	mu  sync.Mutex
	off bool
	hit int
}

func (u *unstable) Transform(ctx context.Context, in transformers.Input, res *transformers.Result) error {
	u.mu.Lock()
	off := u.off
	if off {
		u.hit++
	}
	u.mu.Unlock()
	if off {
		return fmt.Errorf("%w: test", transformers.ErrUnavailable)
	}
	return u.Transformer.Transform(ctx, in, res)
}

func (u *unstable) set(off bool) {
	u.mu.Lock()
	u.off = off
	u.mu.Unlock()
}

func (u *unstable) hits() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hit
}

func appTransformer(t testing.TB) transformers.Transformer {
	t.Helper()
	reg, err := formats.NewRegistry(formats.Config{Common: formats.Common{Limits: transformers.Limits{}.WithDefaults()}})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := reg.Get("app")
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func entry(i int) []byte {
	return fmt.Appendf(nil, `{"recorded_at": %d, "actor": "api-token", "action": "app_apply", "target": "app-%d", "outcome": "ok"}`, 1767312000+i, i)
}

func produce(t testing.TB, b *kafkatest.Broker, recs ...*kgo.Record) {
	t.Helper()
	cl, err := b.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func startConsumer(t *testing.T, cfg kafkasource.Config, tr transformers.Transformer, s *sink) (*kafkasource.Consumer, *kafkasource.Metrics) {
	t.Helper()
	stage, err := ingest.New(ingest.Config{Transformer: tr})
	if err != nil {
		t.Fatal(err)
	}
	m := kafkasource.NewMetrics(nil)
	c, err := kafkasource.New(cfg, kafkasource.Options{Source: "raw", Stage: stage, Enqueue: s.Enqueue, DeadLetters: s, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	t.Cleanup(func() {
		c.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return c, m
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s never happened", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// committed asks the broker for the group's committed offsets of topic.
func committed(t *testing.T, b *kafkatest.Broker, group, topic string, parts int) []int64 {
	t.Helper()
	cl, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = topic
	for p := range parts {
		rt.Partitions = append(rt.Partitions, int32(p))
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int64, parts)
	for _, tt := range resp.Topics {
		for _, p := range tt.Partitions {
			out[p.Partition] = p.Offset
		}
	}
	return out
}

func testConfig(b *kafkatest.Broker, group string) kafkasource.Config {
	return kafkasource.Config{Brokers: b.Addrs(), Topics: []string{"raw"}, GroupID: group,
		SessionTimeout: 6 * time.Second, RebalanceTimeout: 10 * time.Second, CommitInterval: 100 * time.Millisecond}
}

// A poison message is dead-lettered with its headers and position, its
// offset is committed, and the messages after it in its partition are
// queued.
func TestPoisonMessageDeadLettered(t *testing.T) {
	b, err := kafkatest.Start(kafkatest.Config{Topics: []string{"raw"}, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var recs []*kgo.Record
	for i := range 20 {
		recs = append(recs, &kgo.Record{Topic: "raw", Partition: int32(i % 2), Value: entry(i)})
		if i == 6 {
			recs = append(recs, &kgo.Record{Topic: "raw", Partition: 0, Value: []byte("not json"),
				Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t-1")}}})
		}
	}
	produce(t, b, recs...)
	s := newSink()
	c, m := startConsumer(t, testConfig(b, "g-poison"), appTransformer(t), s)
	waitFor(t, "20 events and a dead letter", func() bool { d, l := s.counts(); return d == 20 && l == 1 })
	waitFor(t, "offsets committed to the end", func() bool {
		got := committed(t, b, "g-poison", "raw", 2)
		return got[0] == 11 && got[1] == 10
	})
	c.Close()
	l := s.letters[0]
	if l.Kafka == nil || l.Kafka.Topic != "raw" || l.Kafka.Partition != 0 || l.Kafka.Offset != 4 {
		t.Errorf("dead letter position %+v, want raw[0]@4", l.Kafka)
	}
	if string(l.Payload) != "not json" || l.Source != "raw" || l.Headers["trace"][0] != "t-1" || l.Error == "" {
		t.Errorf("dead letter %+v", l)
	}
	if got := testutilValue(m.Messages.WithLabelValues("raw", "dead_lettered")); got != 1 {
		t.Errorf("dead_lettered messages %v, want 1", got)
	}
	if got := testutilValue(m.Messages.WithLabelValues("raw", "queued")); got != 20 {
		t.Errorf("queued messages %v, want 20", got)
	}
}

// A transformer that is unavailable stops its partitions without
// committing; once it is back, everything is queued.
func TestUnavailableTransformerWaits(t *testing.T) {
	b, err := kafkatest.Start(kafkatest.Config{Topics: []string{"raw"}, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tr := &unstable{Transformer: appTransformer(t)}
	tr.set(true)
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, &kgo.Record{Topic: "raw", Partition: int32(i % 2), Value: entry(i)})
	}
	produce(t, b, recs...)
	s := newSink()
	_, m := startConsumer(t, testConfig(b, "g-down"), tr, s)
	waitFor(t, "several tries", func() bool { return tr.hits() >= 6 })
	if d, _ := s.counts(); d != 0 {
		t.Fatalf("%d events queued while the transformer was down", d)
	}
	if got := committed(t, b, "g-down", "raw", 2); got[0] > 0 || got[1] > 0 {
		t.Fatalf("offsets %v committed while the transformer was down", got)
	}
	tr.set(false)
	waitFor(t, "10 events", func() bool { d, _ := s.counts(); return d == 10 })
	waitFor(t, "offsets committed", func() bool { got := committed(t, b, "g-down", "raw", 2); return got[0] == 5 && got[1] == 5 })
	if got := testutilValue(m.Retries.WithLabelValues("raw", "transformer_unavailable")); got < 2 {
		t.Errorf("retries %v, want some", got)
	}
}

// A queue that refuses stops the partition too.
func TestQueueRefusalWaits(t *testing.T) {
	b, err := kafkatest.Start(kafkatest.Config{Topics: []string{"raw"}, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	produce(t, b, &kgo.Record{Topic: "raw", Value: entry(1)}, &kgo.Record{Topic: "raw", Value: entry(2)})
	s := newSink()
	s.down = fmt.Errorf("disk full")
	_, m := startConsumer(t, testConfig(b, "g-queue"), appTransformer(t), s)
	waitFor(t, "a retry", func() bool { return testutilValue(m.Retries.WithLabelValues("raw", "queue")) >= 2 })
	s.mu.Lock()
	s.down = nil
	s.mu.Unlock()
	waitFor(t, "2 events", func() bool { d, _ := s.counts(); return d == 2 })
	waitFor(t, "offset committed", func() bool { return committed(t, b, "g-queue", "raw", 1)[0] == 2 })
}

// Binary CloudEvents: the attributes are ce_* headers (the Kafka
// binding) or ce-* (as over HTTP), the value is the data.
func TestBinaryCloudEventsFromHeaders(t *testing.T) {
	b, err := kafkatest.Start(kafkatest.Config{Topics: []string{"raw"}, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	hdr := func(sep string, id string) []kgo.RecordHeader {
		return []kgo.RecordHeader{
			{Key: "ce" + sep + "specversion", Value: []byte("1.0")},
			{Key: "ce" + sep + "id", Value: []byte(id)},
			{Key: "ce" + sep + "source", Value: []byte("//teabar/billing")},
			{Key: "ce" + sep + "type", Value: []byte("com.teabar.invoice.voided")},
			{Key: "ce" + sep + "time", Value: []byte("2026-01-02T03:04:05Z")},
			{Key: "content-type", Value: []byte("application/json")},
		}
	}
	data := []byte(`{"actor": "alice", "action": "invoice.void", "target": "inv-1"}`)
	produce(t, b, &kgo.Record{Topic: "raw", Value: data, Headers: hdr("_", "ce-1")},
		&kgo.Record{Topic: "raw", Value: data, Headers: hdr("-", "ce-2")})
	s := newSink()
	startConsumer(t, testConfig(b, "g-ce"), appTransformer(t), s)
	waitFor(t, "2 events", func() bool { d, l := s.counts(); return d+l == 2 })
	if _, l := s.counts(); l != 0 {
		t.Fatalf("dead letters: %v", s.letters[0].Error)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := kafkasource.Config{Brokers: []string{"k:9092"}, Topics: []string{"raw"}, GroupID: "g"}
	tests := []struct {
		name string
		edit func(*kafkasource.Config)
		want string // "" for valid
	}{
		{"minimal", func(*kafkasource.Config) {}, ""},
		{"no brokers", func(c *kafkasource.Config) { c.Brokers = nil }, "brokers: at least one required"},
		{"bad broker", func(c *kafkasource.Config) { c.Brokers = []string{"k"} }, `brokers[0]: "k" is not host:port`},
		{"no topics", func(c *kafkasource.Config) { c.Topics = nil }, "topics: at least one required"},
		{"bad topic", func(c *kafkasource.Config) { c.Topics = []string{"a b"} }, "topics[0]: topic name"},
		{"dup topic", func(c *kafkasource.Config) { c.Topics = []string{"a", "a"} }, "topics[1]: \"a\" already listed"},
		{"no group", func(c *kafkasource.Config) { c.GroupID = "" }, "group_id: required"},
		{"start offset", func(c *kafkasource.Config) { c.StartOffset = "middle" }, "start_offset: \"middle\" is not"},
		{"short session", func(c *kafkasource.Config) { c.SessionTimeout = time.Second }, "session_timeout: 1s is under 6s"},
		{"negative commit", func(c *kafkasource.Config) { c.CommitInterval = -1 }, "commit_interval: must not be negative"},
		{"short commit", func(c *kafkasource.Config) { c.CommitInterval = 10 * time.Millisecond }, "commit_interval: 10ms is under 100ms"},
		{"rebalance", func(c *kafkasource.Config) { c.SessionTimeout = 60 * time.Second; c.RebalanceTimeout = time.Second }, "rebalance_timeout:"},
		{"fetch sizes", func(c *kafkasource.Config) { c.FetchMaxBytes = 1 << 20; c.FetchMaxPartitionBytes = 2 << 20 }, "fetch_max_partition_bytes: 2097152 exceeds"},
		{"negative batch", func(c *kafkasource.Config) { c.BatchMessages = -1 }, "batch_messages: must not be negative"},
		{"sasl", func(c *kafkasource.Config) { c.SASL.Mechanism = "gssapi" }, `sasl.mechanism: "gssapi" is not`},
		{"sasl password", func(c *kafkasource.Config) { c.SASL.Mechanism = "plain"; c.SASL.Username = "u" }, "sasl.password: required"},
		{"tls", func(c *kafkasource.Config) { c.TLS.CertFile = "x" }, "tls.cert_file and tls.key_file: set both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := c.WithDefaults().Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func testutilValue(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }
