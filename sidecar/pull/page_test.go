package pull

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
)

func TestParsePage(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    int
		wantErr string
	}{
		{"array", `[{"a":1},{"a":2}]`, 2, ""},
		{"empty array", `[]`, 0, ""},
		{"empty body", ``, 0, ""},
		{"null", ` null `, 0, ""},
		{"wrapped", `{"entries":[{"a":1}]}`, 1, ""},
		{"wrapped null", `{"entries":null}`, 0, ""},
		{"object with two members", `{"entries":[],"next":null}`, 0, "2 members"},
		{"wrapped non-array", `{"entries":{"a":1}}`, 0, "expected an array"},
		{"scalar", `42`, 0, "expected a JSON array"},
		{"malformed", `[{"a":1},`, 0, "response body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page, err := parsePage([]byte(tc.body))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(page) != tc.want {
				t.Fatalf("got %d entries, %v; want %d", len(page), err, tc.want)
			}
		})
	}
}

// The key of an entry is the transformer's base id for it: whitespace and
// member order do not matter; an entry that cannot be canonicalized gets a
// raw key that matches no event id.
func TestEntryKeys(t *testing.T) {
	page, err := parsePage([]byte(`[{"b":1,"a":"x"}, { "a" : "x", "b" : 1.0 }, {"a":1,"a":2}]`))
	if err != nil {
		t.Fatal(err)
	}
	want := auditpipe.IDFromCanonical([]byte(`{"a":"x","b":1}`))
	if page[0].key != want || page[1].key != want || !page[0].canonical {
		t.Errorf("keys = %s, %s; want %s", page[0].key, page[1].key, want)
	}
	if page[2].canonical || !strings.HasPrefix(page[2].key, "raw:") {
		t.Errorf("duplicate member names: key %s, canonical %v", page[2].key, page[2].canonical)
	}
}

func keys(ks string) []entry {
	out := make([]entry, len(ks))
	for i, k := range ks {
		out[i] = entry{key: string(k), canonical: true}
	}
	return out
}

// lastState is the watermark after a page of the given keys (one letter
// each, newest first) asked with limit, with totals per key.
func lastState(ks string, limit int, totals map[string]int) state {
	st := state{Version: stateVersion, Limit: limit}
	at := map[rune]int{}
	for _, k := range ks {
		i, ok := at[k]
		if !ok {
			i = len(st.Seen)
			at[k] = i
			st.Seen = append(st.Seen, seen{Key: string(k), Total: totals[string(k)]})
		}
		st.Page = append(st.Page, i)
	}
	return st
}

func TestDiff(t *testing.T) {
	one := func(ks string) map[string]int {
		m := map[string]int{}
		for _, k := range ks {
			m[string(k)]++
		}
		return m
	}
	tests := []struct {
		name      string
		last      string // the last page, newest first; "" = none
		lastLimit int
		totals    map[string]int
		page      string
		limit     int
		wantNew   string // per entry: n new, . seen
		wantOrd   []int  // ordinals of the new entries, page order
		aligned   bool
		ambiguous bool
	}{
		{name: "first page", page: "cba", limit: 5, wantNew: "nnn", wantOrd: []int{0, 0, 0}, aligned: true},
		{name: "nothing new", last: "ba", lastLimit: 5, page: "ba", limit: 5, wantNew: "..", aligned: true},
		{name: "new on top, oldest slid off", last: "cba", lastLimit: 3, page: "dcb", limit: 3, wantNew: "n..", wantOrd: []int{0}, aligned: true},
		{name: "identical copies on a page that is the whole log", last: "ab", lastLimit: 5, totals: map[string]int{"a": 1, "b": 1},
			page: "aaab", limit: 5, wantNew: "nn..", wantOrd: []int{2, 1}, aligned: true},
		{name: "a copy of the content that slid off", last: "ab", lastLimit: 2, totals: map[string]int{"a": 1, "b": 1},
			page: "ba", limit: 2, wantNew: "n.", wantOrd: []int{1}, aligned: true},
		{name: "numbering continues past copies no longer on the page", last: "a", lastLimit: 5, totals: map[string]int{"a": 5},
			page: "aa", limit: 5, wantNew: "n.", wantOrd: []int{5}, aligned: true},
		{name: "run of identical entries: ambiguous", last: "aa", lastLimit: 2, totals: map[string]int{"a": 2},
			page: "aa", limit: 2, wantNew: "..", aligned: true, ambiguous: true},
		{name: "limit raised: older entries below are not new", last: "cb", lastLimit: 2, page: "dcbza", limit: 10, wantNew: "n....", wantOrd: []int{0}, aligned: true},
		{name: "more than a page written: all new", last: "ba", lastLimit: 3, page: "edc", limit: 3, wantNew: "nnn", wantOrd: []int{0, 0, 0}},
		{name: "served in another order: counted", last: "cba", lastLimit: 5, totals: one("cba"), page: "dbca", limit: 5, wantNew: "n...", wantOrd: []int{0}},
		{name: "empty page", last: "a", lastLimit: 5, page: "", limit: 5, wantNew: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			totals := tc.totals
			if totals == nil {
				totals = map[string]int{}
				for _, k := range tc.last {
					totals[string(k)]++
				}
			}
			var last state
			if tc.last != "" {
				last = lastState(tc.last, tc.lastLimit, totals)
			}
			d := diff(keys(tc.page), last, tc.limit)
			var gotNew []byte
			var gotOrd []int
			for _, v := range d.verdicts {
				if v.isNew {
					gotNew = append(gotNew, 'n')
					gotOrd = append(gotOrd, v.ordinal)
				} else {
					gotNew = append(gotNew, '.')
				}
			}
			if string(gotNew) != tc.wantNew || !slices.Equal(gotOrd, tc.wantOrd) || d.aligned != tc.aligned || d.ambiguous != tc.ambiguous {
				t.Fatalf("new %s ordinals %v aligned %v ambiguous %v; want %s %v %v %v",
					gotNew, gotOrd, d.aligned, d.ambiguous, tc.wantNew, tc.wantOrd, tc.aligned, tc.ambiguous)
			}
			// The next watermark lists the page in order.
			for i, at := range d.page {
				if d.seen[at].Key != tc.page[i:i+1] {
					t.Fatalf("next page[%d] = %s, want %c", i, d.seen[at].Key, tc.page[i])
				}
			}
		})
	}
}

// simEntry is one entry of a simulated log.
type simEntry struct {
	at      int64
	content string
}

func (e simEntry) key() string { return strconv.FormatInt(e.at, 10) + "/" + e.content }

// TestSimulatedLogs polls randomly written logs and checks what the rule
// promises. The clock ticks 0 or 1 second per poll, so several polls fall
// in one second; few contents repeat, so identical entries in one second
// are the rule rather than the exception. Pages are served newest first in the order written (yoq: ORDER
// BY id DESC), or, to check the fallback, sorted by time with ties in
// random order (ORDER BY recorded_at DESC).
//
//   - In the order written: when no poll reported a gap, every entry was
//     queued exactly once, and the n-th identical copy got ordinal n.
//   - In the order written, no (content, ordinal) is ever queued twice.
//   - Sorted, the rule degrades (entries of one second trade places at the
//     bottom of the page) but does not fail.
func TestSimulatedLogs(t *testing.T) {
	t.Parallel()
	for _, sorted := range []bool{false, true} {
		for seed := range uint64(200) {
			rng := rand.New(rand.NewPCG(seed, 99))
			limit := 2 + rng.IntN(10)
			sim := simParams{sorted: sorted, limit: limit, maxWrite: 1 + rng.IntN(2*limit), contents: 2 + rng.IntN(6), maxTick: 1}
			if seed%2 == 0 {
				sim.maxWrite = max(1, limit/2)
			}
			simulate(t, rng, sim)
		}
	}
}

// TestSimulatedGapRate counts the gaps flagged when polls keep up (fewer
// than limit/2 entries between polls, spread over up to 10 seconds) with
// a realistic limit and variety of entries: they are false alarms (runs of
// identical entries), and must stay rare.
func TestSimulatedGapRate(t *testing.T) {
	t.Parallel()
	polls, gaps := 0, 0
	for seed := range uint64(100) {
		rng := rand.New(rand.NewPCG(seed, 7))
		limit := 20 + rng.IntN(100)
		p, g := simulate(t, rng, simParams{limit: limit, maxWrite: limit/2 - 1, contents: 50, maxTick: 10})
		polls, gaps = polls+p, gaps+g
	}
	t.Logf("%d gaps in %d polls", gaps, polls)
	if gaps*100 > polls {
		t.Errorf("%d gaps in %d polls that kept up", gaps, polls)
	}
}

type simParams struct {
	sorted          bool
	limit, maxWrite int
	contents        int
	maxTick         int // seconds between polls: 0 to maxTick
}

func simulate(t *testing.T, rng *rand.Rand, sim simParams) (polls, gaps int) {
	t.Helper()
	sorted, limit, maxWrite, contents := sim.sorted, sim.limit, sim.maxWrite, sim.contents
	name := fmt.Sprintf("%+v", sim)
	var log []simEntry
	var st state
	loaded := false
	queued := map[string][]int{} // key -> ordinals queued
	now := int64(1000)
	for range 60 {
		// Entries written since the last poll, at non-decreasing times
		// spread over the interval.
		from := now
		now += int64(rng.IntN(sim.maxTick + 1))
		times := make([]int64, rng.IntN(maxWrite+1))
		for i := range times {
			times[i] = from + int64(rng.IntN(int(now-from)+1))
		}
		slices.Sort(times)
		for _, at := range times {
			log = append(log, simEntry{at, fmt.Sprintf("op%d", rng.IntN(contents))})
		}
		view := slices.Clone(log[max(0, len(log)-limit):])
		if sorted {
			view = slices.Clone(log)
		}
		slices.Reverse(view)
		if sorted {
			rng.Shuffle(len(view), func(i, j int) { view[i], view[j] = view[j], view[i] })
			slices.SortStableFunc(view, func(a, b simEntry) int { return int(b.at - a.at) })
		}
		view = view[:min(limit, len(view))]
		// Keys stand for the content hashes parsePage computes.
		page := make([]entry, len(view))
		for i, e := range view {
			page[i] = entry{key: e.key(), canonical: true}
		}
		d := diff(page, st, limit)
		newest := st.Newest
		for i, v := range d.verdicts {
			if !v.isNew {
				continue
			}
			k := page[i].key
			if !sorted && slices.Contains(queued[k], v.ordinal) {
				t.Fatalf("%s: ordinal %d of %v queued twice", name, v.ordinal, view[i])
			}
			queued[k] = append(queued[k], v.ordinal)
			at := time.Unix(view[i].at, 0)
			if s := &d.seen[d.index[k]]; s.Time.IsZero() {
				s.Time = at
			}
			if at.After(newest) {
				newest = at
			}
		}
		polls++
		if loaded && gapReason(page, d, limit, st.Newest) != "" {
			gaps++
		}
		prune(&d, newest)
		st = state{Version: stateVersion, Newest: newest, Limit: limit, Page: d.page, Seen: d.seen}
		loaded = true
	}
	if sorted {
		return polls, gaps
	}
	want := map[string]int{}
	for _, e := range log {
		want[e.key()]++
	}
	exact := len(queued) == len(want)
	for k, n := range want {
		got := slices.Sorted(slices.Values(queued[k]))
		exact = exact && len(got) == n && (n == 0 || got[n-1] == n-1)
	}
	if !exact && gaps == 0 {
		t.Errorf("%s: the queue differs from the log, and no gap was reported", name)
	}
	return polls, gaps
}

// FuzzParsePage: whatever a server answers, parsing neither panics nor
// yields an entry that is not one JSON value, and diffing the result
// against itself finds nothing new.
func FuzzParsePage(f *testing.F) {
	for _, s := range []string{
		`[{"recorded_at":1,"actor":"local","action":"backup","target":null,"outcome":"ok"}]`,
		`{"entries":[{"a":1},{"a":1}]}`, `[]`, `null`, ``, `[1,"x",null,{"a":{"b":[1e400]}}]`, `{"a":1,"a":2}`, `[{"a":1,"a":2}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		page, err := parsePage(body)
		if err != nil {
			return
		}
		for _, e := range page {
			if !json.Valid(e.raw) || e.key == "" {
				t.Fatalf("entry %q, key %q", e.raw, e.key)
			}
		}
		d := diff(page, state{}, len(page)+1)
		next := state{Version: stateVersion, Limit: len(page) + 1, Page: d.page, Seen: d.seen}
		if again := diff(page, next, len(page)+1); again.newCount != 0 {
			t.Fatalf("the same page twice: %d new", again.newCount)
		}
	})
}

func BenchmarkParsePage(b *testing.B) {
	body := yoqPage(500)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := parsePage(body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkDiff is the watermark's cost per poll: a full page of 500,
// 50 of them new.
func BenchmarkDiff(b *testing.B) {
	all, err := parsePage(yoqPage(550))
	if err != nil {
		b.Fatal(err)
	}
	d := diff(all[50:], state{}, 500)
	last := state{Version: stateVersion, Limit: 500, Page: d.page, Seen: d.seen}
	page := all[:500]
	b.ReportAllocs()
	for b.Loop() {
		if d := diff(page, last, 500); d.newCount != 50 {
			b.Fatalf("%d new", d.newCount)
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "entries/s")
}

// yoqPage is a newest-first page of n distinct yoq entries.
func yoqPage(n int) []byte {
	b := []byte("[")
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"recorded_at":%d,"actor":"api-token","action":"secret_set","target":"key-%d","outcome":"ok"}`, 1767312000+n-i, n-i)
	}
	return append(b, ']')
}
