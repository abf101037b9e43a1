package sidecar_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditpipe/auditpipe/outputs/dlq"
	"github.com/auditpipe/auditpipe/testenv/kafkatest"
)

const kafkaSourceConfig = `
data_dir: ${DIR}
server: {listen: "${ADDR}"}
sources:
  - name: raw
    format: ${FORMAT}
    ${TRANSFORMER}
    kafka: {brokers: ["${BROKER}"], topics: [raw], group_id: fleet, session_timeout: 6s, rebalance_timeout: 10s, commit_interval: 100ms}
outputs:
  - {name: events, type: file, file: {path: "${DIR}/events.ndjson"}}
`

func kafkaConf(broker, format, transformer string) string {
	return strings.NewReplacer("${BROKER}", broker, "${FORMAT}", format, "${TRANSFORMER}", transformer).Replace(kafkaSourceConfig)
}

// produceRaw writes records to topic raw, each to the partition it names.
func produceRaw(t *testing.T, b *kafkatest.Broker, recs []*kgo.Record) {
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

func yoqRecords(from, to, partitions int) []*kgo.Record {
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, &kgo.Record{Topic: "raw", Partition: int32(i % partitions),
			Value: fmt.Appendf(nil, `{"recorded_at": %d, "actor": "api-token", "action": "app_apply", "target": "app-%d", "outcome": "ok"}`, 1767312000+i, i)})
	}
	return recs
}

// eventIDs reads the ids of a file output's events; a line torn by a
// SIGKILL is left out.
func eventIDs(t *testing.T, path string, into map[string]int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev struct{ ID string }
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.ID != "" {
			into[ev.ID]++
		}
	}
}

// metric is the sum of a metric's series whose labels contain match.
func metric(t *testing.T, url, name, match string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	return sumSeries(resp, name, match)
}

func sumSeries(resp *http.Response, name, match string) float64 {
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		if match != "" && !strings.Contains(line, match) {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}

func waitLong(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("%s after %s", what, time.Since(start).Round(time.Millisecond)) }()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s never happened", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKafkaFleet runs two sidecars in one consumer group, one of them as
// its own process: they split the partitions; the process is killed with
// SIGKILL mid-stream, the other takes its partitions over, and once the
// killed one is started again (to deliver what its queue holds) every
// message has reached an output at least once.
func TestKafkaFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	b, err := kafkatest.Start(kafkatest.Config{Topics: []string{"raw"}, Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	broker := b.Addrs()[0]
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	dirA, addrA := t.TempDir(), freeAddr(t)
	confA := filepath.Join(dirA, "sidecar.yaml")
	conf := strings.NewReplacer("${DIR}", dirA, "${ADDR}", addrA).Replace(kafkaConf(broker, "app", ""))
	if err := os.WriteFile(confA, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmdA, _ := runBinary(t, bin, confA, addrA)
	urlA := "http://" + addrA
	rB := start(t, kafkaConf(broker, "app", ""), map[string]string{"ADDR": "127.0.0.1:0"})

	const assigned = "auditpipe_kafka_assigned_partitions"
	waitLong(t, "the two sidecars sharing the 4 partitions", 30*time.Second, func() bool {
		a, b := metric(t, urlA, assigned, ""), metric(t, rB.url, assigned, "")
		return a > 0 && b > 0 && a+b == 4
	})
	const total = 1200
	produceRaw(t, b, yoqRecords(0, 400, 4))
	const queued = "auditpipe_kafka_messages_total"
	waitLong(t, "both consuming", 30*time.Second, func() bool {
		return metric(t, urlA, queued, `outcome="queued"`) > 0 && metric(t, rB.url, queued, `outcome="queued"`) > 0
	})
	produceRaw(t, b, yoqRecords(400, 800, 4))
	cmdA.Process.Signal(syscall.SIGKILL)
	cmdA.Wait()
	produceRaw(t, b, yoqRecords(800, total, 4))
	waitLong(t, "the survivor owning all 4 partitions", 30*time.Second, func() bool { return metric(t, rB.url, assigned, "") == 4 })

	// What the killed one had queued but not delivered is in its queue:
	// started again, it delivers it (and rejoins the group).
	runBinary(t, bin, confA, addrA)
	ids := map[string]int{}
	waitLong(t, "every message at an output", 60*time.Second, func() bool {
		clear(ids)
		eventIDs(t, filepath.Join(dirA, "events.ndjson"), ids)
		eventIDs(t, filepath.Join(rB.dir, "events.ndjson"), ids)
		return len(ids) == total
	})
	dups := 0
	for _, n := range ids {
		dups += n - 1
	}
	t.Logf("%d messages, %d distinct events at the outputs, %d duplicates", total, len(ids), dups)
}

// TestKafkaSourceExternalDown consumes through the example transformer
// plugin: a poison message is dead-lettered with its position and does not
// hold its partition; with the plugin down the source stops and retries,
// and once it is back nothing is missing.
func TestKafkaSourceExternalDown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example plugin")
	}
	plugin := filepath.Join(t.TempDir(), "github-audit-plugin")
	if out, err := exec.Command("go", "build", "-o", plugin, "../examples/transformer-plugin").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b, err := kafkatest.Start(kafkatest.Config{Topics: []string{"raw"}, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r := start(t, kafkaConf(b.Addrs()[0], "external", `transformer: {path: "${PLUGIN}"}`),
		map[string]string{"ADDR": "127.0.0.1:0", "PLUGIN": plugin})
	page := func(from, to int) []*kgo.Record {
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Topic: "raw", Partition: int32(i % 2), Value: fmt.Appendf(nil,
				`[{"@timestamp": %d, "_document_id": "doc-%d", "action": "team.add_member", "actor": "monalisa", "created_at": %d, "operation_type": "modify", "org": "octo-org", "user": "hubot"}]`,
				1732186000000+i, i, 1732186000000+i)})
		}
		return recs
	}
	recs := page(0, 20)
	recs = append(recs, &kgo.Record{Topic: "raw", Partition: 1, Value: []byte("not json"),
		Headers: []kgo.RecordHeader{{Key: "origin", Value: []byte("test")}}})
	recs = append(recs, page(20, 40)...)
	produceRaw(t, b, recs)
	waitLong(t, "40 events", 30*time.Second, func() bool {
		ids := map[string]int{}
		eventIDs(t, filepath.Join(r.dir, "events.ndjson"), ids)
		return len(ids) == 40
	})
	var letters []dlq.Entry
	dlq.Walk(filepath.Join(r.dir, "dlq"), func(e dlq.Entry) error { letters = append(letters, e); return nil })
	if len(letters) != 1 || letters[0].Kafka == nil || letters[0].Kafka.Partition != 1 || string(letters[0].Payload) != "not json" ||
		letters[0].Headers["origin"][0] != "test" {
		t.Fatalf("dead letters %+v, want the poison message with its position and headers", letters)
	}
	if got := post(t, r.url+"/v1/sources/raw", []byte("[]"), nil); got.code != http.StatusNotFound {
		t.Errorf("POST to a kafka source: %d, want 404 (not served over HTTP)", got.code)
	}

	// The plugin down, and unable to restart: the source waits.
	hidden := plugin + ".away"
	if err := os.Rename(plugin, hidden); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pluginPIDs(t, plugin) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, pid := range pluginPIDs(t, hidden) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	produceRaw(t, b, page(40, 80))
	const retries = "auditpipe_kafka_retries_total"
	waitLong(t, "the source retrying", 30*time.Second, func() bool {
		return metric(t, r.url, retries, `reason="transformer_unavailable"`) >= 2
	})
	if lag := metric(t, r.url, "auditpipe_kafka_consumer_lag", ""); lag <= 0 {
		t.Errorf("lag %v while the plugin is down, want > 0", lag)
	}
	if err := os.Rename(hidden, plugin); err != nil {
		t.Fatal(err)
	}
	waitLong(t, "80 events", 60*time.Second, func() bool {
		ids := map[string]int{}
		eventIDs(t, filepath.Join(r.dir, "events.ndjson"), ids)
		return len(ids) == 80
	})
	waitLong(t, "lag 0", 30*time.Second, func() bool { return metric(t, r.url, "auditpipe_kafka_consumer_lag", "") == 0 })
	if got := metric(t, r.url, "auditpipe_kafka_messages_total", `outcome="dead_lettered"`); got != 1 {
		t.Errorf("dead-lettered messages %v, want 1", got)
	}
}
