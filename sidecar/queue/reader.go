package queue

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Reader is one consumer's view of the queue: an in-memory read position
// and a persisted cursor (the last acknowledged record). Next, Ack and
// Rewind may be called from different goroutines.
type Reader struct {
	q    *Queue
	name string
	path string // cursor file

	acked   uint64 // under q.mu
	removed bool   // by RemoveReader; under q.mu

	mu  sync.Mutex
	pos uint64      // next sequence number Next may return
	fr  frameReader // fr.seg, when set, holds a reference

	ackMu     sync.Mutex // serialises cursor writes
	persisted uint64
	state     []byte // kept with the cursor (AckState); under ackMu

	oldestMu   sync.Mutex
	oldestFor  uint64 // the acked value oldest was read for
	oldestTime time.Time
}

// Next returns up to maxRecords records and maxBytes bytes of data (at
// least one record, even if it alone is larger; maxBytes <= 0 means no
// byte limit) that follow the reader's position. It blocks until a record
// is available, then keeps collecting until the batch is full or maxWait
// has passed since the first record arrived; maxWait 0 returns what is
// there at once. If ctx ends or the queue closes, it returns what it has,
// or ctx.Err() / ErrClosed when that is nothing. The returned Data is the
// caller's.
//
// Next moves an in-memory position only: after a restart, reading resumes
// after the last Ack. Sequence numbers recovery found lost to damage
// (Stats.Damage) are never returned: Next goes on to the record after
// them, so a batch's numbers can jump.
func (r *Reader) Next(ctx context.Context, maxRecords, maxBytes int, maxWait time.Duration) ([]Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	maxRecords = max(maxRecords, 1)
	var b batch
	var expired <-chan time.Time
	for {
		// Taken before reading, so a commit published after the read
		// found nothing has already closed ch and the wait below ends.
		r.q.mu.Lock()
		ch := r.q.dataCh
		r.q.mu.Unlock()
		if err := r.collect(&b, maxRecords, maxBytes); err != nil {
			if len(b.recs) > 0 {
				return b.finish(), nil // the error comes back on the next call
			}
			return nil, err
		}
		if b.full || len(b.recs) >= maxRecords || (len(b.recs) > 0 && maxWait <= 0) {
			return b.finish(), nil
		}
		if len(b.recs) > 0 && expired == nil {
			t := time.NewTimer(maxWait)
			defer t.Stop()
			expired = t.C
		}
		select {
		case <-ch:
		case <-expired:
			return b.finish(), nil
		case <-ctx.Done():
			if len(b.recs) > 0 {
				return b.finish(), nil
			}
			return nil, ctx.Err()
		case <-r.q.closeCh:
			if len(b.recs) > 0 {
				return b.finish(), nil
			}
			return nil, ErrClosed
		}
	}
}

// collect adds the published records after r.pos to b, within the limits.
func (r *Reader) collect(b *batch, maxRecords, maxBytes int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.q
	for !b.full && len(b.recs) < maxRecords {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return ErrClosed
		}
		if r.removed {
			q.mu.Unlock()
			return ErrRemoved
		}
		if r.pos > q.head {
			q.mu.Unlock()
			return nil
		}
		if r.fr.seg == nil || r.pos > r.fr.seg.last || r.pos < r.fr.seq {
			r.releaseLocked()
			i := sort.Search(len(q.segs), func(i int) bool { return q.segs[i].last >= r.pos })
			s := q.segs[i] // exists: pos <= head, the tail's last
			s.refs++
			off, at := s.seek(r.pos)
			r.fr.reset(s, off, at)
		}
		if b.recs == nil {
			b.recs = make([]Record, 0, min(uint64(maxRecords), q.head-r.pos+1))
		}
		end, last := r.fr.seg.size, r.fr.seg.last
		q.mu.Unlock()
		for r.fr.seq <= last && len(b.recs) < maxRecords {
			h, data, err := r.fr.peek(end)
			if err != nil {
				return fmt.Errorf("queue: %s: %w", r.name, err)
			}
			if h.isHole() {
				// Numbers lost to damage: nothing to return, and the
				// position moves past them so that it never rests in one.
				r.pos = max(r.pos, h.last+1)
			} else if h.seq >= r.pos {
				if maxBytes > 0 && len(b.recs) > 0 && b.bytes+len(data) > maxBytes {
					b.full = true
					return nil
				}
				// Room for the rest of the batch if its records are like
				// this one, but no more than the segment holds.
				hint := min(int64(maxRecords-len(b.recs))*int64(len(data)), end-r.fr.off)
				if maxBytes > 0 {
					hint = min(hint, int64(maxBytes-b.bytes))
				}
				b.add(h, data, int(hint))
				r.pos = h.seq + 1
			}
			r.fr.skip(h)
		}
	}
	return nil
}

// releaseLocked drops the reader's segment reference; r.mu and q.mu held.
func (r *Reader) releaseLocked() {
	if r.fr.seg != nil {
		r.fr.seg.release()
		r.fr.seg = nil
	}
}

// release drops a reference; q.mu held. The last reference to a deleted
// segment closes its file.
func (s *segment) release() {
	s.refs--
	if s.removed {
		s.closeIfUnused()
	}
}

// closeIfUnused closes the read handle once no reader holds it; q.mu held.
func (s *segment) closeIfUnused() {
	if s.refs == 0 && !s.rfDone {
		s.rfDone = true
		s.rf.Close()
	}
}

// Ack records that every record up to and including seq is done for this
// consumer, in a cursor file replaced atomically (and fsync'd), then
// deletes the segments every consumer has finished. An ack at or below
// the current one is ignored; one beyond the last appended record is an
// error. If the reader had not read that far, its position moves up. The
// state kept with the cursor (AckState) stays as it is.
func (r *Reader) Ack(seq uint64) error {
	r.ackMu.Lock()
	defer r.ackMu.Unlock()
	return r.ackLocked(seq, r.state)
}

// AckState is Ack that also replaces the consumer's state, in the same
// atomic cursor write: a crash leaves the old position with the old state
// or the new with the new, never a mix. The sidecar keeps each output's
// hash-chain head there, so that a re-sent batch is sealed exactly as
// before. state is copied; at most MaxCursorState bytes.
func (r *Reader) AckState(seq uint64, state []byte) error {
	if len(state) > MaxCursorState {
		return fmt.Errorf("queue: %s: state of %d bytes exceeds %d", r.name, len(state), MaxCursorState)
	}
	r.ackMu.Lock()
	defer r.ackMu.Unlock()
	return r.ackLocked(seq, bytes.Clone(state))
}

// State returns the state persisted with the last acknowledgement (nil if
// there is none), as of the last Ack, AckState or the queue's opening.
func (r *Reader) State() []byte {
	r.ackMu.Lock()
	defer r.ackMu.Unlock()
	return bytes.Clone(r.state)
}

func (r *Reader) ackLocked(seq uint64, state []byte) error {
	q := r.q
	q.mu.Lock()
	closed, gone, head, acked := q.closed, r.removed, q.head, r.acked
	q.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case gone:
		return ErrRemoved
	case seq <= acked:
		return nil
	case seq > head:
		return fmt.Errorf("queue: %s: ack of record %d, beyond the last appended record %d", r.name, seq, head)
	}
	if err := writeCursor(r.path, seq, state, q.fsync); err != nil {
		return fmt.Errorf("queue: %s: persist cursor: %w", r.name, err)
	}
	r.persisted, r.state = seq, state
	q.mu.Lock()
	r.acked = seq
	removed := q.collectAckedLocked()
	q.mu.Unlock()
	q.removeSegments(removed)
	r.mu.Lock()
	r.pos = max(r.pos, seq+1)
	r.mu.Unlock()
	return nil
}

// Rewind moves the read position back to just after the last
// acknowledged record, so that a failed delivery is read again.
func (r *Reader) Rewind() {
	r.q.mu.Lock()
	acked := r.acked
	r.q.mu.Unlock()
	r.mu.Lock()
	r.pos = acked + 1
	r.mu.Unlock()
}

// oldestAfter returns the time of the first record after acked, or zero.
// The answer for a given acked never changes once found, so it is kept.
func (r *Reader) oldestAfter(acked uint64) time.Time {
	r.oldestMu.Lock()
	defer r.oldestMu.Unlock()
	if r.oldestFor == acked && !r.oldestTime.IsZero() {
		return r.oldestTime
	}
	q := r.q
	var fr frameReader
	var t time.Time
	// A loop over segments: what follows acked may be a hole that ends
	// its segment.
	for seq := acked + 1; t.IsZero(); {
		q.mu.Lock()
		if q.closed || seq > q.head {
			q.mu.Unlock()
			break
		}
		i := sort.Search(len(q.segs), func(i int) bool { return q.segs[i].last >= seq })
		if i == len(q.segs) {
			q.mu.Unlock()
			break
		}
		s := q.segs[i]
		s.refs++
		off, at := s.seek(seq)
		end, last := s.size, s.last
		q.mu.Unlock()

		fr.reset(s, off, at)
		var err error
		for fr.seq <= last {
			var h frameHeader
			if h, _, err = fr.peek(end); err != nil {
				break
			}
			if !h.isHole() && h.seq >= seq {
				t = time.Unix(0, h.nanos).UTC()
				break
			}
			fr.skip(h)
		}
		q.mu.Lock()
		s.release()
		q.mu.Unlock()
		if err != nil {
			break
		}
		seq = last + 1
	}
	if !t.IsZero() {
		r.oldestFor, r.oldestTime = acked, t
	}
	return t
}

// batch collects records. Their data is copied into slabs sized for the
// expected batch, so that a batch costs a few allocations, not one per
// record, and no slab is ever copied to grow.
type batch struct {
	recs  []Record
	slab  []byte
	bytes int
	full  bool // the next record would pass maxBytes
}

func (b *batch) add(h frameHeader, data []byte, hint int) {
	if cap(b.slab)-len(b.slab) < len(data) {
		b.slab = make([]byte, 0, max(len(data), min(hint, 4<<20)))
	}
	start := len(b.slab)
	b.slab = append(b.slab, data...)
	b.recs = append(b.recs, Record{Seq: h.seq, Data: b.slab[start:len(b.slab):len(b.slab)], Time: time.Unix(0, h.nanos).UTC()})
	b.bytes += len(data)
}

func (b *batch) finish() []Record { return b.recs }
