package kafkasource

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditpipe/auditpipe/internal/ingest"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/transformers"
)

// partition is one owned partition and its worker, which persists the
// partition's messages in order, one batch at a time.
type partition struct {
	c  *Consumer
	cl *kgo.Client
	k  tp

	mu      sync.Mutex // guards the fields below
	pending []*kgo.Record
	paused  bool
	hw      int64 // high watermark at the last fetch
	next    int64 // the next offset to make durable; -1 until known

	wake chan struct{} // cap 1: pending grew
	// ctx ends when the partition is revoked or the consumer stops: a
	// transform or a wait in progress is abandoned; a queue append or
	// dead-letter write in progress is not (it is short and makes the
	// batch durable, so its offset can still be committed).
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	res transformers.Result // reused for every batch
	b   *backoff.ExponentialBackOff
}

func newPartition(c *Consumer, cl *kgo.Client, k tp) *partition {
	ctx, cancel := context.WithCancel(context.Background())
	return &partition{c: c, cl: cl, k: k, next: -1, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel,
		done: make(chan struct{}), b: newBackoff()}
}

func (p *partition) wakeUp() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// halt makes run return after the batch it is persisting.
func (p *partition) halt() { p.cancel() }

func (p *partition) run() {
	defer close(p.done)
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.wake:
		}
		for {
			batch := p.take()
			if len(batch) == 0 {
				break
			}
			if !p.process(batch) {
				return
			}
		}
	}
}

// take removes up to BatchMessages records from pending, and resumes
// fetching once pending has drained.
func (p *partition) take() []*kgo.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := min(len(p.pending), p.c.cfg.BatchMessages)
	batch := p.pending[:n:n]
	p.pending = p.pending[n:]
	if len(p.pending) == 0 {
		p.pending = nil
		if p.paused {
			p.paused = false
			p.cl.ResumeFetchPartitions(map[string][]int32{p.k.topic: {p.k.part}})
		}
	}
	return batch
}

// setLag updates the lag gauge; p.mu is held.
func (p *partition) setLag() {
	if p.next < 0 {
		return
	}
	p.c.m.Lag.WithLabelValues(p.c.opts.Source, p.k.topic, strconv.Itoa(int(p.k.part))).Set(float64(max(0, p.hw-p.next)))
}

// message is what one record became.
type message struct {
	rec    *kgo.Record
	events [2]int // its events are res.Events[events[0]:events[1]]
	out    ingest.Outcome
	letter *outputs.DeadLetter
}

// process persists batch in order and marks its offsets for commit. It
// returns false when the partition was stopped before the batch was done:
// the rest is left for the partition's next owner.
func (p *partition) process(batch []*kgo.Record) bool {
	for len(batch) > 0 {
		msgs, unavailable := p.transform(batch)
		if len(msgs) > 0 {
			if !p.persist(msgs) {
				return false
			}
			batch = batch[len(msgs):]
		}
		if unavailable != nil {
			if p.ctx.Err() != nil {
				return false
			}
			p.c.m.Retries.WithLabelValues(p.c.opts.Source, retryUnavailable).Inc()
			if !p.wait("the transformer is unavailable", unavailable) {
				return false
			}
			continue
		}
		p.b.Reset()
	}
	return true
}

// transform runs records through the stage until one meets a transformer
// that cannot run; that one and the rest are left for later.
func (p *partition) transform(recs []*kgo.Record) ([]message, error) {
	p.res = transformers.Result{Events: p.res.Events[:0]}
	msgs := make([]message, 0, len(recs))
	for _, r := range recs {
		if err := p.ctx.Err(); err != nil {
			return msgs, err
		}
		m := message{rec: r}
		m.events[0] = len(p.res.Events)
		if max := p.c.opts.MaxMessageBytes; max > 0 && int64(len(r.Value)) > max {
			m.letter = p.letter(r, fmt.Sprintf("message of %d bytes exceeds max_body_bytes %d", len(r.Value), max))
		} else {
			in := transformers.Input{Body: r.Value, Meta: transformers.Meta{SourceName: p.c.opts.Source,
				Headers: headers(r.Headers), ReceivedAt: r.Timestamp}}
			out, err := p.c.opts.Stage.Ingest(p.ctx, &in, nil, &p.res)
			if err == nil && p.ctx.Err() != nil {
				// Stopped while it ran: an error it met may be the
				// cancellation's, so the message is not judged.
				clear(p.res.Events[m.events[0]:])
				p.res.Events = p.res.Events[:m.events[0]]
				err = p.ctx.Err()
			}
			if err != nil {
				return msgs, err
			}
			m.out = out
			if out.Malformed() {
				m.letter = p.letter(r, out.Reason())
			}
		}
		m.events[1] = len(p.res.Events)
		msgs = append(msgs, m)
	}
	return msgs, nil
}

func (p *partition) letter(r *kgo.Record, reason string) *outputs.DeadLetter {
	l := &outputs.DeadLetter{Time: p.c.opts.Now().UTC(), Source: p.c.opts.Source, Error: reason, Payload: r.Value,
		Kafka: &outputs.KafkaPosition{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}}
	if len(r.Headers) > 0 {
		l.Headers = make(map[string][]string, len(r.Headers))
		for _, h := range r.Headers {
			l.Headers[h.Key] = append(l.Headers[h.Key], string(h.Value))
		}
	}
	return l
}

// persist makes msgs durable, events into the queue first and then the
// dead letters, retrying what can be retried, and marks the last offset
// for commit. It returns false when the partition was stopped first.
func (p *partition) persist(msgs []message) bool {
	events := p.res.Events[msgs[0].events[0]:msgs[len(msgs)-1].events[1]]
	// Not p.ctx: an append under way finishes, so that its batch can be
	// committed; the queue answers at once when it is full.
	ctx := context.WithoutCancel(p.ctx)
	for len(events) > 0 {
		err := p.c.opts.Enqueue(ctx, events)
		if err == nil {
			break
		}
		if errTooLarge(err) {
			if len(msgs) > 1 {
				// One message's events may be what does not fit: persist
				// them one by one, and dead-letter that one alone.
				for i := range msgs {
					if !p.persist(msgs[i : i+1]) {
						return false
					}
				}
				return true
			}
			m := &msgs[0]
			m.letter = p.letter(m.rec, "its events do not fit in the queue (queue.max_bytes): "+err.Error())
			m.events[1] = m.events[0]
			break
		}
		p.c.m.Retries.WithLabelValues(p.c.opts.Source, retryQueue).Inc()
		if !p.wait("the queue refused the events", err) {
			return false
		}
	}
	var letters []outputs.DeadLetter
	for _, m := range msgs {
		if m.letter != nil {
			letters = append(letters, *m.letter)
		}
	}
	for len(letters) > 0 {
		err := p.c.opts.DeadLetters.DeadLetter(ctx, letters)
		if err == nil {
			break
		}
		// The events are queued already: only the letters are tried
		// again.
		p.c.m.Retries.WithLabelValues(p.c.opts.Source, retryDeadLetter).Inc()
		if !p.wait("the dead-letter store refused malformed messages", err) {
			return false
		}
	}
	p.b.Reset()
	last := msgs[len(msgs)-1].rec
	p.cl.MarkCommitOffsets(map[string]map[int32]kgo.EpochOffset{last.Topic: {last.Partition: {Epoch: last.LeaderEpoch, Offset: last.Offset + 1}}})
	p.mu.Lock()
	p.next = last.Offset + 1
	p.setLag()
	p.mu.Unlock()
	src := p.c.opts.Source
	for _, m := range msgs {
		switch {
		case m.letter != nil:
			p.c.m.Messages.WithLabelValues(src, outcomeDeadLettered).Inc()
			p.c.log.Debug("kafka source: message dead-lettered", "topic", m.rec.Topic, "partition", m.rec.Partition, "offset", m.rec.Offset, "error", m.letter.Error)
		case m.events[1] > m.events[0]:
			p.c.m.Messages.WithLabelValues(src, outcomeQueued).Inc()
		default:
			p.c.m.Messages.WithLabelValues(src, outcomeSkipped).Inc()
		}
	}
	return true
}

// wait sleeps for the next backoff interval; false when the partition was
// stopped meanwhile.
func (p *partition) wait(why string, err error) bool {
	d := p.b.NextBackOff()
	p.c.log.Warn("kafka source: partition waits before trying again; nothing past it is committed", "topic", p.k.topic,
		"partition", p.k.part, "reason", why, "err", err, "retry_in", d.Round(time.Millisecond))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.ctx.Done():
		return false
	}
}

// headers presents a message's headers as a request's: canonical names,
// and ce_* (the CloudEvents Kafka binding) as ce-* (the HTTP binding the
// transformers read), so binary-mode CloudEvents work as they do over
// HTTP.
func headers(hs []kgo.RecordHeader) http.Header {
	if len(hs) == 0 {
		return nil
	}
	h := make(http.Header, len(hs))
	for _, kv := range hs {
		k := kv.Key
		if len(k) > 3 && strings.EqualFold(k[:3], "ce_") {
			k = "ce-" + k[3:]
		}
		k = http.CanonicalHeaderKey(k)
		h[k] = append(h[k], string(kv.Value))
	}
	return h
}
