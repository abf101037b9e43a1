package flb

import (
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/outputs/elasticsearch"
	"github.com/auditpipe/auditpipe/outputs/kafka"
)

func TestParseConfigErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name string
		kv   []string
		want string
	}{
		{"no output", []string{"DLQ_Dir", "/tmp/x"}, "Output: required"},
		{"unknown output", []string{"Output", "splunk", "DLQ_Dir", "/tmp/x"}, "Output: \"splunk\""},
		{"missing brokers", []string{"Output", "kafka", "Kafka_Topic", "audit", "DLQ_Dir", "/tmp/x"}, "Kafka_Brokers:"},
		{"bad duration", []string{"Output", "kafka", "Kafka_Brokers", "a:9092", "Kafka_Topic", "t", "Kafka_Write_Timeout", "soon", "DLQ_Dir", "/tmp/x"}, "Kafka_Write_Timeout: \"soon\" is not a valid duration"},
		{"other output's key", []string{"Output", "file", "File_Path", "/tmp/e", "Webhook_URL", "http://x"}, "Webhook_URL: set, but Output is file"},
		{"dlq required", []string{"Output", "webhook", "Webhook_URL", "http://127.0.0.1:1/"}, "DLQ_Dir: required"},
		{"retry", []string{"Output", "stdout", "Retry_Max_Elapsed", "0s"}, "Retry_Max_Elapsed: must be positive"},
		{"retry syntax", []string{"Output", "stdout", "Retry_Max_Elapsed", "x"}, "Retry_Max_Elapsed: \"x\" is not a duration"},
		{"log level", []string{"Output", "stdout", "Log_Level", "loud"}, "Log_Level:"},
		{"config and output", []string{"Output", "stdout", "Config", "/x.yaml"}, "Output: set together with Config"},
		{"config missing", []string{"Config", "/nonexistent.yaml", "DLQ_Dir", "/tmp/x"}, "Config:"},
		{"bad name", []string{"Output", "stdout", "Output_Name", "a b"}, "Output_Name:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig(keys(tc.kv...))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseConfigKeys(t *testing.T) {
	c, err := ParseConfig(keys("output", "kafka", "KAFKA_BROKERS", "a:9092, b:9092", "Kafka_Topic", "audit",
		"Kafka_Write_Timeout", "3s", "Kafka_TLS_Enabled", "true", "dlq_dir", "/tmp/d", "Format", "alertmanager", "Alertname", "sec"))
	if err != nil {
		t.Fatal(err)
	}
	k, _ := c.Outputs[0].Settings.(*kafka.Config)
	if k == nil || len(k.Brokers) != 2 || k.Brokers[1] != "b:9092" || k.Topic != "audit" || k.WriteTimeout != 3*time.Second || !k.TLS.Enabled {
		t.Fatalf("kafka = %+v", k)
	}
	if c.Outputs[0].Retry.MaxElapsedTime != DefaultRetryMaxElapsed || c.Transformers.Alertmanager.Alertname != "sec" {
		t.Errorf("cfg = %+v", c)
	}
	c, err = ParseConfig(keys("Output", "elasticsearch", "Elasticsearch_URL", "https://es:9200", "Elasticsearch_API_Key", "k",
		"DLQ_Dir", "/tmp/d"))
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := c.Outputs[0].Settings.(*elasticsearch.Config); e == nil || len(e.URLs) != 1 || e.APIKey != "k" {
		t.Fatalf("elasticsearch = %+v", e)
	}
}

func TestParseConfigFile(t *testing.T) {
	path := t.TempDir() + "/auditpipe.yaml"
	writeFile(t, path, `
outputs:
  - name: all
    type: stdout
  - name: denied
    type: file
    match: {outcomes: [denied]}
    file: {path: /tmp/denied.ndjson}
labels: {cluster: "${AUDITPIPE_TEST_CLUSTER}", zone: "${AUDITPIPE_TEST_UNSET:-eu-1}"}
redact: {add_keys: [ssn]}
dead_letter: {dir: /tmp/dlq}
`)
	t.Setenv("AUDITPIPE_TEST_CLUSTER", "prod")
	c, err := ParseConfig(keys("Config", path))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Outputs) != 2 || c.Labels["cluster"] != "prod" || c.Labels["zone"] != "eu-1" || c.DLQDir != "/tmp/dlq" {
		t.Fatalf("cfg = %+v", c)
	}
	writeFile(t, path, "outputs: [{name: x, type: stdout}]\nlabels: {a: \"${AUDITPIPE_TEST_UNSET}\"}\n")
	if _, err := ParseConfig(keys("Config", path, "DLQ_Dir", "/tmp/d")); err == nil || !strings.Contains(err.Error(), "AUDITPIPE_TEST_UNSET") {
		t.Fatalf("unset variable: err = %v, want it named", err)
	}
	writeFile(t, path, "outputs: [{name: x, type: stdout}]\nsources: []\n")
	if _, err := ParseConfig(keys("Config", path, "DLQ_Dir", "/tmp/d")); err == nil || !strings.Contains(err.Error(), "Config:") {
		t.Fatalf("unknown section: err = %v", err)
	}
}
