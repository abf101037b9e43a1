package redact

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"sync/atomic"
)

// Matcher decides which member names hold secrets. Nil redacts nothing. It
// is immutable and safe for concurrent use.
//
// Every member name of every event goes through Secret, so the patterns are
// compiled into one Aho-Corasick automaton: a name costs one table step per
// byte, however many patterns there are.
type Matcher struct {
	// class maps a byte to its column in next: 0 for bytes no pattern
	// contains, skipClass for separators (ignored), 1.. for pattern bytes
	// (case-folded).
	class [256]uint8
	// next[state*width+class] is the automaton's transition.
	next   []uint16
	width  int
	accept uint16 // states >= accept are final
	minLen int

	// cache remembers recent verdicts: an audit source repeats the same
	// few hundred member names in every event, and a lookup is cheaper than
	// running the automaton over the name again. Direct-mapped, lock-free
	// and never evicting: a name that finds its slot taken is simply
	// matched again, so hostile input cannot make it cost more than the
	// automaton alone.
	seed  maphash.Seed
	cache *[cacheSlots]atomic.Pointer[verdict]
}

const cacheSlots = 1024

type verdict struct {
	key    string
	secret bool
}

const skipClass = 255

// New compiles patterns (see transformers.RedactConfig for how a name
// matches one). Errors name the bad pattern as redact.keys[i].
func New(keys []string) (*Matcher, error) {
	m := &Matcher{seed: maphash.MakeSeed(), cache: new([cacheSlots]atomic.Pointer[verdict])}
	for _, c := range []byte("_-. ") {
		m.class[c] = skipClass
	}
	patterns, err := m.normalize(keys)
	if err != nil {
		return nil, err
	}
	if err := m.assignClasses(patterns); err != nil {
		return nil, err
	}
	goTo, final := buildTrie(patterns, &m.class)
	if len(goTo) > 1<<16 {
		return nil, fmt.Errorf("redact.keys: patterns too long (%d automaton states)", len(goTo))
	}
	next := m.transitions(goTo, final)
	if final[0] {
		return nil, fmt.Errorf("redact.keys: a pattern matches the empty name")
	}
	m.renumber(next, final)
	return m, nil
}

// normalize turns the keys into the patterns the automaton matches, and
// notes the shortest.
func (m *Matcher) normalize(keys []string) ([][]byte, error) {
	patterns := make([][]byte, 0, len(keys))
	for i, k := range keys {
		p := normalizeKey(nil, []byte(k))
		if len(p) == 0 {
			return nil, fmt.Errorf("redact.keys[%d]: pattern %q is empty once separators are removed", i, k)
		}
		if m.minLen == 0 || len(p) < m.minLen {
			m.minLen = len(p)
		}
		patterns = append(patterns, p)
	}
	return patterns, nil
}

// assignClasses gives each distinct pattern byte a column, the same for
// both cases of a letter, and sets the table's width.
func (m *Matcher) assignClasses(patterns [][]byte) error {
	cols := 1
	for _, p := range patterns {
		for _, c := range p {
			if m.class[c] != 0 {
				continue
			}
			if cols == skipClass {
				return fmt.Errorf("redact.keys: patterns use more than %d distinct characters", skipClass-1)
			}
			m.class[c] = uint8(cols)
			if c >= 'a' && c <= 'z' {
				m.class[c-'a'+'A'] = uint8(cols)
			}
			cols++
		}
	}
	m.width = cols
	return nil
}

// buildTrie is the trie of the patterns over their byte classes: goTo[st]
// maps a class to the next state, and final marks the ends of patterns.
func buildTrie(patterns [][]byte, class *[256]uint8) (goTo []map[uint8]int, final []bool) {
	goTo, final = []map[uint8]int{{}}, []bool{false}
	for _, p := range patterns {
		st := 0
		for _, c := range p {
			cl := class[c]
			nx, ok := goTo[st][cl]
			if !ok {
				nx = len(goTo)
				goTo = append(goTo, map[uint8]int{})
				final = append(final, false)
				goTo[st][cl] = nx
			}
			st = nx
		}
		final[st] = true
	}
	return goTo, final
}

// transitions computes the failure links, breadth first, folded into a
// full transition table; a state is final when one it falls back to is.
func (m *Matcher) transitions(goTo []map[uint8]int, final []bool) []uint16 {
	cols := m.width
	next := make([]uint16, len(goTo)*cols)
	fail := make([]int, len(goTo))
	queue := []int{}
	for cl := 1; cl < cols; cl++ {
		if nx, ok := goTo[0][uint8(cl)]; ok {
			next[cl] = uint16(nx)
			queue = append(queue, nx)
		}
	}
	for len(queue) > 0 {
		st := queue[0]
		queue = queue[1:]
		final[st] = final[st] || final[fail[st]]
		for cl := 1; cl < cols; cl++ {
			if nx, ok := goTo[st][uint8(cl)]; ok {
				fail[nx] = int(next[fail[st]*cols+cl])
				next[st*cols+cl] = uint16(nx)
				queue = append(queue, nx)
			} else {
				next[st*cols+cl] = next[fail[st]*cols+cl]
			}
		}
	}
	return next
}

// renumber sets m.next to next with the states renumbered so that final
// ones come last: Secret then tests finality with one comparison instead
// of a second table.
func (m *Matcher) renumber(next []uint16, final []bool) {
	cols := m.width
	order := make([]int, 0, len(final))
	for st := range final {
		if !final[st] {
			order = append(order, st)
		}
	}
	m.accept = uint16(len(order))
	for st := range final {
		if final[st] {
			order = append(order, st)
		}
	}
	renum := make([]uint16, len(order))
	for newSt, oldSt := range order {
		renum[oldSt] = uint16(newSt)
	}
	m.next = make([]uint16, len(next))
	for oldSt := range final {
		for cl := 0; cl < cols; cl++ {
			m.next[int(renum[oldSt])*cols+cl] = renum[next[oldSt*cols+cl]]
		}
	}
}

// Secret reports whether values under the member name key must be redacted.
func (m *Matcher) Secret(key []byte) bool {
	if m == nil || len(key) < m.minLen {
		return false
	}
	slot := &m.cache[maphash.Bytes(m.seed, key)&(cacheSlots-1)]
	v := slot.Load()
	if v != nil && v.key == string(key) {
		return v.secret
	}
	secret := m.match(key)
	if v == nil && len(key) <= 64 {
		// First come keeps the slot: colliding names never evict each
		// other in turn, so a steady stream allocates nothing.
		slot.CompareAndSwap(nil, &verdict{key: string(key), secret: secret})
	}
	return secret
}

func (m *Matcher) match(key []byte) bool {
	// Qualified names (authorization.k8s.io/decision) are judged by their
	// last segment: the prefix names an owner, not the value's nature.
	if i := bytes.LastIndexByte(key, '/'); i >= 0 {
		key = key[i+1:]
	}
	next, width, accept := m.next, m.width, m.accept
	st := uint16(0)
	for _, c := range key {
		cl := m.class[c]
		if cl == skipClass {
			continue
		}
		st = next[int(st)*width+int(cl)]
		if st >= accept {
			return true
		}
	}
	return false
}

func normalizeKey(dst, key []byte) []byte {
	for _, c := range key {
		switch {
		case c >= 'A' && c <= 'Z':
			dst = append(dst, c+'a'-'A')
		case c == '_' || c == '-' || c == '.' || c == ' ':
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
