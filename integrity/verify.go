package integrity

import (
	"cmp"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/auditpipe/auditpipe"
)

// Where locates an event in the verifier's input, for the report.
type Where struct {
	Source string `json:"source"` // file, object key, topic/partition
	Line   int64  `json:"line"`   // line or offset in it
}

func (w Where) String() string { return fmt.Sprintf("%s:%d", w.Source, w.Line) }

// Verifier checks events from any number of streams, in any order, and
// reports on them once all are in. It keeps a few dozen bytes per event
// (positions and hashes, not events), so tens of millions fit in memory.
type Verifier struct {
	keys    map[string]ed25519.PublicKey
	h       hasher
	streams map[string]*streamEntries
	sources []string
	srcIdx  map[string]int32
	r       Report
	msg     []byte
}

// NewVerifier returns a Verifier trusting keys.
func NewVerifier(keys ...ed25519.PublicKey) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, errors.New("keys: at least one public key is required")
	}
	v := &Verifier{keys: map[string]ed25519.PublicKey{}, streams: map[string]*streamEntries{}, srcIdx: map[string]int32{}}
	for _, k := range keys {
		if len(k) != ed25519.PublicKeySize {
			return nil, errors.New("keys: not an Ed25519 public key")
		}
		v.keys[KeyID(k)] = k
	}
	v.r.Signatures.ByKey = map[string]int{}
	for id := range v.keys {
		v.r.Signatures.ByKey[id] = 0
	}
	return v, nil
}

type streamEntries struct {
	name    string
	entries []entry
}

// entry is what the report needs of one event.
type entry struct {
	seq      uint64
	hash     Hash // the claimed hash
	prev     Hash
	src      int32
	line     int64
	altered  bool // the claimed hash is not the content's
	signed   bool // carries a valid signature by a known key
	badSig   bool
	dead     bool // from the dead-letter store, not the destination
	unixNano int64
}

// Malformed records input that is not an event at all (a line that does
// not decode): a failure, since a verifier cannot vouch for what it cannot
// read.
func (v *Verifier) Malformed(at Where, err error) {
	v.r.Entries++
	v.r.Malformed = v.problem(v.r.Malformed, Problem{Where: at.String(), Detail: err.Error()})
	v.r.MalformedCount++
}

// Add checks one event: its hash against its content and its signature,
// if any, against the trusted keys. Chain links, gaps, forks and coverage
// are judged in Report, when every event is in.
func (v *Verifier) Add(ev *auditpipe.Event, at Where) {
	v.r.Entries++
	v.span(ev.Time)
	v.add(ev, at, false)
}

// AddDeadLettered takes an event the output rejected for good, from the
// dead-letter store, where it keeps its integrity block: the gap its
// absence leaves at the destination is then explained, not a failure,
// and the chain is checked through it. Its hash and signature are
// checked like any other's.
func (v *Verifier) AddDeadLettered(ev *auditpipe.Event, at Where) {
	if ev.Integrity == nil || ev.Integrity.Stream == "" || ev.Integrity.Seq == 0 {
		return // dead-lettered before it was sealed: not part of a chain
	}
	v.r.DeadLetters++
	v.add(ev, at, true)
}

func (v *Verifier) add(ev *auditpipe.Event, at Where, dead bool) {
	in := ev.Integrity
	if in == nil || in.Stream == "" || in.Seq == 0 {
		v.r.UnsealedCount++
		v.r.Unsealed = v.problem(v.r.Unsealed, Problem{Where: at.String(), Detail: "no integrity block (stream and seq)"})
		return
	}
	prob := func(list *[]Problem, n *int, detail string) {
		*n++
		*list = v.problem(*list, Problem{Stream: in.Stream, Seq: in.Seq, Where: at.String(), Detail: detail})
	}
	e := entry{seq: in.Seq, src: v.source(at.Source), line: at.Line, unixNano: ev.Time.UnixNano(), dead: dead}
	var err error
	if e.hash, err = ParseHash(in.Hash); err == nil {
		e.prev, err = ParseHash(in.PrevHash)
	}
	if err == nil && in.Hash == "" {
		err = errors.New("hash: missing")
	}
	if err != nil {
		prob(&v.r.Altered, &v.r.AlteredCount, err.Error())
		e.altered = true
	} else {
		ev.Integrity = nil
		sum, err := v.h.sum(Position{Stream: in.Stream, Seq: in.Seq, Prev: e.prev}, ev)
		ev.Integrity = in
		if err != nil || sum != e.hash {
			detail := "content does not match its hash: the event was changed after it was sealed"
			if err != nil {
				detail = err.Error()
			}
			prob(&v.r.Altered, &v.r.AlteredCount, detail)
			e.altered = true
		}
	}
	if in.Signature != "" || in.KeyID != "" {
		v.signature(in, &e, prob)
	}
	s := v.streams[in.Stream]
	if s == nil {
		s = &streamEntries{name: in.Stream}
		v.streams[in.Stream] = s
	}
	s.entries = append(s.entries, e)
}

func (v *Verifier) signature(in *auditpipe.Integrity, e *entry, prob func(*[]Problem, *int, string)) {
	key, known := v.keys[in.KeyID]
	if !known {
		v.r.Signatures.Unknown++
		if v.r.Signatures.UnknownKeys == nil {
			v.r.Signatures.UnknownKeys = map[string]int{}
		}
		v.r.Signatures.UnknownKeys[in.KeyID]++
		e.badSig = true
		prob(&v.r.BadSignatures, &v.r.BadSignatureCount, fmt.Sprintf("signed by key %q, which is not among the public keys given", in.KeyID))
		return
	}
	sig, err := base64.StdEncoding.DecodeString(in.Signature)
	if err == nil && !e.altered {
		v.msg = appendSignedMessage(v.msg[:0], in.Stream, in.Seq, e.hash)
		if ed25519.Verify(key, v.msg, sig) {
			e.signed = true
			v.r.Signatures.Valid++
			v.r.Signatures.ByKey[in.KeyID]++
			return
		}
	}
	if e.altered {
		// The hash is already wrong; the signature adds nothing.
		return
	}
	v.r.Signatures.Invalid++
	e.badSig = true
	prob(&v.r.BadSignatures, &v.r.BadSignatureCount, fmt.Sprintf("signature does not verify with key %q", in.KeyID))
}

func (v *Verifier) source(name string) int32 {
	i, ok := v.srcIdx[name]
	if !ok {
		i = int32(len(v.sources))
		v.sources = append(v.sources, name)
		v.srcIdx[name] = i
	}
	return i
}

func (v *Verifier) span(t time.Time) {
	if t.IsZero() {
		return
	}
	if v.r.From.IsZero() || t.Before(v.r.From) {
		v.r.From = t
	}
	if t.After(v.r.To) {
		v.r.To = t
	}
}

// maxListed bounds each list of problems in a report; the counts are
// exact.
const maxListed = 100

func (v *Verifier) problem(list []Problem, p Problem) []Problem {
	if len(list) < maxListed {
		list = append(list, p)
	}
	return list
}

// Report judges the chains and returns the findings. Call it once, after
// the last Add.
func (v *Verifier) Report() *Report {
	r := &v.r
	names := make([]string, 0, len(v.streams))
	for n := range v.streams {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		r.Streams = append(r.Streams, v.judge(v.streams[n]))
	}
	r.OK = r.MalformedCount == 0 && r.UnsealedCount == 0 && r.AlteredCount == 0 && r.BrokenLinkCount == 0 &&
		r.BadSignatureCount == 0 && r.ForkCount == 0 && r.GapCount == 0 && r.Entries > 0
	return r
}

// judge walks one stream in seq order.
func (v *Verifier) judge(s *streamEntries) StreamReport {
	es := s.entries
	slices.SortStableFunc(es, func(a, b entry) int { return cmp.Compare(a.seq, b.seq) })
	sr := StreamReport{Stream: s.name, First: es[0].seq, Last: es[len(es)-1].seq}
	for i := range es {
		if !es[i].dead {
			sr.Entries++
		}
	}
	r := &v.r
	where := func(e *entry) string { return Where{Source: v.sources[e.src], Line: e.line}.String() }
	// One entry per seq: identical copies are harmless duplicates (a
	// re-sent copy may carry a signature the first did not, or lack one),
	// different ones a fork.
	uniq := es[:0:0]
	for i := 0; i < len(es); {
		j := i + 1
		e := es[i]
		for ; j < len(es) && es[j].seq == e.seq; j++ {
			d := es[j]
			if d.hash != e.hash || d.prev != e.prev {
				r.ForkCount++
				sr.Forks++
				r.Forks = v.problem(r.Forks, Problem{Stream: s.name, Seq: e.seq, Where: where(&d),
					Detail: fmt.Sprintf("two different events at one position (the other at %s): the chain was forked", where(&e))})
				continue
			}
			if !d.dead && !e.dead {
				r.Duplicates++
				sr.Duplicates++
			}
			e.signed = e.signed || d.signed
			e.altered = e.altered && d.altered
			e.dead = e.dead && d.dead // delivered after all (replayed)
		}
		uniq = append(uniq, e)
		i = j
	}
	if uniq[0].seq > 1 {
		v.gap(&sr, 1, uniq[0].seq-1)
	}
	// Backwards: an event is proven when a valid signature at or after it
	// reaches it through unbroken links. An altered event does not cut
	// the chain (its claimed hash is still the one the next event links
	// to and the signature covers), it only fails itself.
	covered, signedSeen := false, false
	for i := len(uniq) - 1; i >= 0; i-- {
		e := &uniq[i]
		if e.signed {
			covered, signedSeen = true, true
		}
		switch {
		case e.altered:
		case e.dead:
			sr.DeadLettered++
		case covered:
			sr.Verified++
		case !signedSeen:
			sr.UnsignedTail++
		default:
			// Signed later, but a gap or a broken link cuts it off from
			// that signature.
			sr.Unproven++
		}
		if i == 0 {
			if e.seq == 1 && e.prev != (Hash{}) {
				v.broken(&sr, e, where(e), "the first event of the stream names a previous hash")
			}
			break
		}
		p := &uniq[i-1]
		if p.seq+1 != e.seq {
			v.gap(&sr, p.seq+1, e.seq-1)
			covered = false
		} else if e.prev != p.hash {
			v.broken(&sr, e, where(e), fmt.Sprintf("prev_hash does not match the hash of seq %d: an event was changed, replaced or removed", p.seq))
			covered = false
		}
	}
	r.Verified += sr.Verified
	r.ExplainedGaps += sr.DeadLettered
	r.Unproven += sr.Unproven
	r.UnsignedTail += sr.UnsignedTail
	if sr.UnsignedTail > 0 {
		sr.UnsignedFrom = uniq[len(uniq)-1].seq
		for i := len(uniq) - 1; i >= 0 && !uniq[i].signed; i-- {
			sr.UnsignedFrom = uniq[i].seq
		}
	}
	return sr
}

func (v *Verifier) gap(sr *StreamReport, from, to uint64) {
	v.r.GapCount++
	sr.Gaps = append(sr.Gaps, Range{From: from, To: to})
	v.r.Gaps = v.problem(v.r.Gaps, Problem{Stream: sr.Stream, Seq: from, Detail: fmt.Sprintf("seq %d-%d missing (%d events)", from, to, to-from+1)})
}

func (v *Verifier) broken(sr *StreamReport, e *entry, at, detail string) {
	v.r.BrokenLinkCount++
	sr.BrokenLinks++
	v.r.BrokenLinks = v.problem(v.r.BrokenLinks, Problem{Stream: sr.Stream, Seq: e.seq, Where: at, Detail: detail})
}
