package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"strconv"
	"strings"
)

// The layout is described in doc.go; keep the two in step.
const (
	segMagic        = "APQSEG01"
	segHeaderSize   = 16 // magic + first seq
	frameHeaderSize = 24 // crc32c + length + seq + time
	segSuffix       = ".seg"

	// holeNanos in a frame's time field marks a hole: recovery's record
	// that the sequence numbers from the frame's seq to the uint64 in its
	// 8 bytes of data were lost to damage. No commit has that time.
	holeNanos = math.MinInt64

	// indexEvery is the spacing of the sparse in-memory index: a reader
	// seeking to a sequence number reads at most this much to find it,
	// and the index costs 16 bytes per indexEvery bytes of queue.
	indexEvery = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt reports a frame that failed verification while being read
// after recovery had accepted it: the disk changed under the queue.
var errCorrupt = errors.New("queue: corrupt record")

type indexEntry struct {
	seq uint64
	off int64
}

// segment is one file of the log. Published fields (last, size, index,
// refs, removed) are guarded by Queue.mu; w* fields belong to the writer
// goroutine until it publishes them.
type segment struct {
	first uint64
	path  string
	rf    *os.File // read handle, shared by readers through ReadAt

	last    uint64 // first-1 while empty
	size    int64
	index   []indexEntry
	refs    int
	removed bool // out of Queue.segs; rf is closed once refs drops to 0
	rfDone  bool // rf closed
	holes   bool // holds a hole frame

	wSize      int64
	wLast      uint64
	wIndex     []indexEntry
	lastIdxOff int64
}

func segName(first uint64) string {
	return fmt.Sprintf("%020d%s", first, segSuffix)
}

// parseSegName returns the first sequence number a segment file name
// carries, or false for any other file.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	first, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || first == 0 {
		return 0, false
	}
	return first, true
}

func appendSegHeader(dst []byte, first uint64) []byte {
	dst = append(dst, segMagic...)
	return binary.LittleEndian.AppendUint64(dst, first)
}

// sealFrame fills in a frame whose length and data are already in place:
// its sequence number, time and, last, the checksum over everything after
// the checksum field.
func sealFrame(frame []byte, seq uint64, nanos int64) {
	binary.LittleEndian.PutUint64(frame[8:], seq)
	binary.LittleEndian.PutUint64(frame[16:], uint64(nanos))
	binary.LittleEndian.PutUint32(frame[0:], crc32.Checksum(frame[4:], castagnoli))
}

// appendFrame encodes one record; tests and the fuzz target use it to
// build segments byte by byte.
func appendFrame(dst []byte, seq uint64, nanos int64, data []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, frameHeaderSize)...)
	binary.LittleEndian.PutUint32(dst[start+4:], uint32(len(data)))
	dst = append(dst, data...)
	sealFrame(dst[start:], seq, nanos)
	return dst
}

// appendHole encodes a hole frame for first..last.
func appendHole(dst []byte, first, last uint64) []byte {
	return appendFrame(dst, first, holeNanos, binary.LittleEndian.AppendUint64(nil, last))
}

// frameHeader is a decoded frame header.
type frameHeader struct {
	crc   uint32
	n     uint32
	seq   uint64
	nanos int64
	last  uint64 // seq, or for a hole the last number it covers (once its data is read)
}

func parseFrameHeader(b []byte) frameHeader {
	h := frameHeader{
		crc:   binary.LittleEndian.Uint32(b[0:]),
		n:     binary.LittleEndian.Uint32(b[4:]),
		seq:   binary.LittleEndian.Uint64(b[8:]),
		nanos: int64(binary.LittleEndian.Uint64(b[16:])),
	}
	h.last = h.seq
	return h
}

func (h frameHeader) isHole() bool { return h.nanos == holeNanos && h.n == 8 }

// seek returns where to start reading for seq in s: the indexed record
// at or before it, or the first record. Called with Queue.mu held.
func (s *segment) seek(seq uint64) (off int64, at uint64) {
	off, at = segHeaderSize, s.first
	lo, hi := 0, len(s.index)
	for lo < hi {
		m := (lo + hi) / 2
		if s.index[m].seq <= seq {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo > 0 {
		e := s.index[lo-1]
		off, at = e.off, e.seq
	}
	return off, at
}

// frameReader reads consecutive frames of one segment through a buffer,
// verifying each. It never reads past end, the segment's published size.
type frameReader struct {
	seg    *segment
	off    int64  // offset of the next frame
	seq    uint64 // sequence number of the next frame
	buf    []byte
	bufOff int64
}

func (fr *frameReader) reset(s *segment, off int64, seq uint64) {
	fr.seg, fr.off, fr.seq = s, off, seq
	fr.buf = fr.buf[:0]
}

// window returns the n bytes at off, reading ahead to amortise syscalls.
func (fr *frameReader) window(off int64, n int, end int64) ([]byte, error) {
	if off >= fr.bufOff && off+int64(n) <= fr.bufOff+int64(len(fr.buf)) {
		return fr.buf[off-fr.bufOff : off-fr.bufOff+int64(n)], nil
	}
	want := max(n, 128<<10)
	if int64(want) > end-off {
		want = int(end - off)
	}
	if want < n {
		return nil, fmt.Errorf("%w: record at offset %d of %s runs past the published end", errCorrupt, off, fr.seg.path)
	}
	if cap(fr.buf) < want {
		fr.buf = make([]byte, want)
	}
	fr.buf = fr.buf[:want]
	if _, err := fr.seg.rf.ReadAt(fr.buf, off); err != nil {
		fr.buf = fr.buf[:0]
		return nil, fmt.Errorf("queue: read %s: %w", fr.seg.path, err)
	}
	fr.bufOff = off
	return fr.buf[:n], nil
}

// peek returns the next frame's header and data (valid until the
// buffer is refilled) without advancing; skip then moves past it.
func (fr *frameReader) peek(end int64) (frameHeader, []byte, error) {
	hb, err := fr.window(fr.off, frameHeaderSize, end)
	if err != nil {
		return frameHeader{}, nil, err
	}
	h := parseFrameHeader(hb)
	b, err := fr.window(fr.off, frameHeaderSize+int(h.n), end)
	if err != nil {
		return frameHeader{}, nil, err
	}
	if h.seq != fr.seq || crc32.Checksum(b[4:], castagnoli) != h.crc {
		return frameHeader{}, nil, fmt.Errorf("%w: record %d at offset %d of %s", errCorrupt, fr.seq, fr.off, fr.seg.path)
	}
	data := b[frameHeaderSize:]
	if h.isHole() {
		if h.last = binary.LittleEndian.Uint64(data); h.last < h.seq {
			return frameHeader{}, nil, fmt.Errorf("%w: hole %d..%d at offset %d of %s", errCorrupt, h.seq, h.last, fr.off, fr.seg.path)
		}
	}
	return h, data, nil
}

// skip moves past the frame peek returned; past a hole, the next frame
// carries the number after the hole's last.
func (fr *frameReader) skip(h frameHeader) {
	fr.off += frameHeaderSize + int64(h.n)
	fr.seq = h.last + 1
}
