package kafka_test

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/integrity"
	"github.com/auditpipe/auditpipe/outputs/kafka"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
	"github.com/auditpipe/auditpipe/testenv/kafkatest"
)

// writeSealedKafka writes 40 sealed events in batches of 5 with the
// default topic template (four topics of three partitions), and puts a
// record in a topic the template cannot name, which must not be read.
func writeSealedKafka(t *testing.T) (*kafkatest.Broker, *kafka.Output, []auditpipe.Event, ed25519.PublicKey) {
	t.Helper()
	b := startBroker(t, kafkatest.Config{Topics: append([]string{"audit", "other.audit"}, sourceTopics...)})
	o := newOutput(t, kafka.Config{Brokers: b.Addrs()})
	batches, pub := outputstest.Sealed(t, "kafka/test", 40, 5)
	var all []auditpipe.Event
	for _, bt := range batches {
		if err := o.Write(testCtx(t), bt); err != nil {
			t.Fatal(err)
		}
		all = append(all, bt...)
	}
	cl, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, topic := range []string{"audit", "other.audit"} {
		if err := cl.ProduceSync(testCtx(t), &kgo.Record{Topic: topic, Value: []byte("not an event")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	return b, o, all, pub
}

func TestReadBackVerifies(t *testing.T) {
	b, o, evs, pub := writeSealedKafka(t)

	rep, sources := outputstest.VerifyReadBack(t, testCtx(t), o, pub)
	if !rep.OK || rep.Verified != len(evs) || rep.Entries != len(evs) {
		t.Fatalf("report: ok %v, %d verified of %d entries, want all %d: %+v", rep.OK, rep.Verified, rep.Entries, len(evs), rep)
	}
	// Every non-empty partition of the four topics, in order, each read
	// as its record values in offset order.
	var want []string
	lines := map[string]string{}
	for _, topic := range slices.Sorted(slices.Values(sourceTopics)) {
		for _, rec := range records(t, b, topic) {
			src := fmt.Sprintf("kafka://%s/%d", topic, rec.Partition)
			if !slices.Contains(want, src) {
				want = append(want, src)
			}
			lines[src] += string(rec.Value) + "\n"
		}
	}
	if !slices.Equal(sources, want) {
		t.Errorf("sources %q, want %q", sources, want)
	}
	err := o.ReadBack(testCtx(t), func(source string, r io.Reader) error {
		got, err := io.ReadAll(r)
		if string(got) != lines[source] {
			t.Errorf("%s: read back\n%.200s...\nwant\n%.200s...", source, got, lines[source])
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestReadBackConstantTopic(t *testing.T) {
	b := startBroker(t, kafkatest.Config{Topics: []string{"audit", "audit.x"}})
	o := newOutput(t, kafka.Config{Brokers: b.Addrs(), Topic: "audit"})
	batches, pub := outputstest.Sealed(t, "kafka/const", 12, 4)
	for _, bt := range batches {
		if err := o.Write(testCtx(t), bt); err != nil {
			t.Fatal(err)
		}
	}
	// ReadBack's own transport and its metadata goroutine go away with it.
	baseline := runtime.NumGoroutine()
	rep, sources := outputstest.VerifyReadBack(t, testCtx(t), o, pub)
	outputstest.CheckNoLeak(t, 10*time.Second, baseline)
	if !rep.OK || rep.Verified != 12 {
		t.Fatalf("report: ok %v, %d verified, want 12: %+v", rep.OK, rep.Verified, rep)
	}
	for _, s := range sources {
		if len(s) < len("kafka://audit/") || s[:len("kafka://audit/")] != "kafka://audit/" {
			t.Errorf("source %s is not a partition of topic audit", s)
		}
	}
}

func TestReadBackFindsDeletedRecord(t *testing.T) {
	b, o, evs, pub := writeSealedKafka(t)

	// Delete the first record of a partition holding more than one
	// (DeleteRecords can only cut a partition's head), and note its seq.
	var topic string
	var part int32
	seq := uint64(0)
	for _, tp := range sourceTopics {
		for _, rec := range records(t, b, tp) {
			if rec.Offset != 0 || !slices.ContainsFunc(records(t, b, tp), func(r *kgo.Record) bool { return r.Partition == rec.Partition && r.Offset == 1 }) {
				continue
			}
			var ev auditpipe.Event
			if err := eventjson.Decode(rec.Value, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Integrity.Seq < uint64(len(evs)) {
				topic, part, seq = tp, rec.Partition, ev.Integrity.Seq
				break
			}
		}
		if seq != 0 {
			break
		}
	}
	if seq == 0 {
		t.Fatal("no partition to cut")
	}
	cl, err := b.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = part, 1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	res, err := req.RequestWith(testCtx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(res.Topics[0].Partitions[0].ErrorCode); err != nil {
		t.Fatal(err)
	}

	rep, _ := outputstest.VerifyReadBack(t, testCtx(t), o, pub)
	if rep.OK || rep.GapCount != 1 || len(rep.Streams) != 1 ||
		!slices.Equal(rep.Streams[0].Gaps, []integrity.Range{{From: seq, To: seq}}) {
		t.Fatalf("report: ok %v, gaps %+v, want exactly seq %d missing: %+v", rep.OK, rep.Gaps, seq, rep)
	}
	if rep.Entries != len(evs)-1 {
		t.Errorf("%d entries read, want %d", rep.Entries, len(evs)-1)
	}
}

func TestReadBackStopsOnError(t *testing.T) {
	_, o, _, _ := writeSealedKafka(t)
	calls := 0
	stop := io.ErrShortBuffer
	err := o.ReadBack(testCtx(t), func(string, io.Reader) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("ReadBack = %v after %d calls, want fn's error after 1", err, calls)
	}
}
