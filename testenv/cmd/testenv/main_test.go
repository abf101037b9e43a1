package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	"github.com/auditpipe/auditpipe/outputs/fanout"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
	"github.com/auditpipe/auditpipe/outputs/standard"
	"github.com/auditpipe/auditpipe/testenv/s3test"
)

// TestStackReceivesEventsInAllFour is the quick start of the README: the
// stack comes up, its configuration builds, and events delivered through
// it can be read back from each peer with that peer's own client.
func TestStackReceivesEventsInAllFour(t *testing.T) {
	s3test.Require(t)
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "testenv.yaml")
	ready := make(chan map[string]string, 1)
	done := make(chan error, 1)
	var stdout, stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"--config-out", cfgPath, "--dir", filepath.Join(dir, "s3")}, &stdout, &stderr, ready)
	}()
	var env map[string]string
	select {
	case env = <-ready:
	case err := <-done:
		t.Fatalf("testenv stopped: %v\n%s", err, stderr.String())
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	for _, k := range []string{"KAFKA_BROKERS", "ES_URL", "OPENSEARCH_URL", "OPENSEARCH_REGION", "OPENSEARCH_ACCESS_KEY", "OPENSEARCH_SECRET_KEY", "S3_ENDPOINT", "S3_BUCKET", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_REGION", "WEBHOOK_URL", "WEBHOOK_SECRET", "WEBHOOK_INSPECT_URL", "SPLUNK_HEC_URL", "SPLUNK_HEC_TOKEN", "SPLUNK_HEC_INSPECT_URL"} {
		if env[k] == "" || !strings.Contains(stdout.String(), k+"="+env[k]+"\n") {
			t.Errorf("setting %s missing from stdout:\n%s", k, stdout.String())
		}
	}

	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Outputs []fanout.OutputConfig `yaml:"outputs"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	set, err := fanout.Build(ctx, standard.Registry(), cfg.Outputs, fanout.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close(context.Background())
	evs := outputstest.Events(8) // two of each source type; 2 denied, 2 failed
	dctx, dcancel := context.WithTimeout(ctx, time.Minute)
	defer dcancel()
	if err := set.Deliver(dctx, evs); err != nil {
		t.Fatal(err)
	}

	// Elasticsearch: every event, as a document.
	var count struct{ Count int }
	getJSON(t, env["ES_URL"]+"/audit-*/_count", &count)
	if count.Count != 8 {
		t.Errorf("elasticsearch holds %d documents, want 8", count.Count)
	}
	// OpenSearch: every event, through a signed request.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, env["OPENSEARCH_URL"]+"/audit-*/_count", nil)
	if err != nil {
		t.Fatal(err)
	}
	const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	creds := aws.Credentials{AccessKeyID: env["OPENSEARCH_ACCESS_KEY"], SecretAccessKey: env["OPENSEARCH_SECRET_KEY"]}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, emptySHA256, "es", env["OPENSEARCH_REGION"], time.Now()); err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	count.Count = 0
	if err := json.Unmarshal(b, &count); err != nil || count.Count != 8 {
		t.Errorf("opensearch holds %d documents, want 8 (HTTP %d %s)", count.Count, res.StatusCode, b)
	}
	// Webhook: only denied and failed events (the configuration's match).
	var inspected struct {
		Events []json.RawMessage `json:"events"`
	}
	getJSON(t, env["WEBHOOK_INSPECT_URL"], &inspected)
	if len(inspected.Events) != 4 {
		t.Errorf("webhook received %d events, want 4", len(inspected.Events))
	}
	// Splunk: every event, acknowledged, in the configured index.
	var hec struct {
		Indexes map[string][]json.RawMessage `json:"indexes"`
	}
	getJSON(t, env["SPLUNK_HEC_INSPECT_URL"], &hec)
	if len(hec.Indexes["audit"]) != 8 {
		t.Errorf("splunk index audit holds %d events, want 8", len(hec.Indexes["audit"]))
	}
	// Kafka: two per topic, keyed by id.
	cl, err := kgo.NewClient(kgo.SeedBrokers(env["KAFKA_BROKERS"]), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	keys := map[string]bool{}
	for len(keys) < 8 {
		fetches := cl.PollFetches(dctx)
		if err := dctx.Err(); err != nil {
			t.Fatalf("kafka: %d of 8 records: %v", len(keys), err)
		}
		fetches.EachRecord(func(r *kgo.Record) { keys[string(r.Key)] = true })
	}
	for _, ev := range evs {
		if !keys[ev.ID] {
			t.Errorf("kafka: no record keyed %s", ev.ID)
		}
	}
	// S3: one object per source type (all events fall in one hour).
	s3c := awss3.New(awss3.Options{Region: env["S3_REGION"], BaseEndpoint: aws.String(env["S3_ENDPOINT"]), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(env["S3_ACCESS_KEY"], env["S3_SECRET_KEY"], "")})
	list, err := s3c.ListObjectsV2(dctx, &awss3.ListObjectsV2Input{Bucket: aws.String(env["S3_BUCKET"])})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 4 {
		var ks []string
		for _, o := range list.Contents {
			ks = append(ks, *o.Key)
		}
		t.Errorf("s3 holds %d objects, want 4: %v", len(list.Contents), ks)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, b)
	}
}
