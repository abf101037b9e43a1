package sidecar

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/integrity"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/fanout"
	"github.com/auditpipe/auditpipe/sidecar/queue"
)

// deliverLoop feeds one output from its cursor until stop or ctx ends:
// read a batch, hand the events its match selects to the output's
// Deliverer (which retries and dead-letters), acknowledge the batch. A
// batch is acknowledged only once every event in it is delivered or
// dead-lettered, so a crash or a shutdown re-sends at most the batch in
// flight. stop ends the loop after the batch in flight (a reload); ctx
// cancels that batch too, which then stays queued (shutdown). ch is the
// output's hash chain, nil when it is not sealed.
func (s *Sidecar) deliverLoop(stop, ctx context.Context, r *fanout.Route, rd *queue.Reader, ch *chain) {
	log := s.log.With("output", r.Name())
	for stop.Err() == nil {
		recs, err := rd.Next(stop, r.Batch.MaxEvents, r.Batch.MaxBytes, r.Batch.MaxWait)
		if err != nil {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, queue.ErrClosed) {
				log.Error("reading the queue", "err", err)
			}
			return
		}
		events, err := s.decode(ctx, r.Name(), recs)
		if err != nil {
			log.Error("batch kept queued", "err", err)
			rd.Rewind()
			if !sleep(stop, time.Second) {
				return
			}
			continue
		}
		events = r.Match.Filter(events)
		var head integrity.State
		if ch != nil {
			if head, err = ch.seal(events); err != nil {
				// Only an event whose details cannot be canonicalized
				// fails here, which Validate keeps from the queue.
				log.Error("sealing a batch; it stays queued", "err", err)
				rd.Rewind()
				if !sleep(stop, time.Second) {
					return
				}
				continue
			}
		}
		if len(events) > 0 {
			if _, err := r.Deliver(ctx, events); err != nil {
				if ctx.Err() != nil {
					return // shutting down: the batch stays queued
				}
				// retry.max_elapsed_time passed, or the dead-letter store
				// failed: keep the batch and start it over.
				var ue *outputs.UndeliveredError
				if errors.As(err, &ue) {
					log.Error("batch not delivered; it stays queued and is retried", "events", len(ue.Events), "err", err)
				}
				rd.Rewind()
				if !sleep(stop, time.Second) {
					return
				}
				continue
			}
		}
		last := recs[len(recs)-1].Seq
		if ch != nil {
			err = ch.ack(rd, last, head)
		} else {
			err = rd.Ack(last)
		}
		if err != nil {
			log.Error("persisting the cursor", "err", err)
		}
	}
}

// decode turns queue records back into events. A record that does not
// decode (which only corruption that passed the queue's checksum could
// cause) is dead-lettered as it is, never dropped.
func (s *Sidecar) decode(ctx context.Context, output string, recs []queue.Record) ([]auditpipe.Event, error) {
	events := make([]auditpipe.Event, 0, len(recs))
	for _, rec := range recs {
		var ev auditpipe.Event
		if err := eventjson.DecodeShared(rec.Data, &ev); err != nil {
			s.log.Error("undecodable queue record dead-lettered", "output", output, "seq", rec.Seq, "err", err)
			if derr := s.dlq.DeadLetter(ctx, []outputs.DeadLetter{{Time: s.now().UTC(), Output: output,
				Error: fmt.Sprintf("queue record %d does not decode: %v", rec.Seq, err), Payload: rec.Data}}); derr != nil {
				return nil, fmt.Errorf("dead-lettering undecodable record %d: %w", rec.Seq, derr)
			}
			continue
		}
		// The record is the event's JSON form (enqueue wrote it with
		// eventjson.Append, and Decode accepted it), so outputs that send
		// that form reuse it. Records are fresh memory for each batch and
		// never written again, so messages may refer to them. Encoded
		// excludes the integrity member, which only an external
		// transformer could have put there: such an event is encoded
		// again, so that sealing replaces the member instead of adding
		// a second one.
		if ev.Integrity == nil {
			ev.Encoded = rec.Data
		}
		events = append(events, ev)
	}
	return events, nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
