package kafka

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/auditpipe/auditpipe/internal/kafkasasl"
	"github.com/auditpipe/auditpipe/keypath"
	"github.com/auditpipe/auditpipe/outputs"
)

// Config is the kafka output's configuration, under the output entry's
// `kafka` key.
type Config struct {
	// Brokers are the bootstrap brokers, host:port. Required: at least one.
	Brokers []string `yaml:"brokers"`
	// Topic is the topic template (see outputs.Template): {source},
	// {source_name}, {format}, {outcome}, {label:NAME} and dates.
	// Default "audit.{source}".
	Topic string `yaml:"topic"`
	// ClientID is the client id the brokers see in their logs and quotas.
	// Default "auditpipe".
	ClientID string `yaml:"client_id"`
	// Compression is the codec for record batches: none, gzip, snappy,
	// lz4 or zstd. Default lz4: audit events are verbose JSON that shrinks
	// several times, the broker stores and replicates the batch as sent,
	// and lz4 is the cheapest codec to compress (Kafka 0.10+; franz-go
	// defaults to snappy for the same reason). none is for brokers that
	// recompress anyway or consumers that cannot decompress.
	Compression string `yaml:"compression"`
	// WriteTimeout bounds one produce request, from sending it to the
	// brokers' acknowledgement. Default 10s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// DialTimeout bounds connecting to a broker, TLS and SASL included.
	// Default 5s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// BatchTimeout is how long the writer waits for more records for a
	// partition before sending what it has. Every Write waits this long
	// unless its records fill a batch, so this is latency added to every
	// batch; the engine hands over whole batches and waits for them, so
	// little is gained by waiting longer. Default 1ms.
	BatchTimeout time.Duration `yaml:"batch_timeout"`
	// BatchSize is the most records in one produce request for one
	// partition. A full request is sent at once; only the last, partial
	// one of a Write waits for batch_timeout, so a Write's records for a
	// partition leave in one round whatever its size. kafka-go reserves
	// room for batch_size records in every partition's batch, so a large
	// value costs memory on every flush. Default 100.
	BatchSize int `yaml:"batch_size"`
	// BatchBytes is the most bytes of records in one produce request for
	// one partition. An event larger than this on its own is rejected
	// permanently without being sent. Keep it below the brokers' and
	// topics' max.message.bytes (Kafka's default is 1048588). Default
	// 1000000.
	BatchBytes int `yaml:"batch_bytes"`
	// MetadataTTL is how long the writer trusts its view of the cluster
	// (topics, partitions, leaders) before asking again; a topic created
	// after the output started is seen within this time. Default 6s.
	MetadataTTL time.Duration `yaml:"metadata_ttl"`
	// AllowAutoTopicCreation asks the brokers to create missing topics
	// (they do only with auto.create.topics.enable). Default false: a
	// missing topic is a retryable error until an operator creates it.
	AllowAutoTopicCreation bool `yaml:"allow_auto_topic_creation"`
	// SASL authenticates to the brokers. Default: no authentication.
	SASL SASLConfig `yaml:"sasl"`
	// TLS encrypts the connections: set `tls: {enabled: true}` for the
	// system's CAs, or any other field. Default: plain text.
	TLS outputs.TLSConfig `yaml:"tls"`
}

// SASLConfig is SASL authentication; the Kafka source accepts the same
// keys.
type SASLConfig = kafkasasl.Config

// The defaults of Config.
const (
	DefaultTopic        = "audit.{source}"
	DefaultClientID     = "auditpipe"
	DefaultCompression  = "lz4"
	DefaultWriteTimeout = 10 * time.Second
	DefaultDialTimeout  = 5 * time.Second
	DefaultBatchTimeout = time.Millisecond
	DefaultBatchSize    = 100
	DefaultBatchBytes   = 1000000
	DefaultMetadataTTL  = 6 * time.Second
)

// SASL mechanism names, as written in the configuration.
const (
	SASLPlain       = kafkasasl.Plain
	SASLScramSHA256 = kafkasasl.ScramSHA256
	SASLScramSHA512 = kafkasasl.ScramSHA512
)

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.Compression == "" {
		c.Compression = DefaultCompression
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = DefaultBatchTimeout
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = DefaultBatchBytes
	}
	if c.MetadataTTL == 0 {
		c.MetadataTTL = DefaultMetadataTTL
	}
	return c
}

// Validate reports every invalid field, each by its YAML name. Zero fields
// are valid: they take their defaults.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) { errs = append(errs, keypath.Errorf(key, format, a...)) }
	if len(c.Brokers) == 0 {
		bad("brokers", "at least one required")
	}
	for i, b := range c.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			bad(fmt.Sprintf("brokers[%d]", i), "%q is not host:port", b)
		}
	}
	if c.Topic != "" {
		t, err := outputs.ParseTemplate(c.Topic)
		switch {
		case err != nil:
			bad("topic", "%w", err)
		case t.IsConstant():
			if err := validTopic([]byte(c.Topic)); err != nil {
				bad("topic", "%w", err)
			}
		}
	}
	if _, err := codec(c.Compression); err != nil {
		bad("compression", "%w", err)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"write_timeout", c.WriteTimeout}, {"dial_timeout", c.DialTimeout},
		{"batch_timeout", c.BatchTimeout}, {"metadata_ttl", c.MetadataTTL},
	} {
		if d.v < 0 {
			bad(d.key, "must not be negative")
		}
	}
	if c.BatchSize < 0 {
		bad("batch_size", "must not be negative")
	}
	if c.BatchBytes < 0 {
		bad("batch_bytes", "must not be negative")
	}
	if err := c.SASL.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// codec returns kafka-go's codec for a compression name; 0 is none.
func codec(name string) (kafkago.Compression, error) {
	switch strings.ToLower(name) {
	case "":
		return codec(DefaultCompression)
	case "none":
		return 0, nil
	case "gzip":
		return kafkago.Gzip, nil
	case "snappy":
		return kafkago.Snappy, nil
	case "lz4":
		return kafkago.Lz4, nil
	case "zstd":
		return kafkago.Zstd, nil
	}
	return 0, fmt.Errorf("%q is not none, gzip, snappy, lz4 or zstd", name)
}

// validTopic applies Kafka's rules for topic names, so that a template
// that yields a bad name fails the event it was made from instead of the
// whole request.
func validTopic(t []byte) error {
	switch {
	case len(t) == 0:
		return errors.New("topic name is empty")
	case len(t) > 249:
		return fmt.Errorf("topic name %.40q... is %d characters, over Kafka's 249", t, len(t))
	case string(t) == "." || string(t) == "..":
		return fmt.Errorf("topic name %q is not allowed", t)
	}
	for _, c := range t {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic name %q: Kafka allows only ASCII letters, digits, '.', '_' and '-'", t)
		}
	}
	return nil
}
