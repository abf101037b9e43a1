package kafkatest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// The SASL mechanisms a User may have.
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
)

// Config configures a Broker. The zero value is a plain-text broker on a
// free loopback port with no topics.
type Config struct {
	// Topics are created at start with Partitions partitions each.
	Topics []string
	// Partitions is the partition count of Topics, of CreateTopic calls
	// with 0 partitions and of auto-created topics. Default 3.
	Partitions int
	// Addr is the address to listen on. Default "127.0.0.1:0", a free
	// port; Addrs reports the one chosen.
	Addr string
	// Users turns SASL on: clients must authenticate as one of them. The
	// first one is also what Records and Client authenticate as.
	Users []User
	// TLS, when set, makes the listener speak TLS only, with this server
	// configuration (it must hold a certificate).
	TLS *tls.Config
	// ClientTLS is what Records and Client use to reach a TLS broker,
	// typically trusting the CA that signed TLS's certificate. Default
	// when TLS is set: no verification (the broker is ours).
	ClientTLS *tls.Config
	// AllowAutoTopicCreation lets a Metadata request create the topics it
	// names, as a real broker with auto.create.topics.enable=true does.
	AllowAutoTopicCreation bool
	// MaxMessageBytes is the broker's message.max.bytes: the largest record
	// batch a Produce request may carry. Default Kafka's 1048588.
	MaxMessageBytes int
}

// User is a SASL user.
type User struct {
	// Mechanism is Plain, ScramSHA256 or ScramSHA512.
	Mechanism string
	Username  string
	Password  string
}

// Broker is a running in-process Kafka broker.
type Broker struct {
	c     *kfake.Cluster
	cfg   Config
	addrs []string

	closeOnce sync.Once
	// done is closed by Close, so that held requests let go.
	done chan struct{}
}

// Start starts a broker.
func Start(cfg Config) (*Broker, error) {
	if cfg.Partitions == 0 {
		cfg.Partitions = 3
	}
	if cfg.Partitions < 0 {
		return nil, fmt.Errorf("kafkatest: partitions: %d is negative", cfg.Partitions)
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	addr := cfg.Addr
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(cfg.Partitions),
		// kfake listens on 127.0.0.1 with the port it is given; this
		// lets Addr choose the host as well.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, addr) }),
	}
	if len(cfg.Topics) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(cfg.Partitions), cfg.Topics...))
	}
	if cfg.AllowAutoTopicCreation {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	if cfg.MaxMessageBytes > 0 {
		opts = append(opts, kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(cfg.MaxMessageBytes)}))
	}
	if len(cfg.Users) > 0 {
		opts = append(opts, kfake.EnableSASL())
		for _, u := range cfg.Users {
			switch u.Mechanism {
			case Plain, ScramSHA256, ScramSHA512:
			default:
				return nil, fmt.Errorf("kafkatest: user %q: unknown SASL mechanism %q", u.Username, u.Mechanism)
			}
			opts = append(opts, kfake.Superuser(u.Mechanism, u.Username, u.Password))
		}
	}
	if cfg.TLS != nil {
		opts = append(opts, kfake.TLS(cfg.TLS))
		if cfg.ClientTLS == nil {
			cfg.ClientTLS = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // our own broker
		}
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafkatest: start broker on %s: %w", cfg.Addr, err)
	}
	return &Broker{c: c, cfg: cfg, addrs: c.ListenAddrs(), done: make(chan struct{})}, nil
}

// Addrs returns the host:port addresses of the broker, for a client's
// bootstrap list.
func (b *Broker) Addrs() []string { return slices.Clone(b.addrs) }

// Cluster returns the kfake cluster, for what this package does not wrap.
func (b *Broker) Cluster() *kfake.Cluster { return b.c }

// Close stops the broker and drops its connections and data. It is safe to
// call more than once.
func (b *Broker) Close() {
	b.closeOnce.Do(func() {
		close(b.done)
		b.c.Close()
	})
}

// CreateTopic creates a topic with the given partition count (0 means
// Config.Partitions).
func (b *Broker) CreateTopic(topic string, partitions int) error {
	if partitions == 0 {
		partitions = b.cfg.Partitions
	}
	if err := b.c.CreateTopic(topic, int32(partitions), nil); err != nil {
		return fmt.Errorf("kafkatest: create topic %q: %w", topic, err)
	}
	return nil
}

// Partitions returns the number of partitions of topic, 0 when it does not
// exist.
func (b *Broker) Partitions(topic string) int { return len(b.c.PartitionInfos(topic)) }

// Count returns the number of records the broker holds for topic.
func (b *Broker) Count(topic string) int64 {
	var n int64
	for _, p := range b.c.PartitionInfos(topic) {
		n += p.HighWatermark - p.LogStartOffset
	}
	return n
}

// ClientOpts returns the kgo options that reach this broker: the seed
// addresses and, when configured, TLS and SASL as the first user.
func (b *Broker) ClientOpts() []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(b.addrs...)}
	if b.cfg.ClientTLS != nil {
		opts = append(opts, kgo.DialTLSConfig(b.cfg.ClientTLS.Clone()))
	}
	if len(b.cfg.Users) > 0 {
		opts = append(opts, kgo.SASL(mechanism(b.cfg.Users[0])))
	}
	return opts
}

// Client returns a franz-go client connected to the broker, with
// ClientOpts followed by opts. The caller closes it.
func (b *Broker) Client(opts ...kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append(b.ClientOpts(), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafkatest: client: %w", err)
	}
	return cl, nil
}

func mechanism(u User) sasl.Mechanism {
	switch u.Mechanism {
	case ScramSHA256:
		return scram.Auth{User: u.Username, Pass: u.Password}.AsSha256Mechanism()
	case ScramSHA512:
		return scram.Auth{User: u.Username, Pass: u.Password}.AsSha512Mechanism()
	default:
		return plain.Auth{User: u.Username, Pass: u.Password}.AsMechanism()
	}
}

// Records consumes topic with a franz-go client, as an independent
// consumer would, and returns every record the topic held when Records was
// called (keys, values, headers, timestamps), sorted by partition and
// offset.
func (b *Broker) Records(ctx context.Context, topic string) ([]*kgo.Record, error) {
	parts := b.c.PartitionInfos(topic)
	if parts == nil {
		return nil, fmt.Errorf("kafkatest: records of %q: %w", topic, kerr.UnknownTopicOrPartition)
	}
	// The high watermarks now are where consuming stops: a consumer has no
	// other way to know it has seen everything.
	end := make(map[int32]int64)
	start := make(map[int32]kgo.Offset)
	for _, p := range parts {
		if p.HighWatermark > p.LogStartOffset {
			end[p.Partition] = p.HighWatermark
			start[p.Partition] = kgo.NewOffset().At(p.LogStartOffset)
		}
	}
	if len(end) == 0 {
		return nil, nil
	}
	cl, err := b.Client(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		return nil, err
	}
	defer cl.Close()

	var recs []*kgo.Record
	for len(end) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("kafkatest: records of %q: %d partitions not read to the end: %w", topic, len(end), err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("partition %d: %w", p, err))
		})
		if ferr != nil {
			return nil, fmt.Errorf("kafkatest: records of %q: %w", topic, ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			stop, ok := end[r.Partition]
			if !ok || r.Offset >= stop {
				return
			}
			recs = append(recs, r)
			if r.Offset+1 >= stop {
				delete(end, r.Partition)
			}
		})
	}
	slices.SortFunc(recs, func(x, y *kgo.Record) int {
		if x.Partition != y.Partition {
			return int(x.Partition - y.Partition)
		}
		return int(x.Offset - y.Offset)
	})
	return recs, nil
}

// ProduceFault selects produce requests to fail and the error to answer
// them with.
type ProduceFault struct {
	// Topic limits the fault to one topic; "" means every topic.
	Topic string
	// Partitions limits the fault to these partitions; nil means all.
	Partitions []int32
	// Err is the error code: a retriable one such as
	// kerr.NotEnoughReplicas or kerr.LeaderNotAvailable, or a
	// record-specific one such as kerr.MessageTooLarge or
	// kerr.InvalidRecord. Default kerr.UnknownServerError.
	Err *kerr.Error
	// Count is the number of produce requests to fail: 0 means one, -1
	// every one until Fault.Remove. Requests with several matching
	// partitions count once and fail every matching partition.
	Count int
}

// Fault is an installed fault.
type Fault struct{ h *kfake.FaultHandle }

// FailProduce makes matching produce requests fail with f.Err, for the
// matching partitions only: other partitions of the same request are
// written as usual. The records of a failed partition are not written.
func (b *Broker) FailProduce(f ProduceFault) *Fault {
	return &Fault{b.c.Fault(kfake.Fault{
		Keys:       []kmsg.Key{kmsg.Produce},
		Topic:      f.Topic,
		Partitions: slices.Clone(f.Partitions),
		Err:        f.Err,
		Count:      f.Count,
	})}
}

// Hits is the number of requests the fault has answered.
func (f *Fault) Hits() int { return f.h.Hits() }

// Wait blocks until the fault has answered n requests or ctx ends.
func (f *Fault) Wait(ctx context.Context, n int) error { return f.h.Wait(ctx, n) }

// Remove uninstalls the fault.
func (f *Fault) Remove() { f.h.Remove() }

// HoldProduce holds the next n produce requests (0 means one, -1 every one
// until release) without answering them, as a broker that stopped
// responding would. release lets them go: they are then written and
// answered as usual, although the client has probably given up on them by
// then, and later requests are no longer held. Close also lets them go.
// held reports how many requests have been held so far, so that a test can
// wait for the hang to begin.
func (b *Broker) HoldProduce(n int) (release func(), held func() int) {
	ch := make(chan struct{})
	var once sync.Once
	held = b.slowProduce(n, ch, func() {
		select {
		case <-ch:
		case <-b.done:
		}
	})
	return func() { once.Do(func() { close(ch) }) }, held
}

// DelayProduce answers the next n produce requests (0 means one, -1 every
// one until stop) d late, as a slow broker would. stop ends the delay for
// requests that arrive afterwards; requests already delayed keep theirs.
func (b *Broker) DelayProduce(n int, d time.Duration) (stop func()) {
	ch := make(chan struct{})
	var once sync.Once
	b.slowProduce(n, ch, func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-b.done:
		}
	})
	return func() { once.Do(func() { close(ch) }) }
}

// slowProduce installs a control that makes up to n produce requests wait
// for wait to return before the broker handles them as usual. wait must
// return once b.done is closed: kfake wakes its own side of a sleeping
// control on Close but not the goroutine running wait.
func (b *Broker) slowProduce(n int, stop <-chan struct{}, wait func()) (taken func() int) {
	if n == 0 {
		n = 1
	}
	var mu sync.Mutex
	count := 0
	b.c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		mu.Lock()
		select {
		case <-stop:
			mu.Unlock()
			b.c.DropControl()
			return nil, nil, false
		default:
		}
		if n > 0 && count >= n {
			mu.Unlock()
			b.c.DropControl()
			return nil, nil, false
		}
		count++
		if n > 0 && count == n {
			b.c.DropControl()
		}
		mu.Unlock()
		b.c.SleepControl(wait)
		// Not handled: the broker now writes and answers the request.
		return nil, nil, false
	})
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return count
	}
}
