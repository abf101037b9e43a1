package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// readBackMaxBytes bounds one fetch response: a few batches of records.
// A batch larger than this still comes whole (the brokers send at least
// one batch so that a consumer always progresses).
const readBackMaxBytes = 8 << 20

// ReadBack calls fn once per stored unit (object, file, partition, index)
// with a reader of the NDJSON event lines it holds, in the order the
// output wrote them.
//
// For Kafka the units are the partitions of every topic the topic
// template can name, in topic name and then partition order, each read
// from its first offset to its last at the time of the call (later
// records are left for the next run); every record's value is one line,
// in offset order, and keys and headers are not read. source is
// "kafka://topic/partition". Partitions that hold nothing are skipped.
//
// A constant topic is read as it is. A template with placeholders is
// matched against the cluster's topics by its literal text, with
// anything standing for each placeholder: "audit.{source}" reads every
// topic named audit.*, including any another producer writes there,
// whose records then fail verification. The topics are listed with a
// fresh metadata request, so a topic created a moment ago is seen.
func (o *Output) ReadBack(ctx context.Context, fn func(source string, r io.Reader) error) error {
	return o.readBack(ctx, readBackMaxBytes, fn)
}

// readBack is ReadBack fetching at most maxBytes a request.
func (o *Output) readBack(ctx context.Context, maxBytes int64, fn func(source string, r io.Reader) error) error {
	// A transport of its own: its metadata is fetched now, not up to
	// metadata_ttl ago, and closing it leaves the writer's connections be.
	tr := &kafkago.Transport{
		DialTimeout: o.tr.DialTimeout,
		MetadataTTL: o.tr.MetadataTTL,
		ClientID:    o.tr.ClientID,
		Dial:        o.tr.Dial,
		SASL:        o.tr.SASL,
	}
	defer tr.CloseIdleConnections()
	c := &kafkago.Client{Addr: kafkago.TCP(o.cfg.Brokers...), Transport: tr, Timeout: o.cfg.WriteTimeout}

	parts, err := o.readBackPartitions(ctx, c)
	if err != nil {
		return fmt.Errorf("kafka: read back: %w", err)
	}
	for _, p := range parts {
		if p.first >= p.end {
			continue
		}
		r := &partitionReader{ctx: ctx, c: c, p: p, next: p.first, maxBytes: maxBytes}
		if err := fn("kafka://"+p.topic+"/"+strconv.Itoa(p.partition), r); err != nil {
			return err
		}
	}
	return nil
}

// readBackPartition is one partition to read: [first, end) as listed.
type readBackPartition struct {
	topic      string
	partition  int
	first, end int64
}

// readBackPartitions lists the partitions of the topics the template can
// name, sorted, with their offsets now.
func (o *Output) readBackPartitions(ctx context.Context, c *kafkago.Client) ([]readBackPartition, error) {
	meta, err := c.Metadata(ctx, &kafkago.MetadataRequest{}) // every topic
	if err != nil {
		return nil, fmt.Errorf("listing topics: %w", err)
	}
	lits := templateLiterals(o.cfg.Topic)
	req := &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{}}
	for _, t := range meta.Topics {
		if t.Internal || !matchLiterals(lits, t.Name) {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			req.Topics[t.Name] = append(req.Topics[t.Name], kafkago.FirstOffsetOf(p.ID), kafkago.LastOffsetOf(p.ID))
		}
	}
	if len(req.Topics) == 0 {
		return nil, nil
	}
	res, err := c.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("listing offsets: %w", err)
	}
	var parts []readBackPartition
	for topic, offs := range res.Topics {
		for _, p := range offs {
			if p.Error != nil {
				return nil, fmt.Errorf("topic %s partition %d: offsets: %w", topic, p.Partition, p.Error)
			}
			parts = append(parts, readBackPartition{topic: topic, partition: p.Partition, first: p.FirstOffset, end: p.LastOffset})
		}
	}
	slices.SortFunc(parts, func(a, b readBackPartition) int {
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return a.partition - b.partition
	})
	return parts, nil
}

// templateLiterals returns the text of a topic template around its
// placeholders: "audit.{source}.{yyyy}" gives "audit.", "." and "".
func templateLiterals(tmpl string) []string {
	var lits []string
	for {
		i := strings.IndexByte(tmpl, '{')
		j := strings.IndexByte(tmpl[max(i, 0):], '}')
		if i < 0 || j < 0 {
			return append(lits, tmpl)
		}
		lits = append(lits, tmpl[:i])
		tmpl = tmpl[i+j+1:]
	}
}

// matchLiterals reports whether name can come from a template with these
// literals, any text standing for each placeholder between them.
func matchLiterals(lits []string, name string) bool {
	if len(lits) == 1 {
		return name == lits[0]
	}
	first, last := lits[0], lits[len(lits)-1]
	if len(name) < len(first)+len(last) || !strings.HasPrefix(name, first) || !strings.HasSuffix(name, last) {
		return false
	}
	name = name[len(first) : len(name)-len(last)]
	for _, l := range lits[1 : len(lits)-1] {
		i := strings.Index(name, l)
		if i < 0 {
			return false
		}
		name = name[i+len(l):]
	}
	return true
}

// partitionReader reads a partition's record values as NDJSON lines,
// fetching as it goes, up to the end offset it was given.
type partitionReader struct {
	ctx      context.Context
	c        *kafkago.Client
	p        readBackPartition
	maxBytes int64
	next     int64 // the next offset to return
	recs     kafkago.RecordReader
	// fetched is next when recs was fetched: a response that ends
	// without moving it holds nothing more for this partition.
	fetched int64
	line    []byte
	off     int
	err     error
}

func (r *partitionReader) Read(b []byte) (int, error) {
	for r.off == len(r.line) {
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.nextLine()
	}
	n := copy(b, r.line[r.off:])
	r.off += n
	return n, nil
}

// nextLine loads the next record's value and a newline into r.line, or
// returns io.EOF at the end offset.
func (r *partitionReader) nextLine() error {
	for r.next < r.p.end {
		if r.recs == nil {
			if err := r.fetch(); err != nil {
				return err
			}
		}
		rec, err := r.recs.ReadRecord()
		if errors.Is(err, io.EOF) {
			r.recs = nil
			if r.next == r.fetched {
				return fmt.Errorf("kafka: read back %s/%d: no record between offsets %d and %d", r.p.topic, r.p.partition, r.next, r.p.end)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("kafka: read back %s/%d at offset %d: %w", r.p.topic, r.p.partition, r.next, err)
		}
		if rec.Offset < r.next {
			continue // a batch may start before the offset asked for
		}
		if rec.Offset >= r.p.end {
			break
		}
		r.line, r.off = r.line[:0], 0
		if rec.Value != nil {
			n := rec.Value.Len()
			r.line = slices.Grow(r.line, n+1)[:n]
			if _, err := io.ReadFull(rec.Value, r.line); err != nil {
				return fmt.Errorf("kafka: read back %s/%d at offset %d: %w", r.p.topic, r.p.partition, rec.Offset, err)
			}
		}
		r.line = append(r.line, '\n')
		r.next = rec.Offset + 1
		return nil
	}
	return io.EOF
}

func (r *partitionReader) fetch() error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	res, err := r.c.Fetch(r.ctx, &kafkago.FetchRequest{
		Topic:     r.p.topic,
		Partition: r.p.partition,
		Offset:    r.next,
		MinBytes:  1,
		MaxBytes:  r.maxBytes,
		// Records up to end exist, so the broker answers at once; this
		// only bounds a wait for ones that were removed meanwhile.
		MaxWait: 500 * time.Millisecond,
	})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		return fmt.Errorf("kafka: read back %s/%d: fetch at offset %d: %w", r.p.topic, r.p.partition, r.next, err)
	}
	r.recs, r.fetched = res.Records, r.next
	return nil
}
