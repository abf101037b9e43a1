// Command testenv runs auditpipe's test peers as one local stack: a Kafka
// broker, an Elasticsearch emulation, its OpenSearch flavour (requests
// signed with AWS SigV4 by the printed test keys), an S3 server
// (versitygw), a webhook sink and a Splunk HEC emulation, all on
// 127.0.0.1. It prints one NAME=value line per setting, creates the bucket
// and the topics, optionally writes an auditpipe outputs configuration
// pointing at all of them, and runs until SIGINT or SIGTERM.
//
//	go run ./testenv/cmd/testenv [--config-out FILE] [--env-out FILE]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/auditpipe/auditpipe/testenv/elastictest"
	"github.com/auditpipe/auditpipe/testenv/hectest"
	"github.com/auditpipe/auditpipe/testenv/kafkatest"
	"github.com/auditpipe/auditpipe/testenv/s3test"
	"github.com/auditpipe/auditpipe/testenv/webhooktest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		os.Exit(1)
	}
}

// Topics are created at start, one per source type, matching the kafka
// output's default topic template audit.{source}.
var topics = []string{"audit.spacelift", "audit.alertmanager", "audit.app", "audit.k8s"}

const (
	bucket        = "auditpipe"
	webhookSecret = "testenv-webhook-secret"
	splunkIndex   = "audit"
)

// openSearchSigV4 are the credentials the OpenSearch emulation verifies
// signatures with, as an Amazon OpenSearch Service domain would.
var openSearchSigV4 = elastictest.SigV4{Region: "us-east-1", Service: "es",
	AccessKeyID: "AKIATESTENVOPENSEARCH", SecretAccessKey: "testenv-opensearch-secret"}

// run starts the stack, reports its settings and blocks until ctx ends.
// ready, when not nil, receives the settings once everything is up (tests
// use it instead of parsing stdout).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready chan<- map[string]string) error {
	fs := flag.NewFlagSet("testenv", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kafkaAddr := fs.String("kafka-addr", "127.0.0.1:0", "Kafka broker listen address")
	esAddr := fs.String("es-addr", "127.0.0.1:0", "Elasticsearch emulation listen address")
	osAddr := fs.String("opensearch-addr", "127.0.0.1:0", "OpenSearch emulation listen address")
	s3Addr := fs.String("s3-addr", "", "S3 (versitygw) listen address (default 127.0.0.1 and a free port)")
	webhookAddr := fs.String("webhook-addr", "127.0.0.1:0", "webhook sink listen address")
	splunkAddr := fs.String("splunk-addr", "127.0.0.1:0", "Splunk HEC emulation listen address")
	dir := fs.String("dir", "", "directory for the S3 objects (default: a temporary directory, removed at exit)")
	configOut := fs.String("config-out", "", "write an auditpipe configuration with one output per peer to this file")
	envOut := fs.String("env-out", "", "also write the NAME=value lines to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}

	kb, err := kafkatest.Start(kafkatest.Config{Addr: *kafkaAddr, Topics: topics, AllowAutoTopicCreation: true})
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer kb.Close()
	es, err := elastictest.Start(elastictest.Config{Addr: *esAddr})
	if err != nil {
		return fmt.Errorf("elasticsearch: %w", err)
	}
	defer es.Close()
	sigv4 := openSearchSigV4
	ops, err := elastictest.Start(elastictest.Config{Addr: *osAddr, Flavor: elastictest.FlavorOpenSearch, SigV4: &sigv4})
	if err != nil {
		return fmt.Errorf("opensearch: %w", err)
	}
	defer ops.Close()
	sink, err := webhooktest.Start(webhooktest.Config{Addr: *webhookAddr, Secret: webhookSecret})
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer sink.Close()
	hec, err := hectest.Start(hectest.Config{Addr: *splunkAddr, Indexes: []string{"main", splunkIndex}})
	if err != nil {
		return fmt.Errorf("splunk: %w", err)
	}
	defer hec.Close()
	if _, err := s3test.Binary(); err != nil {
		return fmt.Errorf("s3: %w (build versitygw with `make testdeps`, or set %s)", err, s3test.EnvBinary)
	}
	if *dir != "" {
		if err := os.MkdirAll(*dir, 0o755); err != nil {
			return err
		}
	}
	s3, err := s3test.Start(ctx, s3test.Config{Addr: *s3Addr, Dir: *dir})
	if err != nil {
		return fmt.Errorf("s3: %w", err)
	}
	defer s3.Close()
	if err := s3.CreateBucket(ctx, bucket); err != nil {
		return fmt.Errorf("s3: create bucket: %w", err)
	}

	settings := []struct{ k, v string }{
		{"KAFKA_BROKERS", kb.Addrs()[0]},
		{"ES_URL", es.URL()},
		{"OPENSEARCH_URL", ops.URL()},
		{"OPENSEARCH_REGION", sigv4.Region},
		{"OPENSEARCH_ACCESS_KEY", sigv4.AccessKeyID},
		{"OPENSEARCH_SECRET_KEY", sigv4.SecretAccessKey},
		{"S3_ENDPOINT", s3.Endpoint()},
		{"S3_BUCKET", bucket},
		{"S3_ACCESS_KEY", s3.AccessKey()},
		{"S3_SECRET_KEY", s3.SecretKey()},
		{"S3_REGION", s3.Region()},
		{"WEBHOOK_URL", sink.URL()},
		{"WEBHOOK_SECRET", webhookSecret},
		{"WEBHOOK_INSPECT_URL", sink.InspectURL()},
		{"SPLUNK_HEC_URL", hec.URL()},
		{"SPLUNK_HEC_TOKEN", hec.Token()},
		{"SPLUNK_HEC_INSPECT_URL", hec.InspectURL()},
	}
	env := map[string]string{}
	var lines string
	for _, s := range settings {
		env[s.k] = s.v
		lines += s.k + "=" + s.v + "\n"
	}
	fmt.Fprint(stdout, lines)
	if *envOut != "" {
		if err := os.WriteFile(*envOut, []byte(lines), 0o600); err != nil {
			return err
		}
	}
	if *configOut != "" {
		if err := os.MkdirAll(filepath.Dir(*configOut), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(*configOut, []byte(config(env)), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "testenv: wrote %s\n", *configOut)
	}
	fmt.Fprintln(stderr, "testenv: running; stop with Ctrl-C")
	if ready != nil {
		ready <- env
	}
	<-ctx.Done()
	fmt.Fprintln(stderr, "testenv: stopping")
	return nil
}

// config is an auditpipe configuration with one output per peer.
func config(env map[string]string) string {
	return fmt.Sprintf(`# Written by testenv: one output per test peer.
dead_letter:
  dir: data/dlq
outputs:
  - name: kafka
    type: kafka
    kafka:
      brokers: [%q]
      topic: "audit.{source}"
  - name: elasticsearch
    type: elasticsearch
    elasticsearch:
      urls: [%q]
      index: "audit-{source}-{yyyy.MM.dd}"
  - name: opensearch
    type: opensearch
    opensearch:
      urls: [%q]
      index: "audit-{source}-{yyyy.MM.dd}"
      aws_sigv4: {region: %q, access_key_id: %q, secret_access_key: %q}
  - name: s3
    type: s3
    s3:
      bucket: %q
      region: %q
      endpoint: %q
      force_path_style: true
      access_key_id: %q
      secret_access_key: %q
  - name: security-webhook
    type: webhook
    match:
      - outcomes: [denied, failure]
    webhook:
      url: %q
      secret: %q
  - name: splunk
    type: splunk_hec
    splunk_hec:
      url: %q
      token: %q
      index: %q
      fields: [cluster]
`, env["KAFKA_BROKERS"], env["ES_URL"],
		env["OPENSEARCH_URL"], env["OPENSEARCH_REGION"], env["OPENSEARCH_ACCESS_KEY"], env["OPENSEARCH_SECRET_KEY"],
		env["S3_BUCKET"], env["S3_REGION"], env["S3_ENDPOINT"],
		env["S3_ACCESS_KEY"], env["S3_SECRET_KEY"], env["WEBHOOK_URL"], env["WEBHOOK_SECRET"],
		env["SPLUNK_HEC_URL"], env["SPLUNK_HEC_TOKEN"], splunkIndex)
}
