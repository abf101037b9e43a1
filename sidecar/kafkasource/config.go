package kafkasource

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/internal/kafkasasl"
	"github.com/auditpipe/auditpipe/keypath"
	"github.com/auditpipe/auditpipe/outputs"
)

// Config is a source's `kafka` block.
type Config struct {
	// Brokers are the bootstrap brokers, host:port. Required: at least one.
	Brokers []string `yaml:"brokers"`
	// Topics are consumed; each message is one payload. Required: at
	// least one.
	Topics []string `yaml:"topics"`
	// GroupID is the consumer group: every instance with the same group id
	// (and topics) shares the topics' partitions. Required.
	GroupID string `yaml:"group_id"`
	// ClientID is the client id the brokers see in their logs and quotas.
	// Default "auditpipe".
	ClientID string `yaml:"client_id"`
	// StartOffset is where a group with no committed offset for a
	// partition starts: earliest (default: nothing already in the topic
	// is skipped) or latest.
	StartOffset string `yaml:"start_offset"`
	// SessionTimeout is how long the group coordinator waits for an
	// instance's heartbeat before it hands the instance's partitions to
	// the others: the time a killed instance's partitions stand still.
	// Brokers accept 6s to 30m by default. Default 45s (Kafka's).
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// RebalanceTimeout is how long the members of a rebalancing group have
	// to finish what they are doing with revoked partitions and rejoin.
	// Default 60s.
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`
	// CommitInterval is how often the offsets of messages whose events
	// are in the queue are committed (and always on a rebalance and at
	// shutdown): after a crash, up to this much is read again. Default 1s.
	CommitInterval time.Duration `yaml:"commit_interval"`
	// DialTimeout bounds connecting to a broker, TLS and SASL included.
	// Default 10s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// FetchMaxBytes bounds one fetch response, across its partitions.
	// Default 16 MiB.
	FetchMaxBytes int `yaml:"fetch_max_bytes"`
	// FetchMaxPartitionBytes bounds one partition's share of a fetch;
	// make it at least the topics' largest message. Default 1 MiB.
	FetchMaxPartitionBytes int `yaml:"fetch_max_partition_bytes"`
	// MaxBufferedMessages is how many fetched messages a partition may
	// have waiting to be processed; beyond it, fetching that partition
	// pauses. Default 1000.
	MaxBufferedMessages int `yaml:"max_buffered_messages"`
	// BatchMessages is the most messages of a partition whose events go
	// into the queue with one append (one fsync). Default 256.
	BatchMessages int `yaml:"batch_messages"`
	// SASL authenticates to the brokers, as the Kafka output's does.
	// Default: no authentication.
	SASL kafkasasl.Config `yaml:"sasl"`
	// TLS encrypts the connections: `tls: {enabled: true}` for the
	// system's CAs, or any other field. Default: plain text.
	TLS outputs.TLSConfig `yaml:"tls"`
}

// The defaults of Config.
const (
	DefaultClientID               = "auditpipe"
	DefaultStartOffset            = "earliest"
	DefaultSessionTimeout         = 45 * time.Second
	DefaultRebalanceTimeout       = 60 * time.Second
	DefaultCommitInterval         = time.Second
	DefaultDialTimeout            = 10 * time.Second
	DefaultFetchMaxBytes          = 16 << 20
	DefaultFetchMaxPartitionBytes = 1 << 20
	DefaultMaxBufferedMessages    = 1000
	DefaultBatchMessages          = 256
)

// MinSessionTimeout is Kafka's default group.min.session.timeout.ms: a
// shorter session is refused by the brokers at join time, which would
// only show in the logs.
const MinSessionTimeout = 6 * time.Second

// MinCommitInterval is the shortest commit_interval the client takes.
const MinCommitInterval = 100 * time.Millisecond

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.StartOffset == "" {
		c.StartOffset = DefaultStartOffset
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.SessionTimeout, DefaultSessionTimeout)
	def(&c.RebalanceTimeout, DefaultRebalanceTimeout)
	def(&c.CommitInterval, DefaultCommitInterval)
	def(&c.DialTimeout, DefaultDialTimeout)
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	defInt(&c.FetchMaxBytes, DefaultFetchMaxBytes)
	defInt(&c.FetchMaxPartitionBytes, DefaultFetchMaxPartitionBytes)
	defInt(&c.MaxBufferedMessages, DefaultMaxBufferedMessages)
	defInt(&c.BatchMessages, DefaultBatchMessages)
	return c
}

// Validate reports every invalid field, each as a keypath.Error from the
// `kafka` block down (brokers[0], sasl.mechanism). Zero fields stand for
// their defaults; call it on WithDefaults' result to check those too.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) { errs = append(errs, keypath.Errorf(key, format, a...)) }
	if len(c.Brokers) == 0 {
		bad("brokers", "at least one required")
	}
	for i, b := range c.Brokers {
		if host, port, err := net.SplitHostPort(b); err != nil || host == "" || port == "" {
			bad(fmt.Sprintf("brokers[%d]", i), "%q is not host:port", b)
		}
	}
	if len(c.Topics) == 0 {
		bad("topics", "at least one required")
	}
	seen := map[string]int{}
	for i, t := range c.Topics {
		key := fmt.Sprintf("topics[%d]", i)
		if err := validTopic(t); err != nil {
			bad(key, "%w", err)
		} else if j, dup := seen[t]; dup {
			bad(key, "%q already listed as topics[%d]", t, j)
		}
		seen[t] = i
	}
	switch {
	case c.GroupID == "":
		bad("group_id", "required (instances with the same group_id share the partitions)")
	case strings.TrimSpace(c.GroupID) != c.GroupID || strings.ContainsAny(c.GroupID, "\x00\r\n"):
		bad("group_id", "%q has leading or trailing white space or control characters", c.GroupID)
	}
	switch c.StartOffset {
	case "", "earliest", "latest":
	default:
		bad("start_offset", "%q is not earliest or latest", c.StartOffset)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"session_timeout", c.SessionTimeout}, {"rebalance_timeout", c.RebalanceTimeout},
		{"commit_interval", c.CommitInterval}, {"dial_timeout", c.DialTimeout},
	} {
		if d.v < 0 {
			bad(d.key, "must not be negative")
		}
	}
	if c.SessionTimeout > 0 && c.SessionTimeout < MinSessionTimeout {
		bad("session_timeout", "%s is under %s, the brokers' default group.min.session.timeout.ms", c.SessionTimeout, MinSessionTimeout)
	}
	if c.SessionTimeout > 0 && c.RebalanceTimeout > 0 && c.RebalanceTimeout < c.SessionTimeout/3 {
		bad("rebalance_timeout", "%s is too short next to session_timeout %s: a rebalance would evict members still finishing", c.RebalanceTimeout, c.SessionTimeout)
	}
	for _, n := range []struct {
		key string
		v   int
	}{
		{"fetch_max_bytes", c.FetchMaxBytes}, {"fetch_max_partition_bytes", c.FetchMaxPartitionBytes},
		{"max_buffered_messages", c.MaxBufferedMessages}, {"batch_messages", c.BatchMessages},
	} {
		if n.v < 0 {
			bad(n.key, "must not be negative")
		} else if n.v > 1<<30 {
			bad(n.key, "%d is over 1 GiB", n.v)
		}
	}
	if c.CommitInterval > 0 && c.CommitInterval < MinCommitInterval {
		bad("commit_interval", "%s is under %s", c.CommitInterval, MinCommitInterval)
	}
	if c.FetchMaxBytes > 0 && c.FetchMaxPartitionBytes > c.FetchMaxBytes {
		bad("fetch_max_partition_bytes", "%d exceeds fetch_max_bytes %d", c.FetchMaxPartitionBytes, c.FetchMaxBytes)
	}
	if err := c.SASL.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validTopic applies Kafka's rules for topic names.
func validTopic(t string) error {
	switch {
	case t == "":
		return errors.New("topic name is empty")
	case len(t) > 249:
		return fmt.Errorf("topic name %.40q... is %d characters, over Kafka's 249", t, len(t))
	case t == "." || t == "..":
		return fmt.Errorf("topic name %q is not allowed", t)
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic name %q: Kafka allows only ASCII letters, digits, '.', '_' and '-'", t)
		}
	}
	return nil
}
