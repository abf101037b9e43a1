package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestKafkaSource checks a kafka source's block with the rest of the
// configuration: every problem by its key path, and what only HTTP
// sources read refused.
func TestKafkaSource(t *testing.T) {
	const head = "sources:\n  - name: raw\n    format: app\n"
	tests := []struct {
		name string
		src  string // the source's keys after format
		want []string
	}{
		{"minimal", `    kafka: {brokers: ["k:9092"], topics: [raw], group_id: g}`, nil},
		{"every required key", `    kafka: {}`, []string{
			"sources[0] (raw).kafka.brokers: at least one required",
			"sources[0] (raw).kafka.topics: at least one required",
			"sources[0] (raw).kafka.group_id: required (instances with the same group_id share the partitions)",
		}},
		{"bad values", `    kafka: {brokers: ["k"], topics: ["a b"], group_id: g, start_offset: newest, session_timeout: 1s, sasl: {mechanism: plain}}`, []string{
			`sources[0] (raw).kafka.brokers[0]: "k" is not host:port`,
			`sources[0] (raw).kafka.topics[0]: topic name "a b": Kafka allows only ASCII letters, digits, '.', '_' and '-'`,
			`sources[0] (raw).kafka.start_offset: "newest" is not earliest or latest`,
			"sources[0] (raw).kafka.session_timeout: 1s is under 6s, the brokers' default group.min.session.timeout.ms",
			"sources[0] (raw).kafka.sasl.username: required with sasl.mechanism",
			"sources[0] (raw).kafka.sasl.password: required with sasl.mechanism",
		}},
		{"http keys refused", "    auth: {none: true}\n    rate_limit: {requests_per_second: 5}\n    pull: {url: \"http://yoq/v1/audit\"}\n" +
			`    kafka: {brokers: ["k:9092"], topics: [raw], group_id: g}`, []string{
			"sources[0] (raw).pull: not together with kafka: a source is either pulled or consumed from Kafka",
			"sources[0] (raw).auth: not with kafka: a Kafka source is not served over HTTP (the brokers' sasl and tls authenticate, their ACLs authorize)",
			"sources[0] (raw).rate_limit: not with kafka: a Kafka source consumes at its own pace",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(head+tt.src+"\n"), envOf(nil))
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if got := errLines(err.Error()); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestKafkaSourceDefaults(t *testing.T) {
	cfg, err := Parse([]byte("sources:\n  - {name: raw, kafka: {brokers: [\"k:9092\"], topics: [raw], group_id: g}}\n"), envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	k := cfg.Sources[0].Kafka
	if k.ClientID != "auditpipe" || k.StartOffset != "earliest" || k.SessionTimeout != 45*time.Second || k.CommitInterval != time.Second || k.BatchMessages != 256 {
		t.Errorf("defaults %+v", *k)
	}
}
