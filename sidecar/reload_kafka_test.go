package sidecar_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/testenv/kafkatest"
)

// TestReloadRestartsAKafkaSource changes a Kafka source's labels: its
// consumer leaves the group and the new one carries on from the committed
// offsets, so every message arrives and the later ones have the new
// labels.
func TestReloadRestartsAKafkaSource(t *testing.T) {
	b, err := kafkatest.Start(kafkatest.Config{Topics: []string{"raw"}, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	conf := func(team string) string {
		return strings.Replace(kafkaConf(b.Addrs()[0], "app", "labels: {team: "+team+"}"), "${ADDR}", "127.0.0.1:0", 1)
	}
	r := startFileIn(t, t.TempDir(), conf("a"), false)
	out := filepath.Join(r.dir, "events.ndjson")
	produceRaw(t, b, yoqRecords(0, 100, 2))
	events(t, out, 100)
	if got := post(t, r.url+"/v1/sources/raw", []byte("{}"), nil); got.code != 404 {
		t.Errorf("POST to a Kafka source: %d, want 404", got.code)
	}

	r.write(t, conf("b"))
	if err := r.s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	produceRaw(t, b, yoqRecords(100, 200, 2))
	waitLong(t, "every message after the reload", 60*time.Second, func() bool {
		ids := map[string]int{}
		eventIDs(t, out, ids)
		return len(ids) == 200
	})
	evs := events(t, out, 200)
	if got := evs[len(evs)-1].Labels["team"]; got != "b" {
		t.Errorf("an event consumed after the reload has team=%q, want b", got)
	}
}
