package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/outputs"
)

// Output produces events to Kafka. It is safe for concurrent use.
type Output struct {
	cfg   Config
	topic outputs.Template
	// constTopic is the topic when the template has no placeholder, so
	// that Write need not render it per event.
	constTopic string
	maxBytes   int64
	w          *kafkago.Writer
	tr         *kafkago.Transport
	log        *slog.Logger

	// states recycles Write's buffers. A Write whose context ended gives
	// its buffers up instead: kafka-go may still be sending them.
	states sync.Pool

	// auth is how the last SASL exchange ended (authNone without SASL).
	auth atomic.Int32

	closed    atomic.Bool
	closeOnce sync.Once
	closeDone chan struct{}
}

var _ outputs.Output = (*Output)(nil)

// errClosed is retryable: the events are kept for whoever retries them
// through a new output.
var errClosed = errors.New("kafka: output closed")

// New validates cfg, with defaults applied, and returns the output. It does
// not connect: brokers that are down now are retried by the Deliverer once
// events arrive. A nil logger discards.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Output, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	tmpl, err := outputs.ParseTemplate(cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("kafka: topic: %w", err)
	}
	comp, err := codec(cfg.Compression)
	if err != nil {
		return nil, fmt.Errorf("kafka: compression: %w", err)
	}
	tlsClient, err := cfg.TLS.Client(logger)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	// Our own transport, not kafka-go's shared DefaultTransport, so that
	// Close can drop its connections and stop its metadata goroutine.
	tr := &kafkago.Transport{
		DialTimeout: cfg.DialTimeout,
		MetadataTTL: cfg.MetadataTTL,
		ClientID:    cfg.ClientID,
	}
	if tlsClient != nil {
		// The handshake in our dialer, not kafka-go's: each connection
		// gets a configuration made with the files' current content.
		tr.Dial = tlsClient.DialContext((&net.Dialer{KeepAlive: 30 * time.Second}).DialContext)
	}
	w := &kafkago.Writer{
		Addr:      kafkago.TCP(cfg.Brokers...),
		Transport: tr,
		// The zero value is acks=none: records the leader never wrote
		// would count as delivered.
		RequiredAcks: kafkago.RequireAll,
		Async:        false,
		// One attempt: the Deliverer retries, re-sending only what
		// failed, with its own back-off.
		MaxAttempts:  1,
		BatchTimeout: cfg.BatchTimeout,
		BatchSize:    cfg.BatchSize,
		BatchBytes:   int64(cfg.BatchBytes),
		ReadTimeout:  cfg.WriteTimeout,
		WriteTimeout: cfg.WriteTimeout,
		Compression:  comp,
		// Keyed by event id the way Java clients and librdkafka partition
		// (murmur2), so an event sent twice lands in the same partition
		// and compaction or a consumer can drop the copy.
		Balancer:               kafkago.Murmur2Balancer{},
		AllowAutoTopicCreation: cfg.AllowAutoTopicCreation,
	}
	// kafka-go formats its log lines whether or not anyone reads them, so
	// it only gets a logger when debug output is on.
	if logger.Enabled(ctx, slog.LevelDebug) {
		lf := kafkago.LoggerFunc(func(msg string, args ...any) { logger.Debug("kafka-go: " + fmt.Sprintf(msg, args...)) })
		w.Logger, w.ErrorLogger = lf, lf
	}
	o := &Output{
		cfg:       cfg,
		topic:     tmpl,
		maxBytes:  int64(cfg.BatchBytes),
		w:         w,
		tr:        tr,
		log:       logger,
		closeDone: make(chan struct{}),
	}
	if tmpl.IsConstant() {
		o.constTopic = cfg.Topic
	}
	if m := mechanism(cfg.SASL); m != nil {
		tr.SASL = authTracker{m: m, state: &o.auth}
	}
	if cfg.SASL.Mechanism != "" && strings.EqualFold(cfg.SASL.Mechanism, SASLPlain) && tlsClient == nil {
		logger.Warn("kafka: sasl.mechanism plain without tls sends the password in clear text")
	}
	if cfg.TLS.InsecureSkipVerify {
		logger.Warn("kafka: tls.insecure_skip_verify is set: broker certificates are not verified")
	}
	logger.Info("kafka output ready", "brokers", cfg.Brokers, "topic", cfg.Topic,
		"compression", cfg.Compression, "sasl", strings.ToLower(cfg.SASL.Mechanism), "tls", tlsClient != nil)
	return o, nil
}

// writeState is one Write's working memory.
type writeState struct {
	buf     []byte
	hdrs    []kafkago.Header
	msgs    []kafkago.Message
	idx     []int   // idx[j] is the event index of msgs[j]
	gid     []int   // gid[i] is event i's group, -1 when it failed early
	groups  []group // one per topic
	scratch []byte
}

// group is the messages of one topic: msgs[start:end].
type group struct {
	topic      string
	start, end int
	err        error
}

// Write produces events, one record each, and waits for the brokers'
// acknowledgement (or write_timeout, or ctx). It returns nil when every
// record was acknowledged, the classified error when the whole batch failed
// alike, and otherwise an *outputs.PartialError listing the events that
// failed.
func (o *Output) Write(ctx context.Context, events []auditpipe.Event) error {
	if o.closed.Load() {
		return errClosed
	}
	if len(events) == 0 {
		return nil
	}
	st, _ := o.states.Get().(*writeState)
	if st == nil {
		st = new(writeState)
	}
	fails := o.encode(st, events, time.Now())

	// One WriteMessages per topic, concurrently: a topic that fails as a
	// whole (missing, not authorized) fails only its own events, and
	// topics do not queue behind each other's batch timeout.
	groups := st.groups
	var wg sync.WaitGroup
	for k := 1; k < len(groups); k++ {
		if groups[k].start == groups[k].end {
			continue
		}
		wg.Add(1)
		go func(g *group) {
			defer wg.Done()
			g.err = o.w.WriteMessages(ctx, st.msgs[g.start:g.end]...)
		}(&groups[k])
	}
	if len(groups) > 0 && groups[0].start < groups[0].end {
		groups[0].err = o.w.WriteMessages(ctx, st.msgs[groups[0].start:groups[0].end]...)
	}
	wg.Wait()

	var whole error
	for k := range groups {
		g := &groups[k]
		if g.err == nil {
			continue
		}
		var w error
		fails, w = o.failures(ctx, fails, g, st.msgs[g.start:g.end], st.idx[g.start:g.end])
		if w != nil && g.end-g.start == len(events) {
			whole = w
		}
		g.err = nil
	}
	// kafka-go keeps sending what it had when the context ended, from our
	// buffers.
	if ctx.Err() == nil {
		o.states.Put(st)
	}

	switch {
	case whole != nil:
		return whole
	case len(fails) == 0:
		return nil
	}
	slices.SortFunc(fails, func(a, b outputs.Failure) int { return a.Index - b.Index })
	return &outputs.PartialError{Failures: fails}
}

// encode renders the topics, groups the events by topic and builds their
// messages into st. It returns the events that failed before sending: a
// template that yields an invalid topic name, an event too large to send.
func (o *Output) encode(st *writeState, events []auditpipe.Event, now time.Time) []outputs.Failure {
	var fails []outputs.Failure
	n := len(events)
	st.gid = resize(st.gid, n)
	st.groups = st.groups[:0]
	if o.constTopic != "" {
		st.groups = append(st.groups, group{topic: o.constTopic, end: n})
		for i := range st.gid {
			st.gid[i] = 0
		}
	} else {
		for i := range events {
			st.scratch = o.topic.Append(st.scratch[:0], &events[i])
			g := -1
			for k := range st.groups {
				if st.groups[k].topic == string(st.scratch) {
					g = k
					break
				}
			}
			if g < 0 {
				if err := validTopic(st.scratch); err != nil {
					fails = append(fails, outputs.Failure{Index: i, Err: outputs.Permanent(
						fmt.Errorf("kafka: topic template %q: %w", o.cfg.Topic, err))})
					st.gid[i] = -1
					continue
				}
				g = len(st.groups)
				st.groups = append(st.groups, group{topic: string(st.scratch)})
			}
			st.gid[i] = g
			st.groups[g].end++ // a count until the offsets below
		}
	}
	off := 0
	for k := range st.groups {
		g := &st.groups[k]
		g.start, g.end, off = off, off, off+g.end
	}

	st.msgs = resize(st.msgs, off)
	st.idx = resize(st.idx, off)
	if cap(st.hdrs) < n*maxHeaders {
		st.hdrs = make([]kafkago.Header, 0, n*maxHeaders)
	}
	hdrs := st.hdrs[:0]
	buf := st.buf[:0]
	for i := range events {
		k := st.gid[i]
		if k < 0 {
			continue
		}
		g := &st.groups[k]
		m := &st.msgs[g.end]
		buf, hdrs, *m = appendMessage(buf, hdrs, g.topic, &events[i], now)
		if size := messageSize(m); size > o.maxBytes {
			fails = append(fails, outputs.Failure{Index: i, Err: outputs.Permanent(
				fmt.Errorf("kafka: event is %d bytes as a record, over batch_bytes (%d)", size, o.maxBytes))})
			continue
		}
		st.idx[g.end] = i
		g.end++
	}
	st.buf, st.hdrs = buf, hdrs
	return fails
}

func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// failures appends the failures of group g, whose WriteMessages returned
// g.err, to fails. When the whole group failed with one error it also
// returns that error.
func (o *Output) failures(ctx context.Context, fails []outputs.Failure, g *group, msgs []kafkago.Message, idx []int) ([]outputs.Failure, error) {
	var werr kafkago.WriteErrors
	if errors.As(g.err, &werr) && len(werr) == len(msgs) {
		for j, err := range werr {
			if err != nil {
				fails = append(fails, outputs.Failure{Index: idx[j], Err: o.classify(ctx, g.topic, err)})
			}
		}
		o.log.Debug("kafka: records failed", "topic", g.topic, "failed", werr.Count(), "of", len(msgs), "err", g.err)
		return fails, nil
	}
	var tooLarge kafkago.MessageTooLargeError
	if errors.As(g.err, &tooLarge) {
		// encode checks sizes as kafka-go does, so this is a safety net:
		// kafka-go refused the whole call for one message, sent nothing,
		// and names the message only by its contents.
		for j := range msgs {
			err := fmt.Errorf("kafka: not sent: another event of the batch was too large: %w", g.err)
			if bytes.Equal(msgs[j].Key, tooLarge.Message.Key) && bytes.Equal(msgs[j].Value, tooLarge.Message.Value) {
				err = outputs.Permanent(fmt.Errorf("kafka: event over batch_bytes (%d): %w", o.maxBytes, g.err))
			}
			fails = append(fails, outputs.Failure{Index: idx[j], Err: err})
		}
		return fails, nil
	}
	err := o.classify(ctx, g.topic, g.err)
	for j := range msgs {
		fails = append(fails, outputs.Failure{Index: idx[j], Err: err})
	}
	return fails, err
}

// classify turns a kafka-go error into one the Deliverer understands:
// Permanent when the brokers rejected the records themselves, retryable
// otherwise, with a hint for the failures an operator has to fix.
func (o *Output) classify(ctx context.Context, topic string, err error) error {
	var ke kafkago.Error
	if errors.As(err, &ke) {
		switch ke {
		case kafkago.InvalidMessage, kafkago.InvalidMessageSize, kafkago.MessageSizeTooLarge,
			kafkago.RecordListTooLarge, kafkago.InvalidRecord, kafkago.InvalidTopic:
			// The request carried only records of this topic-partition,
			// so the rejection is theirs: sending them again would get
			// the same answer.
			return outputs.Permanent(fmt.Errorf("kafka: topic %s: brokers rejected the records: %w", topic, err))
		case kafkago.SASLAuthenticationFailed, kafkago.UnsupportedSASLMechanism, kafkago.IllegalSASLState:
			return fmt.Errorf("kafka: SASL authentication failed (check sasl.mechanism, sasl.username and sasl.password): %w", err)
		case kafkago.TopicAuthorizationFailed, kafkago.ClusterAuthorizationFailed:
			return fmt.Errorf("kafka: topic %s: not authorized to write (check the principal's ACLs): %w", topic, err)
		case kafkago.UnknownTopicOrPartition:
			return fmt.Errorf("kafka: topic %s does not exist (create it, or set allow_auto_topic_creation): %w", topic, err)
		}
		return fmt.Errorf("kafka: topic %s: %w", topic, err)
	}
	var ne net.Error
	switch {
	case errors.Is(err, io.ErrClosedPipe):
		return errClosed
	case o.auth.Load() == authPending && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)):
		return fmt.Errorf("kafka: SASL authentication failed: the broker closed the connection during the exchange (check sasl.mechanism, sasl.username and sasl.password): %w", err)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return fmt.Errorf("kafka: topic %s: attempt ended before the brokers answered: %w", topic, err)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("kafka: topic %s: no answer within write_timeout (%s): %w", topic, o.cfg.WriteTimeout, err)
	}
	return fmt.Errorf("kafka: topic %s: %w", topic, err)
}

// Close waits for writes in flight (at most write_timeout) and closes the
// connections. If ctx ends first it returns, and the rest finishes in the
// background.
func (o *Output) Close(ctx context.Context) error {
	o.closeOnce.Do(func() {
		o.closed.Store(true)
		go func() {
			defer close(o.closeDone)
			_ = o.w.Close() // always nil: it only waits
			o.tr.CloseIdleConnections()
		}()
	})
	select {
	case <-o.closeDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafka: close: writes still in flight: %w", context.Cause(ctx))
	}
}
