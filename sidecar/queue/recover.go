package queue

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/auditpipe/auditpipe/internal/durable"
)

// corruptDir, under Dir, keeps the original bytes of every segment
// recovery repaired. Nothing in the queue reads or deletes it.
const corruptDir = "corrupt"

// Damage is a range of acknowledged records that recovery found damaged
// on disk and skipped.
type Damage struct {
	Segment     string // path of the segment file
	First, Last uint64 // sequence numbers lost, inclusive
	Evidence    string // where the original bytes were copied (corrupt/...), "" if none
}

// hole is a range of sequence numbers lost to damage, as a hole frame
// records it.
type hole struct{ first, last uint64 }

// run is a stretch of valid frames, back to back, holding first..last
// with no number missing (holes included).
type run struct {
	off, end    int64
	first, last uint64
}

// lostRange is damage found by a scan: the sequence numbers first..last
// are missing, and the bytes from off (bytes long) did not verify. A
// range with first > last is damaged bytes that held no record.
type lostRange struct {
	first, last uint64
	off, bytes  int64
	reason      string
}

func (l lostRange) records() uint64 {
	if l.first > l.last {
		return 0
	}
	return l.last - l.first + 1
}

// segScan is what recovery learns from reading a segment file.
type segScan struct {
	headerOK   bool
	header     string // why the header is not OK
	runs       []run
	lost       []lostRange
	torn       int64 // the last segment only: where its torn end starts, or -1
	tornReason string
	last       uint64 // the last sequence number present (first-1 if none)
	records    uint64 // valid records, holes not counted
	holes      []hole
	valid      int64 // end of the last valid frame, or of the header
	index      []indexEntry
	lastIdxOff int64
}

// clean reports a segment that needs no change.
func (sc *segScan) clean() bool {
	return sc.headerOK && len(sc.lost) == 0 && sc.torn < 0
}

// scanBuf is recovery's read-ahead. A frame is checked through it in
// pieces, so a length field is never trusted with an allocation.
const scanBuf = 256 << 10

// segReader reads a segment file through a window of scanBuf bytes.
type segReader struct {
	r      io.ReaderAt
	size   int64
	buf    []byte
	bufOff int64
}

// at returns the n (at most scanBuf) bytes at off.
func (sr *segReader) at(off int64, n int) ([]byte, error) {
	if off >= sr.bufOff && off+int64(n) <= sr.bufOff+int64(len(sr.buf)) {
		return sr.buf[off-sr.bufOff : off-sr.bufOff+int64(n)], nil
	}
	want := min(int64(scanBuf), sr.size-off)
	if want < int64(n) {
		return nil, io.ErrUnexpectedEOF
	}
	if sr.buf == nil {
		sr.buf = make([]byte, scanBuf)
	}
	sr.buf = sr.buf[:want]
	if _, err := sr.r.ReadAt(sr.buf, off); err != nil {
		sr.buf = sr.buf[:0]
		return nil, err
	}
	sr.bufOff = off
	return sr.buf[:n], nil
}

// frame reports whether a frame that verifies starts at off, carrying a
// sequence number in (after, hi] and, if it is a hole, covering no more
// than up to maxSeq.
func (sr *segReader) frame(off int64, after, hi, maxSeq uint64) (frameHeader, bool, error) {
	left := sr.size - off
	if left < frameHeaderSize {
		return frameHeader{}, false, nil
	}
	b, err := sr.at(off, frameHeaderSize)
	if err != nil {
		return frameHeader{}, false, err
	}
	h := parseFrameHeader(b)
	if h.seq <= after || h.seq > hi || int64(h.n) > left-frameHeaderSize || h.n > maxRecordBytes {
		return h, false, nil
	}
	crc := crc32.Checksum(b[4:], castagnoli)
	if h.nanos == holeNanos {
		if h.n != 8 {
			return h, false, nil
		}
		d, err := sr.at(off+frameHeaderSize, 8)
		if err != nil {
			return h, false, err
		}
		if h.last = binary.LittleEndian.Uint64(d); h.last < h.seq || h.last > maxSeq {
			return h, false, nil
		}
	}
	for o, end := off+frameHeaderSize, off+frameHeaderSize+int64(h.n); o < end; {
		n := int(min(end-o, scanBuf))
		d, err := sr.at(o, n)
		if err != nil {
			return h, false, err
		}
		crc = crc32.Update(crc, castagnoli, d)
		o += int64(n)
	}
	return h, crc == h.crc, nil
}

// why says what is wrong with the frame at off, for the log.
func (sr *segReader) why(off int64, want, maxSeq uint64) string {
	left := sr.size - off
	if left < frameHeaderSize {
		return fmt.Sprintf("record %d at offset %d: %d bytes, less than a record header", want, off, left)
	}
	b, err := sr.at(off, frameHeaderSize)
	if err != nil {
		return fmt.Sprintf("record %d at offset %d: %v", want, off, err)
	}
	h := parseFrameHeader(b)
	switch {
	case int64(h.n) > left-frameHeaderSize:
		return fmt.Sprintf("record %d at offset %d claims %d bytes, %d left", want, off, h.n, left-frameHeaderSize)
	case h.seq > maxSeq:
		return fmt.Sprintf("record %d at offset %d carries sequence number %d, past the segment's last %d", want, off, h.seq, maxSeq)
	case h.seq < want:
		return fmt.Sprintf("record %d at offset %d carries sequence number %d", want, off, h.seq)
	default:
		return fmt.Sprintf("record %d at offset %d fails its checksum", want, off)
	}
}

// scanSegment verifies a segment file of size bytes whose name says it
// starts at first and whose records must not pass maxSeq (the next
// segment's first - 1, or the largest uint64 for the last segment).
//
// It never trusts a frame that does not verify, not even its length: at
// bad bytes it moves on one byte at a time until a frame verifies with a
// sequence number above the last good one and within the segment's
// range, and reports the numbers in between as lost. In the last segment,
// bad bytes after which no frame verifies are the torn end of a write
// interrupted by a crash, never acknowledged. There, a candidate must
// also be no further in numbers than the bytes skipped could have held
// (a record takes at least frameHeaderSize bytes), so that a torn end of
// arbitrary bytes is not a quadratic search; a segment still being
// written has no hole frames, which is what makes that bound hold.
func scanSegment(r io.ReaderAt, size int64, first, maxSeq uint64, isTail bool) (*segScan, error) {
	sc := &segScan{torn: -1, last: first - 1, valid: segHeaderSize, lastIdxOff: segHeaderSize}
	sr := &segReader{r: r, size: size}
	switch {
	case size < segHeaderSize:
		sc.header = fmt.Sprintf("segment header is %d of %d bytes", size, segHeaderSize)
	default:
		b, err := sr.at(0, segHeaderSize)
		if err != nil {
			return nil, err
		}
		if string(b[:8]) == segMagic && binary.LittleEndian.Uint64(b[8:]) == first {
			sc.headerOK = true
		} else {
			sc.header = "segment header does not match its name"
		}
	}
	last := first - 1
	bad := int64(-1) // where the bad bytes before pos start
	var reason string
	sawHole := false
	pos := int64(segHeaderSize)
	for pos < size {
		hi := maxSeq
		if bad >= 0 && isTail && !sawHole {
			hi = min(maxSeq, last+1+uint64(pos-bad)/frameHeaderSize)
		}
		h, ok, err := sr.frame(pos, last, hi, maxSeq)
		if err != nil {
			return nil, err
		}
		if !ok {
			if bad < 0 {
				bad, reason = pos, sr.why(pos, last+1, maxSeq)
			}
			pos++
			continue
		}
		if bad >= 0 || h.seq != last+1 || len(sc.runs) == 0 {
			if bad >= 0 || h.seq != last+1 {
				l := lostRange{first: last + 1, last: h.seq - 1, off: pos}
				if bad >= 0 {
					l.off, l.bytes, l.reason = bad, pos-bad, reason
				} else {
					l.reason = fmt.Sprintf("record %d at offset %d is followed by record %d", last, pos, h.seq)
				}
				sc.lost = append(sc.lost, l)
				bad = -1
			}
			sc.runs = append(sc.runs, run{off: pos, first: h.seq})
		}
		if pos-sc.lastIdxOff >= indexEvery {
			sc.index = append(sc.index, indexEntry{seq: h.seq, off: pos})
			sc.lastIdxOff = pos
		}
		if h.isHole() {
			sc.holes = append(sc.holes, hole{h.seq, h.last})
			sawHole = true
		} else {
			sc.records++
		}
		last = h.last
		pos += frameHeaderSize + int64(h.n)
		rn := &sc.runs[len(sc.runs)-1]
		rn.end, rn.last = pos, last
		sc.valid = pos
	}
	sc.last = last
	switch {
	case bad >= 0 && isTail:
		sc.torn, sc.tornReason = bad, reason
	case bad >= 0:
		sc.lost = append(sc.lost, lostRange{first: last + 1, last: maxSeq, off: bad, bytes: size - bad, reason: reason})
	case !isTail && last < maxSeq:
		sc.lost = append(sc.lost, lostRange{first: last + 1, last: maxSeq, off: size,
			reason: fmt.Sprintf("the segment ends at record %d and the next one starts at %d", last, maxSeq+1)})
	}
	return sc, nil
}

// recoverSegment verifies one segment file and repairs it if needed: it
// cuts a torn end of the last segment in place, and rewrites a damaged
// segment to hold its valid records, with a hole frame for each range
// lost, after keeping the original bytes under corrupt/.
func (q *Queue) recoverSegment(first, maxSeq uint64, isTail bool) (*segment, error) {
	path := filepath.Join(q.dir, segName(first))
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("queue: recover: %w", err)
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("queue: recover: %w", err)
	}
	size := fi.Size()
	sc, err := scanSegment(f, size, first, maxSeq, isTail)
	if err != nil {
		return nil, fmt.Errorf("queue: recover: read %s: %w", path, err)
	}
	repaired := false
	switch {
	case sc.clean():
	case sc.headerOK && len(sc.lost) == 0:
		q.logTorn(path, sc, size)
		if err := q.cutInPlace(path, sc.torn, 0); err != nil {
			return nil, fmt.Errorf("queue: recover: cut the torn end of %s: %w", path, err)
		}
	case isTail && size <= segHeaderSize:
		// A crash while the segment was being created, before any record.
		q.log.Warn("queue: rewriting the torn header of the last segment", "segment", path, "bytes", size, "reason", sc.header)
		if err := q.cutInPlace(path, 0, first); err != nil {
			return nil, fmt.Errorf("queue: recover: rewrite the header of %s: %w", path, err)
		}
		sc = &segScan{headerOK: true, torn: -1, last: first - 1, valid: segHeaderSize, lastIdxOff: segHeaderSize}
	default:
		if sc, err = q.repairSegment(f, path, size, first, maxSeq, isTail, sc); err != nil {
			return nil, err
		}
		repaired = true
	}
	rf := f // the file scanned, unless the repair replaced it
	if !repaired {
		f = nil
	} else if rf, err = os.Open(path); err != nil {
		return nil, fmt.Errorf("queue: recover: %w", err)
	}
	q.holes = append(q.holes, sc.holes...)
	return &segment{
		first: first, path: path, rf: rf, holes: len(sc.holes) > 0,
		last: sc.last, size: sc.valid, index: sc.index,
		wSize: sc.valid, wLast: sc.last, lastIdxOff: sc.lastIdxOff,
	}, nil
}

func (q *Queue) logTorn(path string, sc *segScan, size int64) {
	q.log.Warn("queue: cutting the torn end of the last segment", "segment", path,
		"offset", sc.torn, "bytes_cut", size-sc.torn, "records_kept", sc.records, "reason", sc.tornReason)
}

// cutInPlace truncates a file; with header > 0 it then writes a fresh
// segment header (at offset 0, so after a cut to 0).
func (q *Queue) cutInPlace(path string, at int64, header uint64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(at)
	if err == nil && header > 0 {
		_, err = f.WriteAt(appendSegHeader(nil, header), 0)
	}
	if err == nil && q.fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// repairSegment keeps the original file under corrupt/, logs and records
// what was lost, and replaces the segment with its valid frames and a
// hole frame for each range lost, so that readers go through it as
// through any other segment.
func (q *Queue) repairSegment(f *os.File, path string, size int64, first, maxSeq uint64, isTail bool, sc *segScan) (*segScan, error) {
	var evidence string
	if size > 0 {
		var err error
		if evidence, err = q.keepEvidence(path); err != nil {
			return nil, fmt.Errorf("queue: recover: keep a copy of damaged segment %s: %w", path, err)
		}
	}
	if !sc.headerOK {
		q.log.Error("queue: segment header damaged; rewritten from the file name", "segment", path,
			"reason", sc.header, "evidence", evidence)
	}
	for _, l := range sc.lost {
		n := l.records()
		if n == 0 {
			q.log.Error("queue: damaged bytes skipped; no record lost", "segment", path,
				"offset", l.off, "bytes", l.bytes, "reason", l.reason, "evidence", evidence)
			continue
		}
		q.log.Error("queue: acknowledged records lost to damage; skipped", "segment", path,
			"first", l.first, "last", l.last, "records", n, "offset", l.off, "bytes", l.bytes,
			"reason", l.reason, "evidence", evidence)
		q.damage = append(q.damage, Damage{Segment: path, First: l.first, Last: l.last, Evidence: evidence})
		q.damaged += n
	}
	if sc.torn >= 0 {
		q.logTorn(path, sc, size)
	}

	tmp := path + tmpSuffix
	err := q.writeRepaired(f, tmp, first, maxSeq, isTail, sc)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil && q.fsync {
		err = durable.SyncDir(q.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("queue: recover: rewrite damaged segment %s (original kept as %s): %w", path, evidence, err)
	}
	nf, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("queue: recover: %w", err)
	}
	defer nf.Close()
	fi, err := nf.Stat()
	if err != nil {
		return nil, fmt.Errorf("queue: recover: %w", err)
	}
	nsc, err := scanSegment(nf, fi.Size(), first, maxSeq, isTail)
	if err != nil {
		return nil, fmt.Errorf("queue: recover: read %s: %w", path, err)
	}
	if !nsc.clean() {
		return nil, fmt.Errorf("queue: recover: %s does not verify after its repair (original kept as %s)", path, evidence)
	}
	return nsc, nil
}

// writeRepaired writes tmp: a header, then the valid runs of f with a
// hole frame wherever numbers are missing before one, and after the last
// if the segment is closed and ends early.
func (q *Queue) writeRepaired(f *os.File, tmp string, first, maxSeq uint64, isTail bool, sc *segScan) error {
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(out, scanBuf)
	w.Write(appendSegHeader(nil, first))
	prev := first - 1
	for _, rn := range sc.runs {
		if rn.first > prev+1 {
			w.Write(appendHole(nil, prev+1, rn.first-1))
		}
		if _, err = io.Copy(w, io.NewSectionReader(f, rn.off, rn.end-rn.off)); err != nil {
			break
		}
		prev = rn.last
	}
	if err == nil && !isTail && prev < maxSeq {
		w.Write(appendHole(nil, prev+1, maxSeq))
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil && q.fsync {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// keepEvidence puts the segment's current bytes under corrupt/ before
// recovery changes anything: a hard link, since the repair writes a new
// file and leaves this one as it is, or a copy where links fail.
func (q *Queue) keepEvidence(path string) (string, error) {
	dir := filepath.Join(q.dir, corruptDir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	dst := filepath.Join(dir, fmt.Sprintf("%s.%d", filepath.Base(path), time.Now().UnixNano()))
	if err := os.Link(path, dst); err != nil {
		if err := copyFile(path, dst); err != nil {
			os.Remove(dst)
			return "", err
		}
	}
	if q.fsync {
		if err := durable.SyncDir(dir); err != nil {
			return "", err
		}
		if err := durable.SyncDir(q.dir); err != nil {
			return "", err
		}
	}
	return dst, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
