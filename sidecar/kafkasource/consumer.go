package kafkasource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/internal/ingest"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/sidecar/queue"
)

// Options are what the sidecar provides a Consumer besides its Config.
type Options struct {
	// Source is the source name: event.source.name, the dead letters'
	// source and the metrics' label. Required.
	Source string
	// Stage runs a message through the source's transformer and labels.
	// Required.
	Stage *ingest.Stage
	// Enqueue durably queues events: when it returns nil they are on
	// disk. An error wrapping queue.ErrTooLarge is final (the events can
	// never fit) and the message is dead-lettered; any other error is
	// retried. Required.
	Enqueue func(ctx context.Context, events []auditpipe.Event) error
	// DeadLetters keeps the messages that cannot be transformed, durably.
	// Required.
	DeadLetters outputs.DeadLetterer
	// MaxMessageBytes dead-letters a message larger than this unread (the
	// source's max_body_bytes); 0 takes any.
	MaxMessageBytes int64
	// Logger receives the consumer's logs; nil discards them. Pass
	// logger.With("source", name): the consumer adds no source attribute.
	Logger *slog.Logger
	// Metrics, when set, is updated with this source's label.
	Metrics *Metrics
	// Now is the clock, for dead letters' times; default time.Now.
	Now func() time.Time
}

// Consumer is one Kafka source: a member of its consumer group that turns
// the messages of the partitions it owns into queued events. Run it once;
// see the package doc for the delivery guarantees.
type Consumer struct {
	cfg  Config
	opts Options
	log  *slog.Logger
	m    *Metrics
	kopt []kgo.Opt

	mu    sync.Mutex // guards parts
	parts map[tp]*partition

	runOnce   sync.Once
	closeOnce sync.Once
	closing   chan struct{} // closed by Close
	done      chan struct{} // closed when Run has returned (or never will run)
}

// tp names a partition.
type tp struct {
	topic string
	part  int32
}

// New applies the defaults, validates cfg and opts and prepares the
// client. It does not connect: Run joins the group.
func New(cfg Config, opts Options) (*Consumer, error) {
	cfg = cfg.WithDefaults()
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if opts.Source == "" {
		errs = append(errs, errors.New("kafka source: a source name is required"))
	}
	if opts.Stage == nil {
		errs = append(errs, errors.New("kafka source: an ingest stage is required"))
	}
	if opts.Enqueue == nil {
		errs = append(errs, errors.New("kafka source: an Enqueue function is required"))
	}
	if opts.DeadLetters == nil {
		errs = append(errs, errors.New("kafka source: a dead-letter store is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// The files are re-read when they change (cert-manager rotating
	// them): each new connection gets the current ones.
	tlsClient, err := cfg.TLS.Client(opts.Logger)
	if err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	opts.Metrics.init(opts.Source)
	c := &Consumer{cfg: cfg, opts: opts, log: opts.Logger, m: opts.Metrics, parts: map[tp]*partition{},
		closing: make(chan struct{}), done: make(chan struct{})}
	start := kgo.NewOffset().AtStart()
	if cfg.StartOffset == "latest" {
		start = kgo.NewOffset().AtEnd()
	}
	c.kopt = []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.DialTimeout(cfg.DialTimeout),
		kgo.ConsumerGroup(cfg.GroupID),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.ConsumeResetOffset(start),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.RebalanceTimeout(cfg.RebalanceTimeout),
		// Only offsets marked once their messages are durable are
		// committed: on the interval, on a rebalance and at shutdown.
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(cfg.CommitInterval),
		kgo.AutoCommitCallback(c.committed),
		// Records a poll returned are handed to their partitions'
		// workers before a rebalance may revoke those partitions.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(c.assigned),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
		kgo.FetchMaxBytes(int32(cfg.FetchMaxBytes)),
		kgo.FetchMaxPartitionBytes(int32(cfg.FetchMaxPartitionBytes)),
		// Messages of aborted transactions are not audit events anyone
		// meant to send.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.WithLogger(kgoLogger{opts.Logger}),
	}
	if tlsClient != nil {
		dial := (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext
		c.kopt = append(c.kopt, kgo.Dialer(tlsClient.DialContext(dial)))
	}
	if m := cfg.SASL.Franz(); m != nil {
		c.kopt = append(c.kopt, kgo.SASL(m))
		if cfg.SASL.IsPlain() && tlsClient == nil {
			opts.Logger.Warn("kafka source: sasl.mechanism plain without tls sends the password in clear text")
		}
	}
	if cfg.TLS.InsecureSkipVerify {
		opts.Logger.Warn("kafka source: tls.insecure_skip_verify is set: broker certificates are not verified")
	}
	return c, nil
}

// Run joins the group and consumes until ctx ends or Close is called, then
// shuts down: it stops fetching, lets each partition finish the batch it
// is persisting, commits what is durable and leaves the group, so that the
// other instances take the partitions over at once. It returns nil after a
// clean shutdown. Run may be called once.
func (c *Consumer) Run(ctx context.Context) error {
	err := errors.New("kafka source: Run called after Close or a second time")
	c.runOnce.Do(func() {
		defer close(c.done)
		err = c.run(ctx)
	})
	return err
}

// Close stops Run, as the end of its context does, and waits until it has
// returned. It may be called more than once, and before or without Run.
func (c *Consumer) Close() error {
	c.closeOnce.Do(func() { close(c.closing) })
	c.runOnce.Do(func() { close(c.done) })
	<-c.done
	return nil
}

func (c *Consumer) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	cl, err := kgo.NewClient(c.kopt...)
	if err != nil {
		return fmt.Errorf("kafka source: %w", err)
	}
	c.log.Info("kafka source joining its group", "brokers", c.cfg.Brokers, "topics", c.cfg.Topics, "group_id", c.cfg.GroupID)
	var failing bool
	for {
		fs := cl.PollRecords(ctx, c.cfg.MaxBufferedMessages)
		if ctx.Err() != nil || fs.IsClientClosed() {
			cl.AllowRebalance()
			break
		}
		var ferr error
		fs.EachError(func(topic string, part int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			c.m.FetchErrors.WithLabelValues(c.opts.Source).Inc()
			ferr = fmt.Errorf("%s[%d]: %w", topic, part, err)
		})
		switch {
		case ferr != nil && !failing:
			c.log.Warn("kafka source: fetching failed; the client retries", "err", ferr)
			failing = true
		case ferr == nil && failing && len(fs) > 0:
			c.log.Info("kafka source: fetching works again")
			failing = false
		}
		fs.EachPartition(func(p kgo.FetchTopicPartition) { c.dispatch(cl, p) })
		cl.AllowRebalance()
	}
	c.shutdown(cl)
	return nil
}

// shutdown finishes the partitions' work, commits and leaves the group.
func (c *Consumer) shutdown(cl *kgo.Client) {
	c.mu.Lock()
	all := map[string][]int32{}
	for k := range c.parts {
		all[k.topic] = append(all[k.topic], k.part)
	}
	c.mu.Unlock()
	c.stop(cl, all)
	ctx, cancel := context.WithTimeout(context.Background(), shutdownBound)
	defer cancel()
	c.commit(ctx, cl)
	// Leaving (which revokes what is left and commits again: a no-op by
	// now) moves the partitions at once rather than after the session
	// timeout. It waits for a rebalance under way, which waits for the
	// members that have not rejoined, dead ones too: it is bounded, and
	// the partitions then move when this member's session expires.
	left := make(chan struct{})
	go func() {
		defer close(left)
		if err := cl.LeaveGroupContext(ctx); err != nil {
			c.log.Warn("kafka source: leaving the group did not finish; its partitions move when the session expires", "err", err)
		}
		cl.Close()
	}()
	select {
	case <-left:
		c.log.Info("kafka source stopped: offsets committed, group left")
	case <-ctx.Done():
		c.log.Warn("kafka source: the client did not close in time; giving up on it", "after", shutdownBound)
	}
}

// shutdownBound bounds committing and leaving the group at shutdown,
// each, so that the sidecar stops within Kubernetes' grace period even
// when the brokers do not answer: what was not committed is read again.
const shutdownBound = 10 * time.Second

func (c *Consumer) commit(ctx context.Context, cl *kgo.Client) {
	ctx, cancel := context.WithTimeout(ctx, shutdownBound)
	defer cancel()
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		c.m.CommitErrors.WithLabelValues(c.opts.Source).Inc()
		c.log.Warn("kafka source: committing offsets failed; the partitions' next owners read those messages again", "err", err)
	}
}

// committed is told the result of every autocommit.
func (c *Consumer) committed(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
	if err == nil && resp != nil {
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil {
					err = errors.Join(err, fmt.Errorf("%s[%d]: %w", t.Topic, p.Partition, perr))
				}
			}
		}
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		c.m.CommitErrors.WithLabelValues(c.opts.Source).Inc()
		c.log.Warn("kafka source: committing offsets failed; retried with the next commit", "err", err)
	}
}

func (c *Consumer) assigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	n := 0
	c.mu.Lock()
	for topic, parts := range assigned {
		for _, p := range parts {
			k := tp{topic, p}
			if _, ok := c.parts[k]; ok {
				continue
			}
			pt := newPartition(c, cl, k)
			c.parts[k] = pt
			go pt.run()
			n++
		}
	}
	total := len(c.parts)
	c.mu.Unlock()
	if n > 0 {
		c.m.Rebalances.WithLabelValues(c.opts.Source, "assigned").Inc()
		c.m.Partitions.WithLabelValues(c.opts.Source).Set(float64(total))
		c.log.Info("kafka source: partitions assigned", "partitions", assigned, "owned", total)
	}
}

// revoked hands partitions over: each finishes the batch it is
// persisting, what is durable is committed, and the messages not yet
// persisted are dropped for the next owner to read.
func (c *Consumer) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	if n := c.stop(cl, revoked); n > 0 {
		c.commit(ctx, cl)
		c.m.Rebalances.WithLabelValues(c.opts.Source, "revoked").Inc()
		c.log.Info("kafka source: partitions revoked; durable offsets committed", "partitions", revoked)
	}
}

// lost drops partitions the group no longer counts as this instance's
// (the session expired): a commit would be refused, so the next owner
// reads again from the last committed offset.
func (c *Consumer) lost(ctx context.Context, cl *kgo.Client, lost map[string][]int32) {
	if n := c.stop(cl, lost); n > 0 {
		c.m.Rebalances.WithLabelValues(c.opts.Source, "lost").Inc()
		c.log.Warn("kafka source: partitions lost (the group dropped this member); their next owner reads again from the last commit", "partitions", lost)
	}
}

// stop stops the partitions' workers and waits for them; it returns how
// many there were.
func (c *Consumer) stop(cl *kgo.Client, which map[string][]int32) int {
	var stopped []*partition
	c.mu.Lock()
	for topic, parts := range which {
		for _, p := range parts {
			if pt, ok := c.parts[tp{topic, p}]; ok {
				delete(c.parts, tp{topic, p})
				stopped = append(stopped, pt)
			}
		}
	}
	total := len(c.parts)
	c.mu.Unlock()
	for _, pt := range stopped {
		pt.halt()
	}
	for _, pt := range stopped {
		<-pt.done
		c.m.Lag.DeleteLabelValues(c.opts.Source, pt.k.topic, strconv.Itoa(int(pt.k.part)))
	}
	if len(stopped) > 0 {
		// A paused partition stays paused across a reassignment to
		// this instance; its next owner here starts afresh.
		cl.ResumeFetchPartitions(which)
		c.m.Partitions.WithLabelValues(c.opts.Source).Set(float64(total))
	}
	return len(stopped)
}

// dispatch hands a poll's records for one partition to its worker.
func (c *Consumer) dispatch(cl *kgo.Client, p kgo.FetchTopicPartition) {
	c.mu.Lock()
	pt := c.parts[tp{p.Topic, p.Partition}]
	c.mu.Unlock()
	if pt == nil || (len(p.Records) == 0 && p.HighWatermark == 0) {
		return
	}
	pt.mu.Lock()
	pt.hw = p.HighWatermark
	if pt.next < 0 && len(p.Records) > 0 {
		pt.next = p.Records[0].Offset
	}
	pt.pending = append(pt.pending, p.Records...)
	if len(pt.pending) >= c.cfg.MaxBufferedMessages && !pt.paused {
		// The worker is behind (or waiting for a transformer or the
		// queue): stop fetching this partition rather than buffering,
		// and leave the others going.
		pt.paused = true
		cl.PauseFetchPartitions(map[string][]int32{p.Topic: {p.Partition}})
	}
	pt.setLag()
	pt.mu.Unlock()
	pt.wakeUp()
}

// kgoLogger passes the client's warnings and errors on; its info lines
// (every join and heartbeat session) go to debug.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel {
	if k.l.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelInfo
	}
	return kgo.LogLevelWarn
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		lv = slog.LevelError
	case kgo.LogLevelWarn:
		lv = slog.LevelWarn
	}
	k.l.Log(context.Background(), lv, "kafka client: "+msg, keyvals...)
}

// newBackoff is the wait between tries of a message that could not be
// persisted yet: from 100ms up to 10s, for as long as it takes.
func newBackoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = 10 * time.Second
	b.MaxElapsedTime = 0
	b.Reset()
	return b
}

// errTooLarge reports an Enqueue error that can never succeed.
func errTooLarge(err error) bool { return errors.Is(err, queue.ErrTooLarge) }
