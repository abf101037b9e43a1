package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditpipe/auditpipe/internal/durable"
)

const (
	defaultMaxBytes     = 1 << 30
	defaultSegmentBytes = 64 << 20
	minSegmentBytes     = 1 << 10
	// maxRecordBytes bounds one record: the frame's length field is 32
	// bits, and a single event far below this is already unusual.
	maxRecordBytes = 1 << 30
)

// Config configures the queue (yaml key queue in the sidecar's config).
type Config struct {
	// Dir holds the segment and cursor files. Required after defaults:
	// the sidecar sets <data_dir>/queue.
	Dir string `yaml:"dir"`
	// MaxBytes bounds the total size of the retained segment files.
	// Append fails with ErrFull rather than exceed it, which the sidecar
	// answers with 503 and Retry-After. Because a segment is deleted
	// only once every consumer has acknowledged all of it, up to
	// segment_bytes of acknowledged records can still count against the
	// bound. Default 1073741824 (1 GiB).
	MaxBytes int64 `yaml:"max_bytes"`
	// SegmentBytes is the size at which the current segment file is
	// closed and a new one started; space is reclaimed a segment at a
	// time. At least 1024 and at most max_bytes. Default 67108864
	// (64 MiB), or max_bytes/4 when that is smaller.
	SegmentBytes int64 `yaml:"segment_bytes"`
	// Fsync makes Append and Ack wait for the disk. Default true. With
	// false, a power loss or kernel crash (not a process crash) can lose
	// appends the sender was told were accepted, and cursors; only for
	// tests and benchmarks.
	Fsync *bool `yaml:"fsync"`
}

// Validate names the bad key.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("dir: required")
	}
	if c.MaxBytes < 0 {
		return errors.New("max_bytes: must not be negative")
	}
	if c.SegmentBytes < 0 {
		return errors.New("segment_bytes: must not be negative")
	}
	if c.SegmentBytes != 0 && c.SegmentBytes < minSegmentBytes {
		return fmt.Errorf("segment_bytes: must be at least %d", minSegmentBytes)
	}
	d := c.withDefaults()
	if d.MaxBytes < 2*minSegmentBytes {
		return fmt.Errorf("max_bytes: must be at least %d", 2*minSegmentBytes)
	}
	if d.SegmentBytes > d.MaxBytes {
		return fmt.Errorf("segment_bytes: %d exceeds max_bytes %d", d.SegmentBytes, d.MaxBytes)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MaxBytes == 0 {
		c.MaxBytes = defaultMaxBytes
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = max(min(defaultSegmentBytes, c.MaxBytes/4), minSegmentBytes)
	}
	if c.Fsync == nil {
		t := true
		c.Fsync = &t
	}
	return c
}

var (
	// ErrFull is returned by Append when the records would take the
	// queue past max_bytes, or when the disk has no space left for them
	// (that error also wraps the system's, ENOSPC or EDQUOT). It is
	// transient: acknowledgements free space.
	ErrFull = errors.New("queue: full (max_bytes reached)")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("queue: closed")
	// ErrTooLarge is returned by Append for records that could never fit,
	// even in an empty queue. Retrying cannot help.
	ErrTooLarge = errors.New("queue: records exceed max_bytes")
)

// Record is one appended record as a reader sees it.
type Record struct {
	Seq  uint64
	Data []byte
	// Time is when the record was written (all the records of one group
	// commit share it), for measuring lag.
	Time time.Time
}

// Stats is a snapshot of the queue for metrics and readiness.
type Stats struct {
	Bytes     int64 // retained on disk
	MaxBytes  int64
	Records   uint64 // retained records (from the oldest unacked by any consumer to head, holes left out)
	Segments  int
	Head      uint64 // last appended seq
	Consumers map[string]ConsumerStats
	// Damaged is the number of acknowledged records found damaged and
	// skipped by recovery (since this Open), counted exactly.
	Damaged uint64
	// Damage lists each damaged range recovery skipped.
	Damage []Damage
	// AppendErr is the last failed commit's error, nil once a later
	// commit succeeds; AppendErrAt is when it failed.
	AppendErr   error
	AppendErrAt time.Time
}

// ConsumerStats describes one consumer's progress.
type ConsumerStats struct {
	Acked         uint64
	Pending       uint64    // records after Acked, not counting numbers lost to damage
	OldestPending time.Time // zero when none
}

// Queue is a durable multi-consumer log. All methods are safe for
// concurrent use.
type Queue struct {
	dir      string
	maxBytes int64
	segBytes int64
	fsync    bool
	log      *slog.Logger
	lock     *dirLock

	mu       sync.Mutex
	closed   bool
	err      error // sticky: the log could not be restored after a write failure
	head     uint64
	segs     []*segment
	used     int64 // published bytes of all segments
	reserved int64 // bytes of appends not yet written
	pending  []*appendReq
	readers  []*Reader // Open's, then AddReader's; replaced, never changed in place
	holes    []hole    // hole frames in the segments, in order
	damage   []Damage  // found by recovery
	damaged  uint64    // records in damage
	// appendErr is the last failed commit's error, nil after a success;
	// appendErrAt is when it failed.
	appendErr   error
	appendErrAt time.Time
	dataCh      chan struct{}

	wake    chan struct{}
	closeCh chan struct{}
	done    chan struct{}

	// Writer goroutine only.
	wf    *os.File // write handle of the tail segment
	wseg  *segment
	wbuf  []byte
	spare []*appendReq

	syncs        atomic.Int64 // data fsyncs, for tests and benchmarks
	testHookSync func() error // called before each data fsync; its error fails it (tests only)
}

type appendReq struct {
	buf    []byte // frames; the writer fills in seq, time and crc
	size   int64
	rotate bool // start a new segment first: the tail is fully acknowledged and in the way
	taken  bool // the writer has it; under Queue.mu
	last   uint64
	err    error
	done   chan struct{}
}

// Open opens or creates the queue in cfg.Dir and recovers it: it verifies
// every record's checksum, cuts the torn end of the last segment, repairs
// damaged segments around the records lost (logging them, keeping the
// original bytes under corrupt/ and reporting them in Stats.Damage; see
// the package documentation) and loads each consumer's cursor. consumers
// are the output names; a consumer without a cursor starts at the oldest
// retained record, and cursor files of consumers not listed are ignored:
// they hold nothing back. Open fails if another process (or another
// Queue in this one) has the directory open.
func Open(cfg Config, consumers []string, logger *slog.Logger) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	seen := make(map[string]bool, len(consumers))
	for _, c := range consumers {
		if c == "" {
			return nil, errors.New("queue: empty consumer name")
		}
		if seen[c] {
			return nil, fmt.Errorf("queue: consumer %q given twice", c)
		}
		seen[c] = true
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("dir: %w", err)
	}
	lk, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	q := &Queue{
		dir:      cfg.Dir,
		maxBytes: cfg.MaxBytes,
		segBytes: cfg.SegmentBytes,
		fsync:    *cfg.Fsync,
		log:      logger,
		lock:     lk,
		dataCh:   make(chan struct{}),
		wake:     make(chan struct{}, 1),
		closeCh:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	if err := q.recover(consumers); err != nil {
		q.closeFiles()
		return nil, err
	}
	go q.run()
	return q, nil
}

// recover loads the segments and cursors and opens the tail for writing.
func (q *Queue) recover(consumers []string) error {
	entries, err := os.ReadDir(q.dir)
	if err != nil {
		return fmt.Errorf("dir: %w", err)
	}
	var firsts []uint64
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), tmpSuffix) {
			// A cursor or a repaired segment a crash interrupted: the
			// file it was to replace is still whole.
			if err := os.Remove(filepath.Join(q.dir, e.Name())); err != nil {
				return fmt.Errorf("dir: %w", err)
			}
		} else if first, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			firsts = append(firsts, first)
		}
	}
	slices.Sort(firsts)
	for i, first := range firsts {
		maxSeq := ^uint64(0)
		if i+1 < len(firsts) {
			maxSeq = firsts[i+1] - 1
		}
		s, err := q.recoverSegment(first, maxSeq, i == len(firsts)-1)
		if err != nil {
			return err
		}
		q.segs = append(q.segs, s)
		q.used += s.size
	}

	var maxAcked uint64
	var noCursor []*Reader
	for _, name := range consumers {
		r := &Reader{q: q, name: name, path: filepath.Join(q.dir, cursorFile(name))}
		seq, state, ok, err := readCursor(r.path)
		if err != nil {
			// Starting over from the oldest record duplicates, which ids
			// make harmless; refusing to start would lose new events.
			q.log.Error("queue: cursor unreadable, consumer restarts at the oldest record", "consumer", name, "err", err)
		}
		if ok {
			r.acked, r.persisted, r.state = seq, seq, state
			maxAcked = max(maxAcked, seq)
		} else {
			noCursor = append(noCursor, r)
		}
		q.readers = append(q.readers, r)
	}

	var head uint64
	if n := len(q.segs); n > 0 {
		head = q.segs[n-1].last
	}
	q.head = max(head, maxAcked)
	switch n := len(q.segs); {
	case n == 0:
		s, err := q.createSegment(q.head + 1)
		if err != nil {
			return err
		}
		q.segs = append(q.segs, s)
		q.used += s.size
	case maxAcked > head:
		// A cursor outlived the records it acknowledged: with fsync off
		// after a power loss, or after a crash while a fully
		// acknowledged segment was being replaced (reclaimTail).
		// Numbering continues after it so that new records are not
		// mistaken for acknowledged ones.
		q.log.Warn("queue: a cursor is ahead of the log; numbering continues after it", "head", head, "cursor", maxAcked)
		if err := q.skipTo(maxAcked); err != nil {
			return fmt.Errorf("queue: recover: %w", err)
		}
	case q.segs[n-1].holes:
		// A repaired segment is not written to again: in the segment
		// being written, the lack of holes bounds the search for the
		// records after a torn end (scanSegment).
		s, err := q.createSegment(q.head + 1)
		if err != nil {
			return err
		}
		q.segs = append(q.segs, s)
		q.used += s.size
	}
	oldest := q.segs[0].first - 1
	for _, r := range q.readers {
		r.acked = max(r.acked, oldest)
		r.pos = r.acked + 1
	}
	for _, r := range noCursor {
		// A cursor file from the start, while there is space for one,
		// so that its consumer can acknowledge even on a full disk
		// (overwriteCursor); it says what the absence of one says.
		if err := writeCursor(r.path, r.acked, nil, q.fsync); err != nil {
			q.log.Warn("queue: cannot create a cursor file; the consumer's first ack will try again", "consumer", r.name, "err", err)
			continue
		}
		r.persisted = r.acked
	}

	tail := q.segs[len(q.segs)-1]
	q.wf, err = os.OpenFile(tail.path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("dir: %w", err)
	}
	q.wseg = tail
	removed := q.collectAckedLocked()
	q.removeSegments(removed)
	return nil
}

// skipTo makes the log continue after seq, which is past its last
// record. An empty lone segment is renamed to start after seq. Otherwise
// a hole frame for the numbers up to seq ends the last segment and a new
// one starts, so that the next Open finds no unexplained gap.
func (q *Queue) skipTo(seq uint64) error {
	n := len(q.segs)
	tail := q.segs[n-1]
	wf, err := os.OpenFile(tail.path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if n == 1 && tail.last < tail.first {
		s, err := q.rebase(tail, wf, seq+1)
		if cerr := wf.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		tail.rf.Close()
		tail.rfDone = true
		q.segs[0] = s
		q.used += s.size - tail.size
		return nil
	}
	hf := appendHole(nil, tail.last+1, seq)
	_, err = wf.WriteAt(hf, tail.size)
	if err == nil && q.fsync {
		err = datasync(wf)
	}
	if cerr := wf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	q.holes = append(q.holes, hole{tail.last + 1, seq})
	tail.holes = true
	tail.size += int64(len(hf))
	tail.wSize = tail.size
	tail.last, tail.wLast = seq, seq
	q.used += int64(len(hf))
	s, err := q.createSegment(seq + 1)
	if err != nil {
		return err
	}
	q.segs = append(q.segs, s)
	q.used += s.size
	return nil
}

// rebase empties s, whose every record every consumer has acknowledged,
// and renames it to start at next. It reuses the file, so it needs no
// free space: the way out of a full disk. A crash on the way leaves an
// empty segment behind the cursors, which recovery rebases again.
func (q *Queue) rebase(s *segment, wf *os.File, next uint64) (*segment, error) {
	path := filepath.Join(q.dir, segName(next))
	err := wf.Truncate(segHeaderSize)
	if err == nil {
		_, err = wf.WriteAt(appendSegHeader(nil, next), 0)
	}
	if err == nil && q.fsync {
		err = datasync(wf)
	}
	if err == nil {
		err = os.Rename(s.path, path)
	}
	if err == nil && q.fsync {
		err = durable.SyncDir(q.dir)
	}
	var rf *os.File
	if err == nil {
		rf, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("replace segment %s with %s: %w", s.path, path, err)
	}
	return &segment{
		first: next, path: path, rf: rf,
		last: next - 1, size: segHeaderSize,
		wSize: segHeaderSize, wLast: next - 1, lastIdxOff: segHeaderSize,
	}, nil
}

// createSegment creates an empty segment file whose first record will be
// first, and makes its directory entry durable.
func (q *Queue) createSegment(first uint64) (*segment, error) {
	path := filepath.Join(q.dir, segName(first))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("queue: create segment: %w", err)
	}
	_, err = f.Write(appendSegHeader(nil, first))
	if err == nil && q.fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && q.fsync {
		err = durable.SyncDir(q.dir)
	}
	var rf *os.File
	if err == nil {
		rf, err = os.Open(path)
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("queue: create segment: %w", err)
	}
	return &segment{
		first: first, path: path, rf: rf,
		last: first - 1, size: segHeaderSize,
		wSize: segHeaderSize, wLast: first - 1, lastIdxOff: segHeaderSize,
	}, nil
}

// Append durably appends records (each one event's JSON line) as one
// group: when it returns nil, every record is written and fsync'd, and
// last is the sequence number of the final one. Concurrent calls share
// fsyncs (group commit). The records are copied before Append returns,
// whatever it returns.
//
// If ctx ends first, Append returns ctx.Err(); records the writer had
// already taken may still be committed, so a sender that retries can
// cause a duplicate (delivery is at-least-once, and ids dedupe).
func (q *Queue) Append(ctx context.Context, records [][]byte) (last uint64, err error) {
	var size int64
	for _, r := range records {
		if len(r) > maxRecordBytes {
			return 0, fmt.Errorf("%w: a record of %d bytes", ErrTooLarge, len(r))
		}
		size += int64(len(r))
	}
	if size+int64(len(records))*frameHeaderSize+2*segHeaderSize > q.maxBytes {
		return 0, fmt.Errorf("%w: %d bytes", ErrTooLarge, size+int64(len(records))*frameHeaderSize)
	}
	return q.AppendFunc(ctx, len(records), int(size), func(dst []byte, i int) []byte {
		return append(dst, records[i]...)
	})
}

// AppendFunc is Append for n records that encode appends to dst, one
// call each, in order: they go straight into the frames the writer puts
// on disk, without a copy. hint is their total size, for one allocation
// when it is right. encode must not keep dst.
func (q *Queue) AppendFunc(ctx context.Context, n, hint int, encode func(dst []byte, i int) []byte) (last uint64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if n == 0 {
		q.mu.Lock()
		defer q.mu.Unlock()
		if q.closed {
			return 0, ErrClosed
		}
		return q.head, nil
	}
	buf := make([]byte, 0, min(int64(hint)+int64(n)*frameHeaderSize, q.maxBytes))
	for i := range n {
		off := len(buf)
		buf = append(buf, make([]byte, frameHeaderSize)...)
		buf = encode(buf, i)
		r := len(buf) - off - frameHeaderSize
		if r > maxRecordBytes {
			return 0, fmt.Errorf("%w: a record of %d bytes", ErrTooLarge, r)
		}
		if int64(len(buf))+2*segHeaderSize > q.maxBytes {
			return 0, fmt.Errorf("%w: over %d bytes", ErrTooLarge, len(buf))
		}
		binary.LittleEndian.PutUint32(buf[off+4:], uint32(r))
	}
	size := int64(len(buf))
	req := &appendReq{buf: buf, size: size, done: make(chan struct{})}

	q.mu.Lock()
	switch {
	case q.closed:
		q.mu.Unlock()
		return 0, ErrClosed
	case q.err != nil:
		err := q.err
		q.mu.Unlock()
		return 0, err
	case q.used+q.reserved+size+segHeaderSize > q.maxBytes:
		if !q.canRotateLocked(size) {
			q.mu.Unlock()
			return 0, ErrFull
		}
		req.rotate = true
	}
	q.reserved += size
	q.pending = append(q.pending, req)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default: // a wake-up is already pending; the writer will take req with it
	}

	select {
	case <-req.done:
		return req.last, req.err
	case <-ctx.Done():
		q.mu.Lock()
		if !req.taken {
			if i := slices.Index(q.pending, req); i >= 0 {
				q.pending = slices.Delete(q.pending, i, i+1)
				q.reserved -= size
			}
		}
		q.mu.Unlock()
		return 0, ctx.Err()
	}
}

// canRotateLocked reports whether an append that does not fit would fit
// once the tail segment is replaced: every consumer has acknowledged all
// of it, so it only takes space because segments are deleted whole.
// Without this, a max_bytes close to segment_bytes could stay full
// forever with nothing left to deliver.
func (q *Queue) canRotateLocked(size int64) bool {
	return q.reserved == 0 && len(q.segs) == 1 && q.minAckedLocked() >= q.head &&
		q.segs[0].last >= q.segs[0].first && 2*segHeaderSize+size <= q.maxBytes
}

// holesInLocked counts the numbers after acked, up to head, that holes
// cover: they will never be read, so they are not pending.
func (q *Queue) holesInLocked(acked uint64) uint64 {
	var n uint64
	for _, h := range q.holes {
		if h.last > acked && h.first <= q.head {
			n += min(h.last, q.head) - max(h.first, acked+1) + 1
		}
	}
	return n
}

func (q *Queue) minAckedLocked() uint64 {
	m := q.head
	for _, r := range q.readers {
		m = min(m, r.acked)
	}
	return m
}

// run is the writer: it takes every pending append, writes them with one
// write call and one fsync, publishes them to readers and wakes the
// appenders. While it syncs, new appends queue up for the next round,
// which is what makes the group grow with the load.
func (q *Queue) run() {
	defer close(q.done)
	for {
		select {
		case <-q.wake:
		case <-q.closeCh:
		}
		q.mu.Lock()
		batch := q.pending
		q.pending = q.spare[:0]
		for _, r := range batch {
			r.taken = true
		}
		closing := q.closed
		q.mu.Unlock()
		if len(batch) > 0 {
			q.commit(batch)
		}
		clear(batch)
		q.spare = batch
		if closing {
			return
		}
	}
}

// commit writes one group and publishes it, or fails every append of it.
// A group that fails for lack of space while every consumer has
// acknowledged everything gets a second try once the segment in the way
// is emptied (reclaimTail): otherwise a disk smaller than a segment would
// stay full with nothing left to deliver.
func (q *Queue) commit(batch []*appendReq) {
	w, err := q.write(batch)
	if err != nil && durable.NoSpace(err) && q.reclaimTail() {
		w, err = q.write(batch)
	}
	if err != nil {
		q.fail(batch, err)
		return
	}
	q.publish(batch, w)
}

// written is what a write leaves for publish.
type written struct {
	orig     *segment
	created  []*segment
	oldFiles []*os.File
	seq      uint64
}

// write numbers, writes and syncs one group. On failure it restores the
// log to what was published, so that sequence numbers and files stay
// consistent.
func (q *Queue) write(batch []*appendReq) (written, error) {
	orig, origF := q.wseg, q.wf
	origLastIdxOff := orig.lastIdxOff
	w := written{orig: orig}
	now := time.Now().UnixNano()
	seq := orig.wLast
	q.wbuf = q.wbuf[:0]

	rotate := func() error {
		if err := q.flush(); err != nil {
			return err
		}
		s, err := q.createSegment(seq + 1)
		if err != nil {
			return err
		}
		wf, err := os.OpenFile(s.path, os.O_WRONLY, 0)
		if err != nil {
			s.rf.Close()
			os.Remove(s.path)
			return fmt.Errorf("queue: open segment: %w", err)
		}
		w.oldFiles = append(w.oldFiles, q.wf)
		w.created = append(w.created, s)
		q.wseg, q.wf = s, wf
		return nil
	}
	err := func() error {
		for _, req := range batch {
			if req.rotate && q.wseg.wLast >= q.wseg.first {
				if err := rotate(); err != nil {
					return err
				}
			}
			for off := 0; off < len(req.buf); {
				n := int(binary.LittleEndian.Uint32(req.buf[off+4:]))
				frame := req.buf[off : off+frameHeaderSize+n]
				s := q.wseg
				if s.wLast >= s.first && s.wSize+int64(len(q.wbuf)+len(frame)) > q.segBytes {
					if err := rotate(); err != nil {
						return err
					}
					s = q.wseg
				}
				seq++
				sealFrame(frame, seq, now)
				at := s.wSize + int64(len(q.wbuf))
				if at-s.lastIdxOff >= indexEvery {
					s.wIndex = append(s.wIndex, indexEntry{seq: seq, off: at})
					s.lastIdxOff = at
				}
				q.wbuf = append(q.wbuf, frame...)
				s.wLast = seq
				off += len(frame)
			}
			req.last = seq
		}
		return q.flush()
	}()
	if err != nil {
		if restore := q.undo(orig, origF, origLastIdxOff, w.created, w.oldFiles); restore != nil {
			q.mu.Lock()
			q.err = fmt.Errorf("queue: unusable until restarted: %w (and restoring the log: %v)", err, restore)
			err = q.err
			q.mu.Unlock()
			q.log.Error("queue: cannot restore the log after a failed write; appends fail until restart", "err", restore)
		}
		return written{}, err
	}
	w.seq = seq
	return w, nil
}

// publish makes a written group visible to readers and wakes its
// appenders.
func (q *Queue) publish(batch []*appendReq, w written) {
	q.mu.Lock()
	var reserved int64
	for _, r := range batch {
		reserved += r.size
	}
	q.reserved -= reserved
	for _, s := range append([]*segment{w.orig}, w.created...) {
		q.used += s.wSize - s.size
		s.size, s.last = s.wSize, s.wLast
		s.index = append(s.index, s.wIndex...)
		s.wIndex = s.wIndex[:0]
	}
	q.segs = append(q.segs, w.created...)
	q.head = w.seq
	q.appendErr = nil
	close(q.dataCh)
	q.dataCh = make(chan struct{})
	var removed []*segment
	if len(w.created) > 0 {
		removed = q.collectAckedLocked()
	}
	q.mu.Unlock()
	for _, r := range batch {
		close(r.done)
	}
	for _, f := range w.oldFiles {
		if err := f.Close(); err != nil {
			q.log.Warn("queue: closing a full segment", "err", err)
		}
	}
	q.removeSegments(removed)
}

// fail fails every append of a group that write could not commit.
func (q *Queue) fail(batch []*appendReq, err error) {
	q.mu.Lock()
	if q.err == nil && durable.NoSpace(err) {
		// Transient like a full queue, and answered the same way: 503
		// and Retry-After. Acknowledgements free space.
		err = &diskFullError{err}
	}
	// A full disk fails every retry alike: log the first of a run.
	if q.appendErr == nil || q.appendErr.Error() != err.Error() {
		q.log.Error("queue: append failed; the senders get an error and retry", "err", err)
	}
	q.appendErr, q.appendErrAt = err, time.Now()
	for _, r := range batch {
		q.reserved -= r.size
		r.last, r.err = 0, err
	}
	q.mu.Unlock()
	for _, r := range batch {
		close(r.done)
	}
}

// diskFullError is a write that failed for lack of space on the disk or
// in the quota: ErrFull to the caller, and the system's error beneath.
type diskFullError struct{ err error }

func (e *diskFullError) Error() string {
	return "queue: full (no space left on the disk): " + e.err.Error()
}

func (e *diskFullError) Unwrap() []error { return []error{ErrFull, e.err} }

// flush writes the buffered frames to the tail and syncs them.
func (q *Queue) flush() error {
	s := q.wseg
	if len(q.wbuf) > 0 {
		if _, err := q.wf.WriteAt(q.wbuf, s.wSize); err != nil {
			return fmt.Errorf("queue: write %s: %w", s.path, err)
		}
		s.wSize += int64(len(q.wbuf))
		q.wbuf = q.wbuf[:0]
	}
	if !q.fsync {
		return nil
	}
	q.syncs.Add(1)
	err := datasync(q.wf)
	if q.testHookSync != nil && err == nil {
		err = q.testHookSync()
	}
	if err != nil {
		return fmt.Errorf("queue: fsync %s: %w", s.path, err)
	}
	return nil
}

// undo puts the writer back where the last published group left it.
func (q *Queue) undo(orig *segment, origF *os.File, lastIdxOff int64, created []*segment, oldFiles []*os.File) error {
	for _, s := range created {
		s.rf.Close()
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			q.log.Error("queue: removing a segment of a failed write", "segment", s.path, "err", err)
		}
	}
	for _, f := range append(oldFiles, q.wf) {
		if f != origF {
			f.Close()
		}
	}
	q.wseg, q.wf = orig, origF
	orig.wSize, orig.wLast, orig.lastIdxOff = orig.size, orig.last, lastIdxOff
	orig.wIndex = orig.wIndex[:0]
	q.wbuf = q.wbuf[:0]
	// A failed fsync may leave pages the kernel considers clean but never
	// wrote; cutting back to what was published discards them. On a full
	// disk the cut is also what gives back the space a partial write took.
	restore := origF.Truncate(orig.size)
	if restore == nil && q.fsync {
		restore = datasync(origF)
	}
	return restore
}

// reclaimTail empties the segment being written, if it is the only one
// and every consumer has acknowledged all of it, and renames it to start
// after its last record (rebase). Only closed segments are ever deleted,
// so without this a disk smaller than segment_bytes would fill with
// records nobody needs and stay full. It reuses the file rather than
// creating the next one first, since a full disk may not have a block
// for a new file.
func (q *Queue) reclaimTail() bool {
	q.mu.Lock()
	s := q.wseg
	ok := q.err == nil && len(q.segs) == 1 && q.segs[0] == s && s.last >= s.first && q.minAckedLocked() >= q.head
	q.mu.Unlock()
	if !ok {
		return false
	}
	// No reader needs s's records any more, since each has acknowledged
	// them all. One still reading them (an output that acknowledged
	// what it had not read) finds frames that fail to verify and gets an
	// error, never another record's bytes.
	ns, err := q.rebase(s, q.wf, s.last+1)
	if err != nil {
		// Whatever step failed, recovery finishes the job (an empty
		// segment behind the cursors) or finds the segment as it was.
		q.mu.Lock()
		q.err = fmt.Errorf("queue: unusable until restarted: %w", err)
		q.mu.Unlock()
		q.log.Error("queue: cannot empty a fully acknowledged segment; appends fail until restart", "err", err)
		return false
	}
	q.mu.Lock()
	q.segs[0] = ns
	q.used += ns.size - s.size
	q.holes = nil
	s.removed = true
	s.closeIfUnused()
	q.mu.Unlock()
	q.wseg = ns
	q.log.Info("queue: disk full; emptied the fully acknowledged segment to make room",
		"segment", s.path, "bytes", s.size, "now", ns.path)
	return true
}

// collectAckedLocked takes out of the log the closed segments that every
// consumer has acknowledged completely; removeSegments then deletes them.
func (q *Queue) collectAckedLocked() []*segment {
	m := q.minAckedLocked()
	var out []*segment
	for len(q.segs) > 1 && q.segs[0].last <= m {
		s := q.segs[0]
		q.segs[0] = nil
		q.segs = q.segs[1:]
		q.used -= s.size
		s.removed = true
		out = append(out, s)
	}
	if len(out) > 0 {
		first := q.segs[0].first
		for len(q.holes) > 0 && q.holes[0].last < first {
			q.holes = q.holes[1:]
		}
	}
	return out
}

func (q *Queue) removeSegments(segs []*segment) {
	for _, s := range segs {
		// Not synced: a removal lost in a crash only brings back a
		// segment that recovery will find acknowledged and delete again.
		if err := os.Remove(s.path); err != nil {
			q.log.Error("queue: deleting an acknowledged segment", "segment", s.path, "err", err)
		}
		q.mu.Lock()
		s.closeIfUnused()
		q.mu.Unlock()
	}
}

// Reader returns the reader of a consumer named in Open.
func (q *Queue) Reader(name string) (*Reader, error) {
	q.mu.Lock()
	readers := q.readers
	q.mu.Unlock()
	for _, r := range readers {
		if r.name == name {
			return r, nil
		}
	}
	return nil, fmt.Errorf("queue: %q is not a consumer of this queue", name)
}

// Stats returns a snapshot. OldestPending reads one record header per
// lagging consumer from disk (usually from the page cache) unless known.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	m := q.minAckedLocked()
	st := Stats{
		Bytes:       q.used,
		MaxBytes:    q.maxBytes,
		Records:     q.head - m - q.holesInLocked(m),
		Segments:    len(q.segs),
		Head:        q.head,
		Consumers:   make(map[string]ConsumerStats, len(q.readers)),
		Damaged:     q.damaged,
		Damage:      slices.Clone(q.damage),
		AppendErr:   q.appendErr,
		AppendErrAt: q.appendErrAt,
	}
	readers := q.readers
	acked := make([]uint64, len(readers))
	pending := make([]uint64, len(readers))
	for i, r := range readers {
		acked[i] = r.acked
		pending[i] = q.head - r.acked - q.holesInLocked(r.acked)
	}
	closed := q.closed
	q.mu.Unlock()
	for i, r := range readers {
		cs := ConsumerStats{Acked: acked[i], Pending: pending[i]}
		if cs.Pending > 0 && !closed {
			cs.OldestPending = r.oldestAfter(acked[i])
		}
		st.Consumers[r.name] = cs
	}
	return st
}

// Close lets the writer commit the appends already queued, then stops it
// and releases the files and the directory lock. Later calls to any method
// return ErrClosed; blocked Next calls return it at once.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	close(q.closeCh)
	readers := q.readers
	q.mu.Unlock()
	<-q.done
	for _, r := range readers {
		r.ackMu.Lock() // waits for a cursor write in progress
		r.mu.Lock()
		q.mu.Lock()
		r.releaseLocked()
		q.mu.Unlock()
		r.mu.Unlock()
		r.ackMu.Unlock()
	}
	return q.closeFiles()
}

func (q *Queue) closeFiles() error {
	var errs []error
	if q.wf != nil {
		errs = append(errs, q.wf.Close())
	}
	q.mu.Lock()
	for _, s := range q.segs {
		if !s.rfDone {
			s.rfDone = true
			errs = append(errs, s.rf.Close())
		}
	}
	q.mu.Unlock()
	errs = append(errs, q.lock.Close())
	return errors.Join(errs...)
}
