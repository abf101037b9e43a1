package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// faultFrame is where a record sits in a segment file.
type faultFrame struct {
	seq      uint64
	off, end int64
}

type faultSeg struct {
	path   string
	first  uint64
	frames []faultFrame
}

// faultRecords is how many records faultDir writes: rec(0)..rec(59) as
// records 1..60.
const faultRecords = 60

// faultDir makes a queue directory of several 1 KiB segments holding
// faultRecords records, and returns where each record is.
func faultDir(t *testing.T) (string, []faultSeg) {
	t.Helper()
	dir := t.TempDir()
	q := openQueue(t, faultCfg(dir), "a")
	appendRange(t, q, 0, faultRecords)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	var segs []faultSeg
	for _, p := range segFiles(t, dir) {
		first, _ := parseSegName(filepath.Base(p))
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s := faultSeg{path: p, first: first}
		for off := int64(segHeaderSize); off < int64(len(data)); {
			h := parseFrameHeader(data[off:])
			end := off + frameHeaderSize + int64(h.n)
			s.frames = append(s.frames, faultFrame{seq: h.seq, off: off, end: end})
			off = end
		}
		segs = append(segs, s)
	}
	if len(segs) < 4 || len(segs[1].frames) < 4 || len(segs[len(segs)-1].frames) < 3 {
		t.Fatalf("want at least 4 segments of several records: %+v", segs)
	}
	return dir, segs
}

func faultCfg(dir string) Config {
	return Config{Dir: dir, SegmentBytes: 1024, MaxBytes: 1 << 20}
}

// edit changes a file's bytes.
func edit(t *testing.T, path string, f func([]byte) []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, f(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func flipAt(off int64) func([]byte) []byte {
	return func(b []byte) []byte { b[off] ^= 0x10; return b }
}

type faultCase struct {
	name   string
	damage func(t *testing.T, dir string, segs []faultSeg)
	// lost are the ranges Stats.Damage must list (in order), torn the
	// records cut from the end of the last segment; every other record
	// must be delivered.
	lost []Damage
	torn []uint64
	// level and msg of the log line the case must produce.
	level, msg string
	// evidence: the damaged segment's original bytes are under corrupt/.
	evidence bool
}

const (
	msgLost   = "queue: acknowledged records lost to damage; skipped"
	msgHeader = "queue: segment header damaged; rewritten from the file name"
	msgTorn   = "queue: cutting the torn end of the last segment"
	msgCursor = "queue: cursor unreadable, consumer restarts at the oldest record"
)

// The faults a disk or an operator can inflict, each on a fresh
// directory. Recovery must deliver every intact record, count exactly
// the acknowledged records it could not, log it, keep the original
// bytes, and leave a log that the next Open finds clean. (The lock's
// faults are TestLockSurvivesLockFileRemoval and TestLockOtherProcess.)
func TestRecoverFaults(t *testing.T) {
	sealed := func(segs []faultSeg) faultSeg { return segs[1] }
	tail := func(segs []faultSeg) faultSeg { return segs[len(segs)-1] }
	r := func(f faultFrame) []Damage { return []Damage{{First: f.seq, Last: f.seq}} }
	cases := []struct {
		faultCase
		// lostFn computes lost from the layout when it depends on it.
		lostFn func(segs []faultSeg) []Damage
		tornFn func(segs []faultSeg) []uint64
	}{
		{faultCase: faultCase{name: "body byte flipped in a sealed segment", level: "ERROR", msg: msgLost, evidence: true,
			damage: func(t *testing.T, _ string, segs []faultSeg) {
				f := sealed(segs).frames[1]
				edit(t, sealed(segs).path, flipAt(f.off+frameHeaderSize+3))
			}},
			lostFn: func(segs []faultSeg) []Damage { return r(sealed(segs).frames[1]) }},
		{faultCase: faultCase{name: "four body bytes flipped in the last segment", level: "ERROR", msg: msgLost, evidence: true,
			damage: func(t *testing.T, _ string, segs []faultSeg) {
				f := tail(segs).frames[1]
				edit(t, tail(segs).path, func(b []byte) []byte {
					for i := range int64(4) {
						b[f.off+frameHeaderSize+i] ^= 0xff
					}
					return b
				})
			}},
			lostFn: func(segs []faultSeg) []Damage { return r(tail(segs).frames[1]) }},
		{faultCase: faultCase{name: "crc flipped", level: "ERROR", msg: msgLost, evidence: true,
			damage: func(t *testing.T, _ string, segs []faultSeg) {
				edit(t, sealed(segs).path, flipAt(sealed(segs).frames[2].off+1))
			}},
			lostFn: func(segs []faultSeg) []Damage { return r(sealed(segs).frames[2]) }},
		{faultCase: faultCase{name: "length field claims a huge size", level: "ERROR", msg: msgLost, evidence: true,
			damage: func(t *testing.T, _ string, segs []faultSeg) {
				edit(t, sealed(segs).path, func(b []byte) []byte {
					binary.LittleEndian.PutUint32(b[sealed(segs).frames[1].off+4:], 0xfffffff0)
					return b
				})
			}},
			lostFn: func(segs []faultSeg) []Damage { return r(sealed(segs).frames[1]) }},
		{faultCase: faultCase{name: "length field shortened", level: "ERROR", msg: msgLost, evidence: true,
			damage: func(t *testing.T, _ string, segs []faultSeg) {
				edit(t, sealed(segs).path, func(b []byte) []byte {
					binary.LittleEndian.PutUint32(b[sealed(segs).frames[1].off+4:], 2)
					return b
				})
			}},
			lostFn: func(segs []faultSeg) []Damage { return r(sealed(segs).frames[1]) }},
		{faultCase: faultCase{name: "length field of the last segment's first record", level: "ERROR", msg: msgLost, evidence: true,
			damage: func(t *testing.T, _ string, segs []faultSeg) {
				edit(t, tail(segs).path, flipAt(tail(segs).frames[0].off+5))
			}},
			lostFn: func(segs []faultSeg) []Damage { return r(tail(segs).frames[0]) }},
		{faultCase: faultCase{name: "seq field flipped", level: "ERROR", msg: msgLost, evidence: true,
			damage: func(t *testing.T, _ string, segs []faultSeg) {
				edit(t, sealed(segs).path, flipAt(sealed(segs).frames[2].off+8))
			}},
			lostFn: func(segs []faultSeg) []Damage { return r(sealed(segs).frames[2]) }},
		{faultCase: faultCase{name: "time field flipped in the last segment", level: "ERROR", msg: msgLost, evidence: true,
			damage: func(t *testing.T, _ string, segs []faultSeg) {
				edit(t, tail(segs).path, flipAt(tail(segs).frames[1].off+17))
			}},
			lostFn: func(segs []faultSeg) []Damage { return r(tail(segs).frames[1]) }},
		{faultCase: faultCase{name: "zeroed run over three records", level: "ERROR", msg: msgLost, evidence: true,
			damage: func(t *testing.T, _ string, segs []faultSeg) {
				fr := sealed(segs).frames
				edit(t, sealed(segs).path, func(b []byte) []byte {
					clear(b[fr[0].end-5 : fr[2].end+3]) // the end of 1st through the start of 4th
					return b
				})
			}},
			lostFn: func(segs []faultSeg) []Damage {
				fr := sealed(segs).frames
				return []Damage{{First: fr[0].seq, Last: fr[3].seq}}
			}},
		{faultCase: faultCase{name: "two damaged places in one segment", level: "ERROR", msg: msgLost, evidence: true,
			damage: func(t *testing.T, _ string, segs []faultSeg) {
				fr := sealed(segs).frames
				edit(t, sealed(segs).path, func(b []byte) []byte {
					b[fr[0].off+frameHeaderSize] ^= 1
					b[fr[2].off+frameHeaderSize] ^= 1
					return b
				})
			}},
			lostFn: func(segs []faultSeg) []Damage {
				fr := sealed(segs).frames
				return []Damage{{First: fr[0].seq, Last: fr[0].seq}, {First: fr[2].seq, Last: fr[2].seq}}
			}},
		{faultCase: faultCase{name: "end of a sealed segment zeroed", level: "ERROR", msg: msgLost, evidence: true,
			damage: func(t *testing.T, _ string, segs []faultSeg) {
				edit(t, sealed(segs).path, func(b []byte) []byte { clear(b[len(b)-10:]); return b })
			}},
			lostFn: func(segs []faultSeg) []Damage { fr := sealed(segs).frames; return r(fr[len(fr)-1]) }},
		{faultCase: faultCase{name: "sealed segment cut mid-record", level: "ERROR", msg: msgLost, evidence: true,
			damage: func(t *testing.T, _ string, segs []faultSeg) {
				edit(t, sealed(segs).path, func(b []byte) []byte { return b[:sealed(segs).frames[2].off+30] })
			}},
			lostFn: func(segs []faultSeg) []Damage {
				fr := sealed(segs).frames
				return []Damage{{First: fr[2].seq, Last: fr[len(fr)-1].seq}}
			}},
		{faultCase: faultCase{name: "sealed segment cut between records", level: "ERROR", msg: msgLost, evidence: true,
			damage: func(t *testing.T, _ string, segs []faultSeg) {
				edit(t, sealed(segs).path, func(b []byte) []byte { return b[:sealed(segs).frames[2].off] })
			}},
			lostFn: func(segs []faultSeg) []Damage {
				fr := sealed(segs).frames
				return []Damage{{First: fr[2].seq, Last: fr[len(fr)-1].seq}}
			}},
		{faultCase: faultCase{name: "sealed segment file deleted", level: "ERROR", msg: msgLost, evidence: true,
			damage: func(t *testing.T, _ string, segs []faultSeg) {
				if err := os.Remove(segs[2].path); err != nil {
					t.Fatal(err)
				}
			}},
			lostFn: func(segs []faultSeg) []Damage {
				fr := segs[2].frames
				return []Damage{{Segment: segs[1].path, First: fr[0].seq, Last: fr[len(fr)-1].seq}}
			}},
		{faultCase: faultCase{name: "sealed segment all zeros", level: "ERROR", msg: msgLost, evidence: true,
			damage: func(t *testing.T, _ string, segs []faultSeg) {
				edit(t, sealed(segs).path, func(b []byte) []byte { clear(b); return b })
			}},
			lostFn: func(segs []faultSeg) []Damage {
				fr := sealed(segs).frames
				return []Damage{{First: fr[0].seq, Last: fr[len(fr)-1].seq}}
			}},
		{faultCase: faultCase{name: "sealed segment header magic flipped", level: "ERROR", msg: msgHeader, evidence: true,
			damage: func(t *testing.T, _ string, segs []faultSeg) { edit(t, sealed(segs).path, flipAt(2)) }}},
		{faultCase: faultCase{name: "first segment header first seq flipped", level: "ERROR", msg: msgHeader, evidence: true,
			damage: func(t *testing.T, _ string, segs []faultSeg) { edit(t, segs[0].path, flipAt(8)) }}},
		{faultCase: faultCase{name: "last segment header first seq flipped", level: "ERROR", msg: msgHeader, evidence: true,
			damage: func(t *testing.T, _ string, segs []faultSeg) { edit(t, tail(segs).path, flipAt(9)) }}},
		{faultCase: faultCase{name: "header and a record of a sealed segment", level: "ERROR", msg: msgLost, evidence: true,
			damage: func(t *testing.T, _ string, segs []faultSeg) {
				edit(t, sealed(segs).path, func(b []byte) []byte {
					b[0] ^= 1
					b[sealed(segs).frames[0].off+frameHeaderSize+1] ^= 1
					return b
				})
			}},
			lostFn: func(segs []faultSeg) []Damage { return r(sealed(segs).frames[0]) }},
		{faultCase: faultCase{name: "torn tail: last record cut", level: "WARN", msg: msgTorn,
			damage: func(t *testing.T, _ string, segs []faultSeg) {
				fr := tail(segs).frames
				edit(t, tail(segs).path, func(b []byte) []byte { return b[:fr[len(fr)-1].end-7] })
			}},
			tornFn: func(segs []faultSeg) []uint64 { fr := tail(segs).frames; return []uint64{fr[len(fr)-1].seq} }},
		{faultCase: faultCase{name: "torn tail: zeros after the last record", level: "WARN", msg: msgTorn,
			damage: func(t *testing.T, _ string, segs []faultSeg) {
				edit(t, tail(segs).path, func(b []byte) []byte { return append(b, make([]byte, 4096)...) })
			}}},
		{faultCase: faultCase{name: "torn tail: last two records garbled", level: "WARN", msg: msgTorn,
			damage: func(t *testing.T, _ string, segs []faultSeg) {
				fr := tail(segs).frames
				edit(t, tail(segs).path, func(b []byte) []byte {
					for i := fr[len(fr)-2].off + 3; i < int64(len(b)); i += 7 {
						b[i] ^= 0x5a
					}
					return b
				})
			}},
			tornFn: func(segs []faultSeg) []uint64 {
				fr := tail(segs).frames
				return []uint64{fr[len(fr)-2].seq, fr[len(fr)-1].seq}
			}},
		{faultCase: faultCase{name: "cursor file truncated", level: "ERROR", msg: msgCursor,
			damage: func(t *testing.T, dir string, segs []faultSeg) {
				if err := writeCursor(filepath.Join(dir, cursorFile("a")), 30, nil, false); err != nil {
					t.Fatal(err)
				}
				edit(t, filepath.Join(dir, cursorFile("a")), func(b []byte) []byte { return b[:11] })
			}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, segs := faultDir(t)
			tc.damage(t, dir, segs)
			fc := tc.faultCase
			if tc.lostFn != nil {
				fc.lost = tc.lostFn(segs)
			}
			if tc.tornFn != nil {
				fc.torn = tc.tornFn(segs)
			}
			checkFault(t, dir, segs, fc)
		})
	}
}

// checkFault recovers dir and checks everything a faultCase says.
func checkFault(t *testing.T, dir string, segs []faultSeg, fc faultCase) {
	t.Helper()
	segOf := func(seq uint64) string {
		for i := len(segs) - 1; i >= 0; i-- {
			if seq >= segs[i].first {
				return segs[i].path
			}
		}
		return ""
	}
	originals := map[string][]byte{}
	for _, s := range segs {
		if b, err := os.ReadFile(s.path); err == nil {
			originals[s.path] = b
		}
	}
	var logs logBuffer
	q, err := Open(faultCfg(dir), []string{"a", "keep"}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	st := q.Stats()

	var wantDamaged uint64
	for i := range fc.lost {
		if fc.lost[i].Segment == "" {
			fc.lost[i].Segment = segOf(fc.lost[i].First)
		}
		wantDamaged += fc.lost[i].Last - fc.lost[i].First + 1
	}
	if len(st.Damage) != len(fc.lost) || st.Damaged != wantDamaged {
		t.Fatalf("damage %+v (%d records), want %+v (%d)\n%s", st.Damage, st.Damaged, fc.lost, wantDamaged, logs.String())
	}
	for i, d := range st.Damage {
		w := fc.lost[i]
		if d.Segment != w.Segment || d.First != w.First || d.Last != w.Last {
			t.Fatalf("damage %d: %+v, want %+v", i, d, w)
		}
		if !strings.HasPrefix(d.Evidence, filepath.Join(dir, corruptDir)+string(filepath.Separator)+filepath.Base(d.Segment)+".") {
			t.Fatalf("damage %d: evidence %q", i, d.Evidence)
		}
	}
	if !hasLogLine(logs.String(), fc.level, fc.msg) {
		t.Fatalf("no level=%s %q in the log:\n%s", fc.level, fc.msg, logs.String())
	}
	evidence, _ := filepath.Glob(filepath.Join(dir, corruptDir, "*"))
	if fc.evidence {
		if len(evidence) == 0 {
			t.Fatalf("no evidence kept")
		}
		for _, e := range evidence {
			name := filepath.Base(e)
			orig := filepath.Join(dir, name[:strings.LastIndexByte(name, '.')])
			got, err := os.ReadFile(e)
			if err != nil {
				t.Fatal(err)
			}
			// The bytes as the damage left them, before the repair.
			if want, ok := originals[orig]; !ok || !bytes.Equal(got, want) {
				t.Fatalf("evidence %s: %d bytes, not those of %s (%d)", e, len(got), orig, len(want))
			}
		}
	} else if len(evidence) > 0 {
		t.Fatalf("evidence kept for %s: %v", fc.name, evidence)
	}

	// Every record not lost or torn is delivered, in order, once.
	gone := map[uint64]bool{}
	for _, d := range fc.lost {
		for s := d.First; s <= d.Last; s++ {
			gone[s] = true
		}
	}
	for _, s := range fc.torn {
		gone[s] = true
	}
	var want []uint64
	for s := uint64(1); s <= faultRecords; s++ {
		if !gone[s] {
			want = append(want, s)
		}
	}
	checkDelivered(t, q, "a", want)
	if len(fc.torn) == 0 && st.Head != faultRecords {
		t.Fatalf("head %d, want %d", st.Head, faultRecords)
	}
	if a := st.Consumers["a"]; a.Pending != uint64(len(want)) {
		t.Fatalf("pending %d, want %d", a.Pending, len(want))
	}
	last, err := q.Append(context.Background(), [][]byte{rec(int(st.Head))})
	if err != nil || last != st.Head+1 {
		t.Fatalf("append after recovery: %d, %v", last, err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	// The repair holds: the next Open finds nothing new, keeps nothing
	// more and delivers the same records, and the appended one.
	var logs2 logBuffer
	q2, err := Open(faultCfg(dir), []string{"a", "keep"}, slog.New(slog.NewTextHandler(&logs2, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	if st := q2.Stats(); st.Damaged != 0 || len(st.Damage) != 0 || strings.Contains(logs2.String(), "level=ERROR") || strings.Contains(logs2.String(), "level=WARN") {
		t.Fatalf("second Open: damage %+v\n%s", st.Damage, logs2.String())
	}
	if again, _ := filepath.Glob(filepath.Join(dir, corruptDir, "*")); len(again) != len(evidence) {
		t.Fatalf("second Open kept more evidence: %v", again)
	}
	checkDelivered(t, q2, "keep", append(want, last))
}

// checkDelivered reads consumer name to the end and expects exactly the
// records want, each as rec made it.
func checkDelivered(t *testing.T, q *Queue, name string, want []uint64) {
	t.Helper()
	r, err := q.Reader(name)
	if err != nil {
		t.Fatal(err)
	}
	got := readN(t, r, len(want), 7)
	var seqs []uint64
	for _, rc := range got {
		seqs = append(seqs, rc.Seq)
		if !bytes.Equal(rc.Data, rec(int(rc.Seq-1))) {
			t.Fatalf("record %d holds %q", rc.Seq, rc.Data)
		}
	}
	if !slices.Equal(seqs, want) {
		t.Fatalf("delivered %v\nwant      %v", seqs, want)
	}
	// Nothing else is pending: numbers after the last one are holes.
	if len(want) > 0 {
		if err := r.Ack(want[len(want)-1]); err != nil {
			t.Fatal(err)
		}
	}
	if p := q.Stats().Consumers[name].Pending; p != 0 {
		t.Fatalf("%d records pending after the last expected one was acknowledged", p)
	}
}

func hasLogLine(logs, level, msg string) bool {
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "level="+level+" ") && strings.Contains(l, fmt.Sprintf("msg=%q", msg)) {
			return true
		}
	}
	return false
}

// Readers around the holes recovery leaves: a position or an Ack inside
// a hole, a hole that ends a segment, Pending and OldestPending, and a
// cursor inside a hole after a restart.
func TestReadAroundHoles(t *testing.T) {
	dir, segs := faultDir(t)
	mid, end := segs[1].frames, segs[2].frames
	edit(t, segs[1].path, func(b []byte) []byte { clear(b[mid[1].off:mid[3].end]); return b })
	edit(t, segs[2].path, func(b []byte) []byte { return b[:end[len(end)-2].off] })
	hole1 := Damage{First: mid[1].seq, Last: mid[3].seq}
	hole2 := Damage{First: end[len(end)-2].seq, Last: end[len(end)-1].seq}
	const lost = 5

	q := openQueue(t, faultCfg(dir), "a", "b")
	st := q.Stats()
	if st.Damaged != lost || len(st.Damage) != 2 || st.Damage[0].First != hole1.First || st.Damage[1].Last != hole2.Last {
		t.Fatalf("damage %+v", st.Damage)
	}
	if st.Records != faultRecords-lost || st.Consumers["a"].Pending != faultRecords-lost {
		t.Fatalf("records %d, pending %+v; want %d", st.Records, st.Consumers["a"], faultRecords-lost)
	}
	ra, _ := q.Reader("a")
	rb, _ := q.Reader("b")

	// An ack inside the first hole: the next record is the one after it.
	readN(t, ra, int(mid[0].seq), 100)
	if err := ra.Ack(hole1.First + 1); err != nil {
		t.Fatal(err)
	}
	if p := q.Stats().Consumers["a"].Pending; p != faultRecords-hole1.Last-2 {
		t.Fatalf("pending %d after an ack inside a hole, want %d", p, faultRecords-hole1.Last-2)
	}
	if got := readN(t, ra, 1, 1)[0].Seq; got != hole1.Last+1 {
		t.Fatalf("after an ack inside a hole, read %d, want %d", got, hole1.Last+1)
	}
	// Rewind to inside the hole, and a position inside it.
	ra.Rewind()
	if got := readN(t, ra, 1, 1)[0].Seq; got != hole1.Last+1 {
		t.Fatalf("after a rewind into a hole, read %d, want %d", got, hole1.Last+1)
	}

	// The hole at the end of a segment: b acknowledges up to just
	// before it; what is oldest pending is the next segment's first.
	before := hole2.First - 1
	recs := readN(t, rb, int(before)-3, 100) // everything up to it, less the first hole
	if recs[len(recs)-1].Seq != before {
		t.Fatalf("b read up to %d, want %d", recs[len(recs)-1].Seq, before)
	}
	if err := rb.Ack(before); err != nil {
		t.Fatal(err)
	}
	next := readN(t, rb, 1, 1)[0]
	if next.Seq != hole2.Last+1 {
		t.Fatalf("b reads %d after the hole at the end of a segment, want %d", next.Seq, hole2.Last+1)
	}
	b := q.Stats().Consumers["b"]
	if !b.OldestPending.Equal(next.Time) || b.Pending != faultRecords-hole2.Last {
		t.Fatalf("b: %+v; want oldest pending %v and %d pending", b, next.Time, faultRecords-hole2.Last)
	}
	// A cursor inside a hole survives a restart.
	if err := rb.Ack(hole2.First); err != nil {
		t.Fatal(err)
	}
	q.Close()
	q = openQueue(t, faultCfg(dir), "a", "b")
	rb, _ = q.Reader("b")
	if got := readN(t, rb, 1, 1)[0].Seq; got != hole2.Last+1 {
		t.Fatalf("after a restart with b's cursor in a hole, b reads %d, want %d", got, hole2.Last+1)
	}
	if st := q.Stats(); st.Damaged != 0 || st.Consumers["b"].Pending != faultRecords-hole2.Last {
		t.Fatalf("after the restart: %+v", st)
	}
}

// A repaired segment large enough for the sparse index: seeks by Ack
// and Rewind land right on both sides of the hole.
func TestRepairKeepsIndex(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 1 << 20, MaxBytes: 8 << 20, Fsync: boolp(false)}
	q := openQueue(t, cfg, "a")
	big := make([][]byte, 1500)
	for i := range big {
		big[i] = bytes.Repeat([]byte{byte('a' + i%26)}, 1000)
	}
	if _, err := q.Append(context.Background(), big); err != nil {
		t.Fatal(err)
	}
	q.Close()
	segs := segFiles(t, dir)
	// Zero records 500 to 502 of the first segment, which holds 1..1016.
	frame := int64(frameHeaderSize + 1000)
	edit(t, segs[0], func(b []byte) []byte {
		clear(b[segHeaderSize+499*frame : segHeaderSize+502*frame])
		return b
	})
	q = openQueue(t, cfg, "a")
	if st := q.Stats(); st.Damaged != 3 || st.Damage[0].First != 500 || st.Damage[0].Last != 502 {
		t.Fatalf("damage %+v", st.Damage)
	}
	q.mu.Lock()
	index := len(q.segs[0].index)
	q.mu.Unlock()
	if index < 10 {
		t.Fatalf("%d index entries in the repaired segment", index)
	}
	// Cursors only go up (acknowledged segments are deleted at Open).
	for _, tt := range []struct{ ack, next uint64 }{{499, 503}, {501, 503}, {502, 503}, {503, 504}, {1200, 1201}} {
		q.Close()
		if err := writeCursor(filepath.Join(dir, cursorFile("a")), tt.ack, nil, false); err != nil {
			t.Fatal(err)
		}
		q = openQueue(t, cfg, "a")
		r, _ := q.Reader("a")
		got := readN(t, r, 1, 1)[0]
		if got.Seq != tt.next || !bytes.Equal(got.Data, big[tt.next-1]) {
			t.Fatalf("cursor at %d: next is %d, want %d", tt.ack, got.Seq, tt.next)
		}
		r.Rewind()
		if got := readN(t, r, 1, 1)[0]; got.Seq != tt.next {
			t.Fatalf("cursor at %d, rewound: next is %d, want %d", tt.ack, got.Seq, tt.next)
		}
	}
}

// Megabytes of random bytes after the last record: a torn tail, found
// in a linear scan (the bound on candidates), with every record kept.
func TestTornTailOfRandomBytes(t *testing.T) {
	dir, segs := faultDir(t)
	garbage := make([]byte, 8<<20)
	rand.NewChaCha8([32]byte{1}).Read(garbage)
	edit(t, segs[len(segs)-1].path, func(b []byte) []byte { return append(b, garbage...) })
	// and in a closed segment, between two records
	edit(t, segs[1].path, func(b []byte) []byte {
		return slices.Concat(b[:segs[1].frames[1].off], garbage[:1<<20], b[segs[1].frames[1].off:])
	})
	checkFault(t, dir, segs, faultCase{name: "random bytes", level: "WARN", msg: msgTorn, evidence: true})
}
