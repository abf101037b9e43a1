package kafka_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/cloudevents"
	"github.com/auditpipe/auditpipe/outputs/kafka"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
	"github.com/auditpipe/auditpipe/testenv/kafkatest"
)

func TestValidate(t *testing.T) {
	ok := kafka.Config{Brokers: []string{"127.0.0.1:9092"}}
	tests := []struct {
		name string
		edit func(*kafka.Config)
		want string // substring of the error; "" for valid
	}{
		{"minimal", func(*kafka.Config) {}, ""},
		{"everything", func(c *kafka.Config) {
			c.Topic = "audit-{source}-{yyyy.MM}"
			c.Compression = "zstd"
			c.SASL = kafka.SASLConfig{Mechanism: "SCRAM-SHA-512", Username: "u", Password: "p"}
			c.TLS.Enabled = true
		}, ""},
		{"no brokers", func(c *kafka.Config) { c.Brokers = nil }, "brokers: at least one required"},
		{"broker without port", func(c *kafka.Config) { c.Brokers = []string{"kafka"} }, `brokers[0]: "kafka" is not host:port`},
		{"bad template", func(c *kafka.Config) { c.Topic = "audit.{nope}" }, "topic: template"},
		{"bad constant topic", func(c *kafka.Config) { c.Topic = "audit events" }, "topic: topic name"},
		{"compression", func(c *kafka.Config) { c.Compression = "brotli" }, `compression: "brotli" is not`},
		{"negative write_timeout", func(c *kafka.Config) { c.WriteTimeout = -1 }, "write_timeout: must not be negative"},
		{"negative batch_timeout", func(c *kafka.Config) { c.BatchTimeout = -1 }, "batch_timeout: must not be negative"},
		{"negative batch_size", func(c *kafka.Config) { c.BatchSize = -1 }, "batch_size: must not be negative"},
		{"negative batch_bytes", func(c *kafka.Config) { c.BatchBytes = -1 }, "batch_bytes: must not be negative"},
		{"sasl mechanism", func(c *kafka.Config) { c.SASL = kafka.SASLConfig{Mechanism: "gssapi", Username: "u", Password: "p"} }, `sasl.mechanism: "gssapi" is not`},
		{"sasl no password", func(c *kafka.Config) { c.SASL = kafka.SASLConfig{Mechanism: "plain", Username: "u"} }, "sasl.password: required"},
		{"sasl no mechanism", func(c *kafka.Config) { c.SASL = kafka.SASLConfig{Username: "u"} }, "sasl.mechanism: required"},
		{"tls half a key pair", func(c *kafka.Config) { c.TLS.CertFile = "c.pem" }, "tls.cert_file and tls.key_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
			_, err = kafka.New(context.Background(), c, nil)
			if (err != nil) != (tt.want != "") {
				t.Fatalf("New: %v", err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := kafka.Config{}.WithDefaults()
	want := kafka.Config{
		Topic: "audit.{source}", ClientID: "auditpipe", Compression: "lz4",
		WriteTimeout: 10 * time.Second, DialTimeout: 5 * time.Second, BatchTimeout: time.Millisecond,
		BatchSize: 100, BatchBytes: 1000000, MetadataTTL: 6 * time.Second,
	}
	if fmt.Sprint(c) != fmt.Sprint(want) {
		t.Errorf("defaults = %+v, want %+v", c, want)
	}
}

// TestHappyPath consumes what Write produced with franz-go, an independent
// client, and checks every record: key, value, headers, topic.
func TestHappyPath(t *testing.T) {
	b := startBroker(t, kafkatest.Config{Topics: sourceTopics})
	o := newOutput(t, kafka.Config{Brokers: b.Addrs()})
	events := outputstest.Events(40)
	// An event with the optional attributes missing gets no header for
	// them.
	events[5].Resource = auditpipe.Resource{}
	if err := o.Write(testCtx(t), events); err != nil {
		t.Fatal(err)
	}
	byID := map[string]*auditpipe.Event{}
	for i := range events {
		byID[events[i].ID] = &events[i]
	}
	seen := map[string]bool{}
	for _, topic := range sourceTopics {
		for _, r := range records(t, b, topic) {
			id := string(r.Key)
			ev := byID[id]
			if ev == nil {
				t.Fatalf("%s: unknown key %q", topic, id)
			}
			if seen[id] {
				t.Errorf("%s: key %s twice", topic, id)
			}
			seen[id] = true
			if want := "audit." + ev.Source.Type; topic != want {
				t.Errorf("event %s in %s, want %s", id, topic, want)
			}
			if want := eventjson.Append(nil, ev); !bytes.Equal(r.Value, want) {
				t.Errorf("event %s: value\n%s\nwant\n%s", id, r.Value, want)
			}
			checkHeaders(t, r, ev)
		}
	}
	if len(seen) != len(events) {
		t.Errorf("%d events consumed, want %d", len(seen), len(events))
	}
}

// checkHeaders checks the CloudEvents binary-mode headers against
// cloudevents.AttributesOf.
func checkHeaders(t *testing.T, r *kgo.Record, ev *auditpipe.Event) {
	t.Helper()
	a := cloudevents.AttributesOf(ev)
	want := [][2]string{
		{"ce_specversion", "1.0"},
		{"ce_id", ev.ID},
		{"ce_type", "io.auditpipe.audit.v1"},
		{"ce_source", "auditpipe/" + ev.Source.Type + "/" + ev.Source.Name},
		{"ce_time", ev.Time.UTC().Format(time.RFC3339Nano)},
	}
	if a.Subject != "" {
		want = append(want, [2]string{"ce_subject", a.Subject})
	}
	want = append(want,
		[2]string{"ce_auditaction", ev.Action},
		[2]string{"ce_auditoutcome", string(ev.Outcome)},
		[2]string{"content-type", "application/json"})
	var got [][2]string
	for _, h := range r.Headers {
		got = append(got, [2]string{h.Key, string(h.Value)})
	}
	if !slices.Equal(got, want) {
		t.Errorf("event %s: headers\n%q\nwant\n%q", ev.ID, got, want)
	}
}

// TestTopicRouting sends events to the topic their label names, and fails
// only the event whose label makes an invalid topic name.
func TestTopicRouting(t *testing.T) {
	b := startBroker(t, kafkatest.Config{Topics: []string{"team-a.audit", "team-b.audit"}})
	o := newOutput(t, kafka.Config{Brokers: b.Addrs(), Topic: "{label:team}.audit"})
	events := outputstest.Events(20)
	want := map[string][]auditpipe.Event{}
	for i := range events {
		team := []string{"team-a", "team-b"}[i%2]
		events[i].Labels = map[string]string{"team": team}
		if i != 7 {
			want[team+".audit"] = append(want[team+".audit"], events[i])
		}
	}
	events[7].Labels["team"] = "team a/b" // not a topic name
	err := o.Write(testCtx(t), events)
	var pe *outputs.PartialError
	if !errors.As(err, &pe) || len(pe.Failures) != 1 || pe.Failures[0].Index != 7 || !outputs.IsPermanent(pe.Failures[0].Err) {
		t.Fatalf("Write = %v, want event 7 failed permanently", err)
	}
	if !strings.Contains(err.Error(), `topic name "team a/b.audit"`) {
		t.Errorf("error does not name the topic: %v", err)
	}
	for topic, evs := range want {
		if got := keys(records(t, b, topic)); !slices.Equal(got, sortedIDs(evs)) {
			t.Errorf("%s holds %v, want %v", topic, got, sortedIDs(evs))
		}
	}
}

// TestCompression writes with each codec and reads the batches back: the
// values must survive, and each batch must say the codec it was written
// with (Kafka's attribute numbers: 0 none ... 4 zstd), lz4 when unset.
func TestCompression(t *testing.T) {
	for _, tc := range []struct {
		codec string
		attr  uint8
	}{{"", 3}, {"none", 0}, {"gzip", 1}, {"snappy", 2}, {"lz4", 3}, {"zstd", 4}} {
		codec := tc.codec
		t.Run("codec="+codec, func(t *testing.T) {
			b := startBroker(t, kafkatest.Config{Topics: []string{"audit"}})
			o := newOutput(t, kafka.Config{Brokers: b.Addrs(), Topic: "audit", Compression: codec})
			events := outputstest.Events(50)
			if err := o.Write(testCtx(t), events); err != nil {
				t.Fatal(err)
			}
			recs := records(t, b, "audit")
			if len(recs) != len(events) {
				t.Fatalf("%d records, want %d", len(recs), len(events))
			}
			byID := map[string][]byte{}
			for i := range events {
				byID[events[i].ID] = eventjson.Append(nil, &events[i])
			}
			for _, r := range recs {
				if !bytes.Equal(r.Value, byID[string(r.Key)]) {
					t.Errorf("record %s: value differs after %s", r.Key, codec)
				}
				if got := r.Attrs.CompressionType(); got != tc.attr {
					t.Errorf("record %s: batch compression %d, want %d", r.Key, got, tc.attr)
				}
			}
		})
	}
}

// TestBrokerDownAtStart starts the output and the Deliverer while no broker
// listens, then starts one: everything arrives, once.
func TestBrokerDownAtStart(t *testing.T) {
	addr := outputstest.FreeAddr(t)
	o := newOutput(t, kafka.Config{Brokers: []string{addr}, DialTimeout: time.Second})
	d := deliverer(t, o, nil, fastRetry)
	events := outputstest.Events(30)
	type result struct {
		rep outputs.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := d.Deliver(testCtx(t), events)
		done <- result{rep, err}
	}()
	outputstest.Eventually(t, 20*time.Second, "a failed attempt", func() bool { return d.Stats().FailedAttempts >= 2 })
	if err := d.Health(); err == nil || outputs.IsPermanent(err) {
		t.Errorf("Health = %v, want a retryable error while the broker is down", err)
	}
	b := startBroker(t, kafkatest.Config{Addr: addr, Topics: sourceTopics})
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.rep.Delivered != len(events) || res.rep.DeadLettered != 0 {
		t.Errorf("report %+v, want all %d delivered", res.rep, len(events))
	}
	var got []string
	for _, topic := range sourceTopics {
		got = append(got, keys(records(t, b, topic))...)
	}
	slices.Sort(got)
	if !slices.Equal(got, sortedIDs(events)) {
		t.Errorf("broker holds %d records, want each of %d events once", len(got), len(events))
	}
	if d.Health() != nil {
		t.Errorf("Health = %v after delivery", d.Health())
	}
}

// TestProduceErrors injects broker errors on one partition: retryable ones
// are retried until delivered, permanent ones dead-letter exactly the
// events of that partition, and every other event is delivered once.
func TestProduceErrors(t *testing.T) {
	tests := []struct {
		err       *kerr.Error
		count     int
		permanent bool
		// applied: the broker writes the records and then answers with
		// the error, as Kafka may with REQUEST_TIMED_OUT; the retry
		// writes them again under the same keys.
		applied bool
	}{
		{kerr.NotEnoughReplicas, 2, false, false},
		{kerr.LeaderNotAvailable, 1, false, false},
		{kerr.NotLeaderForPartition, 1, false, false},
		{kerr.RequestTimedOut, 1, false, true},
		{kerr.TopicAuthorizationFailed, 1, false, false},
		{kerr.MessageTooLarge, 1, true, false},
		{kerr.InvalidRecord, 1, true, false},
		{kerr.CorruptMessage, 1, true, false},
		{kerr.RecordListTooLarge, 1, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.err.Message, func(t *testing.T) {
			b := startBroker(t, kafkatest.Config{Topics: []string{"audit"}})
			o := newOutput(t, kafka.Config{Brokers: b.Addrs(), Topic: "audit"})
			dlq := &outputstest.Letters{}
			d := deliverer(t, o, dlq, fastRetry)
			f := b.FailProduce(kafkatest.ProduceFault{Topic: "audit", Partitions: []int32{1}, Err: tt.err, Count: tt.count})
			events := outputstest.Events(60)
			rep, err := d.Deliver(testCtx(t), events)
			if err != nil {
				t.Fatal(err)
			}
			if f.Hits() != tt.count {
				t.Errorf("fault answered %d requests, want %d", f.Hits(), tt.count)
			}
			recs := records(t, b, "audit")
			delivered := keys(recs)
			var dead []string
			for _, l := range dlq.All() {
				var ev auditpipe.Event
				if err := json.Unmarshal(l.Event, &ev); err != nil {
					t.Fatal(err)
				}
				dead = append(dead, ev.ID)
				if code := fmt.Sprintf("[%d]", tt.err.Code); !strings.Contains(l.Error, code) {
					t.Errorf("dead letter error %q does not name error %s", l.Error, code)
				}
			}
			for _, r := range recs {
				if r.Partition == 1 && tt.permanent {
					t.Errorf("record %s in partition 1 despite a permanent rejection", r.Key)
				}
			}
			if tt.permanent {
				if len(dead) == 0 || rep.DeadLettered != len(dead) || rep.Retried != 0 {
					t.Errorf("report %+v, %d dead letters: want partition 1's events dead-lettered, none retried", rep, len(dead))
				}
			} else if len(dead) != 0 || rep.Retried == 0 {
				t.Errorf("report %+v, %d dead letters: want retries and no dead letter", rep, len(dead))
			}
			if tt.applied {
				// Each event of partition 1 is there twice, with the
				// same key: at least once, and de-duplicable.
				if len(delivered) <= len(events) {
					t.Errorf("%d records: want partition 1's twice", len(delivered))
				}
				delivered = slices.Compact(delivered)
			}
			all := append(slices.Clone(delivered), dead...)
			slices.Sort(all)
			if !slices.Equal(all, sortedIDs(events)) {
				t.Errorf("delivered %d + dead-lettered %d: want each of %d events exactly once", len(delivered), len(dead), len(events))
			}
		})
	}
}

// TestOversizedEvent fails the one event too large for batch_bytes, before
// sending it, and delivers the rest; an event exactly at the limit passes.
func TestOversizedEvent(t *testing.T) {
	b := startBroker(t, kafkatest.Config{Topics: []string{"audit"}})
	events := outputstest.Events(10)
	// The record size of event 3 with a 4000-byte detail string.
	events[3].Details = json.RawMessage(`{"blob":"` + strings.Repeat("x", 4000) + `"}`)
	probe := newOutput(t, kafka.Config{Brokers: b.Addrs(), Topic: "audit", BatchBytes: 1000})
	err := probe.Write(testCtx(t), events[3:4])
	var size int
	var pe *outputs.PartialError
	if !errors.As(err, &pe) || len(pe.Failures) != 1 || !outputs.IsPermanent(pe.Failures[0].Err) {
		t.Fatalf("Write of an oversized event = %v, want permanent", err)
	}
	if _, err := fmt.Sscanf(err.Error()[strings.Index(err.Error(), "event is "):], "event is %d bytes", &size); err != nil {
		t.Fatalf("no size in %v", err)
	}
	for _, tt := range []struct {
		limit  int
		failed bool
	}{{size - 1, true}, {size, false}} {
		t.Run(fmt.Sprint(tt.limit), func(t *testing.T) {
			o := newOutput(t, kafka.Config{Brokers: b.Addrs(), Topic: "audit", BatchBytes: tt.limit})
			before := b.Count("audit")
			err := o.Write(testCtx(t), events)
			if !tt.failed {
				if err != nil {
					t.Fatalf("Write at the limit: %v", err)
				}
				return
			}
			var pe *outputs.PartialError
			if !errors.As(err, &pe) || len(pe.Failures) != 1 || pe.Failures[0].Index != 3 || !outputs.IsPermanent(pe.Failures[0].Err) {
				t.Fatalf("Write = %v, want event 3 failed permanently", err)
			}
			if !strings.Contains(err.Error(), "over batch_bytes") {
				t.Errorf("error %v does not say why", err)
			}
			if got := b.Count("audit") - before; got != 9 {
				t.Errorf("%d records written, want the 9 others", got)
			}
		})
	}
}

// TestMissingTopic: a topic that does not exist fails only its own events,
// retryably, and is created when allow_auto_topic_creation asks for it.
func TestMissingTopic(t *testing.T) {
	t.Run("not created", func(t *testing.T) {
		b := startBroker(t, kafkatest.Config{Topics: []string{"audit.spacelift", "audit.app", "audit.k8s"}})
		o := newOutput(t, kafka.Config{Brokers: b.Addrs()})
		events := outputstest.Events(8)
		err := o.Write(testCtx(t), events)
		var pe *outputs.PartialError
		if !errors.As(err, &pe) {
			t.Fatalf("Write = %v, want a partial failure", err)
		}
		for _, f := range pe.Failures {
			if events[f.Index].Source.Type != "alertmanager" || outputs.IsPermanent(f.Err) || !strings.Contains(f.Err.Error(), "audit.alertmanager does not exist") {
				t.Errorf("event %d (%s) failed: %v", f.Index, events[f.Index].Source.Type, f.Err)
			}
		}
		if len(pe.Failures) != 2 {
			t.Errorf("%d failures, want the 2 alertmanager events", len(pe.Failures))
		}
		if err := b.CreateTopic("audit.alertmanager", 0); err != nil {
			t.Fatal(err)
		}
		d := deliverer(t, o, nil, fastRetry)
		failed := []auditpipe.Event{events[pe.Failures[0].Index], events[pe.Failures[1].Index]}
		if _, err := d.Deliver(testCtx(t), failed); err != nil {
			t.Fatal(err)
		}
		if got := keys(records(t, b, "audit.alertmanager")); !slices.Equal(got, sortedIDs(failed)) {
			t.Errorf("audit.alertmanager holds %v", got)
		}
	})
	t.Run("auto-created", func(t *testing.T) {
		b := startBroker(t, kafkatest.Config{AllowAutoTopicCreation: true})
		o := newOutput(t, kafka.Config{Brokers: b.Addrs(), AllowAutoTopicCreation: true})
		d := deliverer(t, o, nil, fastRetry)
		events := outputstest.Events(8)
		if _, err := d.Deliver(testCtx(t), events); err != nil {
			t.Fatal(err)
		}
		for _, topic := range sourceTopics {
			if n := b.Count(topic); n != 2 {
				t.Errorf("%s holds %d records, want 2", topic, n)
			}
		}
	})
}

// TestSlowBroker: a broker that does not answer makes the attempt fail
// retryably after write_timeout (or when the attempt's context ends), and
// Close leaves no goroutine behind.
func TestSlowBroker(t *testing.T) {
	tests := []struct {
		name         string
		writeTimeout time.Duration
		ctxTimeout   time.Duration
		want         string
	}{
		{"write_timeout", 200 * time.Millisecond, 30 * time.Second, "no answer within write_timeout"},
		{"attempt context", 2 * time.Second, 200 * time.Millisecond, "attempt ended before the brokers answered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startBroker(t, kafkatest.Config{Topics: []string{"audit"}})
			baseline := runtime.NumGoroutine()
			o, err := kafka.New(context.Background(), kafka.Config{Brokers: b.Addrs(), Topic: "audit", WriteTimeout: tt.writeTimeout}, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Warm up: connections and metadata, so that only the produce
			// request hangs.
			if err := o.Write(testCtx(t), outputstest.Events(1)); err != nil {
				t.Fatal(err)
			}
			release, held := b.HoldProduce(-1)
			ctx, cancel := context.WithTimeout(testCtx(t), tt.ctxTimeout)
			err = o.Write(ctx, outputstest.Events(10))
			cancel()
			if err == nil || outputs.IsPermanent(err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Write to a hung broker = %v, want a retryable %q", err, tt.want)
			}
			if held() == 0 {
				t.Error("no produce request reached the broker")
			}
			if err := o.Close(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			release()
			outputstest.CheckNoLeak(t, 15*time.Second, baseline)
		})
	}
}

// TestSASL authenticates with each mechanism, and checks that a wrong
// password is a retryable error that keeps the events.
func TestSASL(t *testing.T) {
	for _, mech := range []string{kafkatest.Plain, kafkatest.ScramSHA256, kafkatest.ScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			b := startBroker(t, kafkatest.Config{Topics: []string{"audit"}, Users: []kafkatest.User{{Mechanism: mech, Username: "auditpipe", Password: "s3cret"}}})
			sasl := kafka.SASLConfig{Mechanism: strings.ToLower(mech), Username: "auditpipe", Password: "s3cret"}
			events := outputstest.Events(5)

			o := newOutput(t, kafka.Config{Brokers: b.Addrs(), Topic: "audit", SASL: sasl})
			if err := o.Write(testCtx(t), events); err != nil {
				t.Fatal(err)
			}
			if got := keys(records(t, b, "audit")); !slices.Equal(got, sortedIDs(events)) {
				t.Errorf("broker holds %v", got)
			}

			sasl.Password = "wrong"
			bad := newOutput(t, kafka.Config{Brokers: b.Addrs(), Topic: "audit", SASL: sasl})
			err := bad.Write(testCtx(t), events)
			if err == nil || outputs.IsPermanent(err) || !strings.Contains(err.Error(), "SASL authentication failed") {
				t.Fatalf("Write with a wrong password = %v, want a retryable SASL error", err)
			}
			if strings.Contains(err.Error(), "wrong") {
				t.Errorf("error shows the password: %v", err)
			}
			d := deliverer(t, bad, &outputstest.Letters{}, outputs.RetryConfig{InitialInterval: time.Millisecond, MaxElapsedTime: 100 * time.Millisecond})
			_, err = d.Deliver(testCtx(t), events)
			var ue *outputs.UndeliveredError
			if !errors.As(err, &ue) || len(ue.Events) != len(events) || ue.Permanent {
				t.Fatalf("Deliver = %v, want all %d events handed back", err, len(events))
			}
			if d.Health() == nil {
				t.Error("Health is nil with rejected credentials")
			}
			if n := b.Count("audit"); n != int64(len(events)) {
				t.Errorf("%d records, want only the %d of the good client", n, len(events))
			}
		})
	}
}

// TestTLS writes over TLS with the broker's CA from tls.ca_file, and fails
// retryably without TLS or with an untrusted certificate.
func TestTLS(t *testing.T) {
	server, caFile := tlsFiles(t)
	b := startBroker(t, kafkatest.Config{Topics: []string{"audit"}, TLS: server})
	tests := []struct {
		name string
		tls  outputs.TLSConfig
		ok   bool
	}{
		{"ca_file", outputs.TLSConfig{CAFile: caFile}, true},
		{"system roots", outputs.TLSConfig{Enabled: true}, false},
		{"plain text", outputs.TLSConfig{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOutput(t, kafka.Config{Brokers: b.Addrs(), Topic: "audit", TLS: tt.tls, DialTimeout: time.Second, WriteTimeout: time.Second})
			ctx, cancel := context.WithTimeout(testCtx(t), 3*time.Second)
			defer cancel()
			err := o.Write(ctx, outputstest.Events(3))
			if tt.ok && err != nil {
				t.Fatal(err)
			}
			if !tt.ok && (err == nil || outputs.IsPermanent(err)) {
				t.Fatalf("Write = %v, want a retryable error", err)
			}
		})
	}
	if n := b.Count("audit"); n != 3 {
		t.Errorf("%d records, want 3", n)
	}
}

// tlsFiles makes a self-signed CA certificate for 127.0.0.1, returning the
// broker's configuration and the path of the CA file.
func tlsFiles(t *testing.T) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kafkatest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}, caFile
}

// TestSameBatchTwice: a batch written again (a retry after a lost
// acknowledgement) produces the same keys, values and partitions, so a
// consumer or compaction can drop the copies.
func TestSameBatchTwice(t *testing.T) {
	b := startBroker(t, kafkatest.Config{Topics: []string{"audit"}, Partitions: 6})
	o := newOutput(t, kafka.Config{Brokers: b.Addrs(), Topic: "audit"})
	events := outputstest.Events(30)
	for range 2 {
		if err := o.Write(testCtx(t), events); err != nil {
			t.Fatal(err)
		}
	}
	type copyOf struct {
		partition int32
		value     string
	}
	copies := map[string][]copyOf{}
	for _, r := range records(t, b, "audit") {
		copies[string(r.Key)] = append(copies[string(r.Key)], copyOf{r.Partition, string(r.Value)})
	}
	if len(copies) != len(events) {
		t.Fatalf("%d distinct keys, want %d", len(copies), len(events))
	}
	partitions := map[int32]bool{}
	for id, cs := range copies {
		if len(cs) != 2 || cs[0] != cs[1] {
			t.Errorf("key %s: copies %v, want two identical ones in one partition", id, cs)
		}
		partitions[cs[0].partition] = true
	}
	if len(partitions) < 2 {
		t.Errorf("all records in partitions %v: keys are not spread", partitions)
	}
}

// TestConcurrentWrites writes from several goroutines at once, as the
// Fluent Bit plugin's workers do.
func TestConcurrentWrites(t *testing.T) {
	b := startBroker(t, kafkatest.Config{Topics: sourceTopics})
	o := newOutput(t, kafka.Config{Brokers: b.Addrs()})
	events := outputstest.Events(400)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			part := events[w*50 : (w+1)*50]
			for i := 0; i < len(part); i += 10 {
				if err := o.Write(testCtx(t), part[i:i+10]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var got []string
	for _, topic := range sourceTopics {
		got = append(got, keys(records(t, b, topic))...)
	}
	slices.Sort(got)
	if !slices.Equal(got, sortedIDs(events)) {
		t.Errorf("broker holds %d records, want each of %d events once", len(got), len(events))
	}
}

func TestWriteAfterClose(t *testing.T) {
	b := startBroker(t, kafkatest.Config{Topics: sourceTopics})
	baseline := runtime.NumGoroutine()
	o, err := kafka.New(context.Background(), kafka.Config{Brokers: b.Addrs()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Write(testCtx(t), outputstest.Events(8)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := o.Close(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	err = o.Write(testCtx(t), outputstest.Events(1))
	if err == nil || outputs.IsPermanent(err) || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Write after Close = %v, want a retryable 'closed' error", err)
	}
	outputstest.CheckNoLeak(t, 15*time.Second, baseline)
}
