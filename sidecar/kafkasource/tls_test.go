package kafkasource_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditpipe/auditpipe/internal/kafkasasl"
	"github.com/auditpipe/auditpipe/internal/tlsfiles/tlsfilestest"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/testenv/kafkatest"
)

// The source reaches a broker that wants TLS and SCRAM with the keys the
// Kafka output takes.
func TestTLSAndSASL(t *testing.T) {
	ca := tlsfilestest.NewCA(t, "kafka-ca")
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := kafkatest.Start(kafkatest.Config{Topics: []string{"raw"}, Partitions: 1,
		TLS:   &tls.Config{Certificates: []tls.Certificate{ca.Server(t, "127.0.0.1").TLS(t)}, MinVersion: tls.VersionTLS12},
		Users: []kafkatest.User{{Mechanism: kafkatest.ScramSHA512, Username: "auditpipe", Password: "s3cret"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	produce(t, b, &kgo.Record{Topic: "raw", Value: entry(1)})
	cfg := testConfig(b, "g-tls")
	cfg.TLS = outputs.TLSConfig{CAFile: caFile}
	cfg.SASL = kafkasasl.Config{Mechanism: kafkasasl.ScramSHA512, Username: "auditpipe", Password: "s3cret"}
	s := newSink()
	startConsumer(t, cfg, appTransformer(t), s)
	waitFor(t, "the event", func() bool { d, _ := s.counts(); return d == 1 })
}
