// Package testenv is the home of the real protocol peers auditpipe is
// tested against, one package each, usable from tests and, through
// cmd/testenv, as one local stack:
//
//   - kafkatest: an in-process Kafka broker (franz-go's kfake) with fault
//     injection;
//   - elastictest: an emulation of the Elasticsearch HTTP API as
//     go-elasticsearch v8 sees it (no real server can run here);
//   - s3test: a real S3-compatible server, versitygw, run as a child
//     process over HTTP or TLS;
//   - webhooktest: a webhook receiver that verifies signatures and records
//     what it received;
//   - fluentbittest: a real Fluent Bit (FLB_BIN) run as a child process
//     with the output plugin loaded, and the plugin's tests in it.
package testenv
