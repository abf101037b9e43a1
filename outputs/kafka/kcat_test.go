package kafka_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/outputs/cloudevents"
	"github.com/auditpipe/auditpipe/outputs/kafka"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
	"github.com/auditpipe/auditpipe/testenv/kafkatest"
)

// kcatMessage is a line of `kcat -C -J`.
type kcatMessage struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Key       *string  `json:"key"`
	Payload   *string  `json:"payload"`
	Headers   []string `json:"headers"` // name, value, name, value, ...
}

// TestKcat consumes with kcat (librdkafka), a client that shares no code
// with kafka-go or franz-go, and checks keys, values and headers. Without
// kcat it skips, except under CI=true, where kcat is expected and its
// absence fails the test.
func TestKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kcat is not on PATH and CI=true: the CI image must install it (apt-get install kcat): %v", err)
		}
		t.Skipf("kcat is not on PATH (apt-get install kcat to run this test): %v", err)
	}
	b := startBroker(t, kafkatest.Config{Topics: []string{"audit"}})
	o := newOutput(t, kafka.Config{Brokers: b.Addrs(), Topic: "audit", Compression: "lz4"})
	events := outputstest.Events(12)
	if err := o.Write(testCtx(t), events); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(testCtx(t), 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, kcat, "-b", b.Addrs()[0], "-C", "-t", "audit", "-o", "beginning", "-e", "-J", "-q")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, stderr.Bytes())
	}

	byID := map[string]*auditpipe.Event{}
	for i := range events {
		byID[events[i].ID] = &events[i]
	}
	var got []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m kcatMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("kcat line %q: %v", sc.Bytes(), err)
		}
		if m.Key == nil || m.Payload == nil {
			t.Fatalf("kcat message without key or payload: %s", sc.Bytes())
		}
		ev := byID[*m.Key]
		if ev == nil {
			t.Fatalf("unknown key %q", *m.Key)
		}
		got = append(got, *m.Key)
		if *m.Payload != string(eventjson.Append(nil, ev)) {
			t.Errorf("key %s: payload\n%s\nwant\n%s", *m.Key, *m.Payload, eventjson.Append(nil, ev))
		}
		a := cloudevents.AttributesOf(ev)
		want := []string{
			"ce_specversion", "1.0", "ce_id", ev.ID, "ce_type", a.Type, "ce_source", a.Source,
			"ce_time", a.Time, "ce_subject", a.Subject, "ce_auditaction", a.Action,
			"ce_auditoutcome", a.Outcome, "content-type", "application/json",
		}
		if !slices.Equal(m.Headers, want) {
			t.Errorf("key %s: headers\n%q\nwant\n%q", *m.Key, m.Headers, want)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, sortedIDs(events)) {
		t.Errorf("kcat read %d messages (%s), want each of %d events once", len(got), strings.Join(got, ","), len(events))
	}
}
