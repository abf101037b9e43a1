package kafka_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/kafka"
	"github.com/auditpipe/auditpipe/testenv/kafkatest"
)

// sourceTopics are the topics the default template makes of
// outputstest.Events.
var sourceTopics = []string{"audit.spacelift", "audit.alertmanager", "audit.app", "audit.k8s"}

func startBroker(t testing.TB, cfg kafkatest.Config) *kafkatest.Broker {
	t.Helper()
	b, err := kafkatest.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// newOutput makes an output closed at the end of the test. Its metadata
// TTL is short so that topics and brokers that appear mid-test are seen at
// once.
func newOutput(t testing.TB, cfg kafka.Config) *kafka.Output {
	t.Helper()
	if cfg.MetadataTTL == 0 {
		cfg.MetadataTTL = 50 * time.Millisecond
	}
	o, err := kafka.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := o.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return o
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// records returns what topic holds, failing the test on error.
func records(t testing.TB, b *kafkatest.Broker, topic string) []*kgo.Record {
	t.Helper()
	recs, err := b.Records(testCtx(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// keys returns the record keys, sorted.
func keys(recs []*kgo.Record) []string {
	ks := make([]string, len(recs))
	for i, r := range recs {
		ks[i] = string(r.Key)
	}
	slices.Sort(ks)
	return ks
}

func sortedIDs(evs []auditpipe.Event) []string {
	ids := make([]string, len(evs))
	for i := range evs {
		ids[i] = evs[i].ID
	}
	slices.Sort(ids)
	return ids
}

// fastRetry retries at once and forever: tests bound it with their context.
var fastRetry = outputs.RetryConfig{
	InitialInterval: time.Millisecond,
	MaxInterval:     10 * time.Millisecond,
	AttemptTimeout:  10 * time.Second,
}

func deliverer(t testing.TB, o outputs.Output, dlq outputs.DeadLetterer, retry outputs.RetryConfig) *outputs.Deliverer {
	t.Helper()
	d, err := outputs.NewDeliverer(outputs.DelivererConfig{Name: "kafka-test", Output: o, Retry: retry, DeadLetters: dlq})
	if err != nil {
		t.Fatal(err)
	}
	return d
}
