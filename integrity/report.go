package integrity

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Report is what a Verifier found: Teabar's `audit verify` report, for
// any destination.
type Report struct {
	// OK is true when every event read is sealed, unaltered, linked to
	// its predecessor, without forks or gaps, and every signature verifies
	// with a given key. An unsigned tail does not make it false.
	OK bool `json:"ok"`
	// Entries counts the events (and malformed inputs) read; Verified
	// those proven by a valid signature through an unbroken chain.
	Entries  int `json:"entries"`
	Verified int `json:"verified"`
	// UnsignedTail counts events after the last signature of their
	// stream: intact as far as the chain shows, but not yet proven (a
	// batch still in flight, or a copy cut short).
	UnsignedTail int `json:"unsigned_tail"`
	// Unproven counts events that match their hashes but that a gap or a
	// broken link cuts off from the signature after them.
	Unproven   int `json:"unproven"`
	Duplicates int `json:"duplicates"`
	// DeadLetters counts the sealed events read from a dead-letter store;
	// ExplainedGaps the positions missing at the destination that they
	// account for (an output rejected them for good).
	DeadLetters   int              `json:"dead_letters"`
	ExplainedGaps int              `json:"explained_gaps"`
	Streams       []StreamReport   `json:"streams"`
	Signatures    SignatureSummary `json:"signatures"`
	From          time.Time        `json:"from,omitzero"`
	To            time.Time        `json:"to,omitzero"`

	// Failures, each counted exactly and listed up to 100.
	AlteredCount      int       `json:"altered_count"`
	Altered           []Problem `json:"altered,omitempty"`
	BrokenLinkCount   int       `json:"broken_link_count"`
	BrokenLinks       []Problem `json:"broken_links,omitempty"`
	GapCount          int       `json:"gap_count"`
	Gaps              []Problem `json:"gaps,omitempty"`
	ForkCount         int       `json:"fork_count"`
	Forks             []Problem `json:"forks,omitempty"`
	BadSignatureCount int       `json:"bad_signature_count"`
	BadSignatures     []Problem `json:"bad_signatures,omitempty"`
	UnsealedCount     int       `json:"unsealed_count"`
	Unsealed          []Problem `json:"unsealed,omitempty"`
	MalformedCount    int       `json:"malformed_count"`
	Malformed         []Problem `json:"malformed,omitempty"`
}

// SignatureSummary counts signatures by verdict and key.
type SignatureSummary struct {
	Valid   int `json:"valid"`
	Invalid int `json:"invalid"`
	Unknown int `json:"unknown_key"`
	// ByKey counts valid signatures per given key id (zero for a key
	// that signed nothing).
	ByKey       map[string]int `json:"by_key"`
	UnknownKeys map[string]int `json:"unknown_keys,omitempty"`
}

// StreamReport is one chain's summary.
type StreamReport struct {
	Stream       string  `json:"stream"`
	Entries      int     `json:"entries"`
	Verified     int     `json:"verified"`
	First        uint64  `json:"first_seq"`
	Last         uint64  `json:"last_seq"`
	Duplicates   int     `json:"duplicates"`
	Forks        int     `json:"forks"`
	BrokenLinks  int     `json:"broken_links"`
	Gaps         []Range `json:"gaps,omitempty"`
	UnsignedTail int     `json:"unsigned_tail"`
	UnsignedFrom uint64  `json:"unsigned_from_seq,omitempty"`
	Unproven     int     `json:"unproven"`
	DeadLettered int     `json:"dead_lettered"`
}

// Range is an inclusive range of seqs.
type Range struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// Problem is one finding.
type Problem struct {
	Stream string `json:"stream,omitempty"`
	Seq    uint64 `json:"seq,omitempty"`
	Where  string `json:"where,omitempty"`
	Detail string `json:"detail"`
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Stream != "" {
		fmt.Fprintf(&b, "%s seq %d", p.Stream, p.Seq)
	}
	switch {
	case p.Where != "" && b.Len() > 0:
		fmt.Fprintf(&b, " (%s)", p.Where)
	case p.Where != "":
		b.WriteString(p.Where)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(p.Detail)
	return b.String()
}

// WriteText writes the report for people, in the order Teabar's verify
// prints it: entries, chain integrity, signatures, gaps.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	verdict := "VERIFIED"
	if !r.OK {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "Audit log verification: %s\n", verdict)
	fmt.Fprintf(&b, "  Entries:          %d read, %d verified", r.Entries, r.Verified)
	if r.UnsignedTail > 0 {
		fmt.Fprintf(&b, ", %d in an unsigned tail", r.UnsignedTail)
	}
	if r.Unproven > 0 {
		fmt.Fprintf(&b, ", %d cut off from their signature by a gap or broken link", r.Unproven)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  Streams:          %d\n", len(r.Streams))
	chain := "intact"
	if r.AlteredCount+r.BrokenLinkCount+r.ForkCount > 0 {
		chain = fmt.Sprintf("BROKEN (%d altered, %d broken links, %d forks)", r.AlteredCount, r.BrokenLinkCount, r.ForkCount)
	}
	fmt.Fprintf(&b, "  Chain integrity:  %s\n", chain)
	keys := make([]string, 0, len(r.Signatures.ByKey))
	for k := range r.Signatures.ByKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Fprintf(&b, "  Signatures:       %d valid, %d invalid, %d by unknown keys (%d keys given)\n",
		r.Signatures.Valid, r.Signatures.Invalid, r.Signatures.Unknown, len(keys))
	for _, k := range keys {
		fmt.Fprintf(&b, "    %s: %d\n", k, r.Signatures.ByKey[k])
	}
	fmt.Fprintf(&b, "  Gaps:             %d", r.GapCount)
	if r.ExplainedGaps > 0 {
		fmt.Fprintf(&b, " (and %d positions explained by the dead-letter store)", r.ExplainedGaps)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  Duplicates:       %d (identical re-deliveries, harmless)\n", r.Duplicates)
	fmt.Fprintf(&b, "  Forks:            %d\n", r.ForkCount)
	if !r.From.IsZero() {
		fmt.Fprintf(&b, "  Time range:       %s to %s\n", r.From.UTC().Format(time.RFC3339), r.To.UTC().Format(time.RFC3339))
	}
	for _, s := range r.Streams {
		fmt.Fprintf(&b, "  Stream %s: seq %d-%d, %d entries, %d verified", s.Stream, s.First, s.Last, s.Entries, s.Verified)
		if s.UnsignedTail > 0 {
			fmt.Fprintf(&b, ", unsigned tail from seq %d (%d events)", s.UnsignedFrom, s.UnsignedTail)
		}
		b.WriteString("\n")
	}
	section := func(title string, n int, ps []Problem) {
		if n == 0 {
			return
		}
		fmt.Fprintf(&b, "%s (%d):\n", title, n)
		for _, p := range ps {
			fmt.Fprintf(&b, "  %s\n", p)
		}
		if n > len(ps) {
			fmt.Fprintf(&b, "  ... and %d more\n", n-len(ps))
		}
	}
	section("Altered events", r.AlteredCount, r.Altered)
	section("Broken links", r.BrokenLinkCount, r.BrokenLinks)
	section("Gaps", r.GapCount, r.Gaps)
	section("Forks", r.ForkCount, r.Forks)
	section("Bad signatures", r.BadSignatureCount, r.BadSignatures)
	section("Events without integrity", r.UnsealedCount, r.Unsealed)
	section("Unreadable input", r.MalformedCount, r.Malformed)
	_, err := io.WriteString(w, b.String())
	return err
}
