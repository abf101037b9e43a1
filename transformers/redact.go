package transformers

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"sync/atomic"
)

// DefaultRedactKeys are the key patterns whose values are replaced by
// Redacted wherever they appear in an event's details.
var defaultRedactKeys = []string{"password", "passwd", "secret", "token", "api_key", "authorization", "private_key", "cookie"}

// DefaultRedactKeys returns the built-in key patterns.
func DefaultRedactKeys() []string { return append([]string(nil), defaultRedactKeys...) }

// Redacted replaces every redacted value.
const Redacted = "[REDACTED]"

// RedactConfig configures redaction. It is shared by the sidecar YAML
// (`redact:`) and the Fluent Bit plugin (`Redact_Keys`).
type RedactConfig struct {
	// Keys are patterns matched against object member names anywhere in
	// the details: a name matches when, lowercased and with '_', '-', '.'
	// and spaces removed, it contains the pattern treated the same way
	// (so "api_key" matches apiKey, X-Api-Key and stripe_api_key). A
	// qualified name such as authorization.k8s.io/decision is judged by
	// its part after the last '/'. Default:
	// password, passwd, secret, token, api_key, authorization, private_key,
	// cookie.
	Keys []string `yaml:"keys"`
	// AddKeys extends the default list instead of replacing it.
	AddKeys []string `yaml:"add_keys"`
}

// Redactor decides which member names hold secrets. The zero value and nil
// redact nothing. It is immutable and safe for concurrent use.
//
// Every member name of every event goes through Secret, so the patterns are
// compiled into one Aho-Corasick automaton: a name costs one table step per
// byte, however many patterns there are.
type Redactor struct {
	// class maps a byte to its column in next: 0 for bytes no pattern
	// contains, skip for separators (ignored), 1.. for pattern bytes
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

// NewRedactor compiles cfg; empty Keys means the defaults.
func NewRedactor(cfg RedactConfig) (*Redactor, error) {
	keys := cfg.Keys
	if len(keys) == 0 {
		keys = defaultRedactKeys
	}
	keys = append(append([]string(nil), keys...), cfg.AddKeys...)
	var patterns [][]byte
	r := &Redactor{seed: maphash.MakeSeed(), cache: new([cacheSlots]atomic.Pointer[verdict])}
	for _, c := range []byte("_-. ") {
		r.class[c] = skipClass
	}
	for i, k := range keys {
		p := normalizeKey(nil, []byte(k))
		if len(p) == 0 {
			return nil, fmt.Errorf("redact.keys[%d]: pattern %q is empty once separators are removed", i, k)
		}
		if r.minLen == 0 || len(p) < r.minLen {
			r.minLen = len(p)
		}
		patterns = append(patterns, p)
	}
	// Byte classes: one column per distinct pattern byte, both cases.
	cols := 1
	for _, p := range patterns {
		for _, c := range p {
			if r.class[c] == 0 {
				if cols == skipClass {
					return nil, fmt.Errorf("redact.keys: patterns use more than %d distinct characters", skipClass-1)
				}
				r.class[c] = uint8(cols)
				if c >= 'a' && c <= 'z' {
					r.class[c-'a'+'A'] = uint8(cols)
				}
				cols++
			}
		}
	}
	r.width = cols
	// Trie.
	goTo := []map[uint8]int{{}}
	final := []bool{false}
	for _, p := range patterns {
		st := 0
		for _, c := range p {
			cl := r.class[c]
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
	if len(goTo) > 1<<16 {
		return nil, fmt.Errorf("redact.keys: patterns too long (%d automaton states)", len(goTo))
	}
	// Failure links, breadth first, folded into a full transition table.
	r.next = make([]uint16, len(goTo)*cols)
	fail := make([]int, len(goTo))
	queue := []int{}
	for cl := 1; cl < cols; cl++ {
		if nx, ok := goTo[0][uint8(cl)]; ok {
			r.next[cl] = uint16(nx)
			queue = append(queue, nx)
		}
	}
	for len(queue) > 0 {
		st := queue[0]
		queue = queue[1:]
		final[st] = final[st] || final[fail[st]]
		for cl := 1; cl < cols; cl++ {
			if nx, ok := goTo[st][uint8(cl)]; ok {
				fail[nx] = int(r.next[fail[st]*cols+cl])
				r.next[st*cols+cl] = uint16(nx)
				queue = append(queue, nx)
			} else {
				r.next[st*cols+cl] = r.next[fail[st]*cols+cl]
			}
		}
	}
	// Renumber the states so that final ones come last: Secret then tests
	// finality with one comparison instead of a second table.
	order := make([]int, 0, len(final))
	for st := range final {
		if !final[st] {
			order = append(order, st)
		}
	}
	r.accept = uint16(len(order))
	for st := range final {
		if final[st] {
			order = append(order, st)
		}
	}
	if final[0] {
		return nil, fmt.Errorf("redact.keys: a pattern matches the empty name")
	}
	renum := make([]uint16, len(order))
	for newSt, oldSt := range order {
		renum[oldSt] = uint16(newSt)
	}
	next := make([]uint16, len(r.next))
	for oldSt := range final {
		for cl := 0; cl < cols; cl++ {
			next[int(renum[oldSt])*cols+cl] = renum[r.next[oldSt*cols+cl]]
		}
	}
	r.next = next
	return r, nil
}

// Secret reports whether values under the member name key must be redacted.
func (r *Redactor) Secret(key []byte) bool {
	if r == nil || len(key) < r.minLen {
		return false
	}
	slot := &r.cache[maphash.Bytes(r.seed, key)&(cacheSlots-1)]
	v := slot.Load()
	if v != nil && v.key == string(key) {
		return v.secret
	}
	secret := r.match(key)
	if v == nil && len(key) <= 64 {
		// First come keeps the slot: colliding names never evict each
		// other in turn, so a steady stream allocates nothing.
		slot.CompareAndSwap(nil, &verdict{key: string(key), secret: secret})
	}
	return secret
}

func (r *Redactor) match(key []byte) bool {
	// Qualified names (authorization.k8s.io/decision) are judged by their
	// last segment: the prefix names an owner, not the value's nature.
	if i := bytes.LastIndexByte(key, '/'); i >= 0 {
		key = key[i+1:]
	}
	next, width, accept := r.next, r.width, r.accept
	st := uint16(0)
	for _, c := range key {
		cl := r.class[c]
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
