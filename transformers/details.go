package transformers

import (
	"encoding/json"
	"slices"
	"unsafe"

	"github.com/auditpipe/auditpipe/transformers/internal/jsonscan"
	"github.com/auditpipe/auditpipe/transformers/internal/jsontree"
)

// Details assembles an event's details object from parts of the payload
// and a few scalars. Build encodes it canonically (sorted member names, so
// the same source event yields byte-identical details through either front
// door) and redacts secrets on the way.
type Details struct {
	// Entries live in place while they fit: Details is a local value in
	// every transformer, built once per event.
	inline [8]detail
	n      int
	extra  []detail
	// reuse are subtrees already encoded with nothing to redact.
	reuse []jsontree.Encoded
}

// Reuse lets Build copy the subtrees c found nothing to redact in, instead
// of encoding them again. c must stay unreleased until Build returns.
func (d *Details) Reuse(c *Canonical) { d.reuse = c.clean }

type detail struct {
	key string
	n   Node // where a value entry came from, to locate its errors
	s   string
	m   map[string]string
	ps  []Pair
	raw []byte // canonical JSON with nothing to redact (Raw)
	str bool
}

// Value adds a member holding a payload subtree; missing or null nodes are
// skipped.
func (d *Details) Value(key string, n Node) {
	if n.Present() {
		d.add(detail{key: key, n: n})
	}
}

// String adds a string member; empty strings are skipped.
func (d *Details) String(key, s string) {
	if s != "" {
		d.add(detail{key: key, s: s, str: true})
	}
}

// Bytes is String for a view into the document (Node.OptStringBytes); it
// must stay valid until Build.
func (d *Details) Bytes(key string, b []byte) {
	if len(b) > 0 {
		d.add(detail{key: key, s: unsafe.String(unsafe.SliceData(b), len(b)), str: true})
	}
}

// Raw adds a member whose value is canonical JSON known to hold nothing to
// redact (Root.Member reports it clean); null is skipped.
func (d *Details) Raw(key string, canonical []byte) {
	if len(canonical) > 0 && !RawNull(canonical) {
		d.add(detail{key: key, raw: canonical})
	}
}

// Map adds an object of strings (unmapped labels, say); empty maps are
// skipped.
func (d *Details) Map(key string, m map[string]string) {
	if len(m) > 0 {
		d.add(detail{key: key, m: m})
	}
}

// Pair is one member of an object of strings, as views into a document.
type Pair struct{ Name, Value []byte }

// Pairs adds an object of strings given as pairs (unmapped labels read in
// one pass); the views must stay valid until Build. Empty lists are
// skipped. Names must be unique.
func (d *Details) Pairs(key string, ps []Pair) {
	if len(ps) > 0 {
		d.add(detail{key: key, ps: ps})
	}
}

// Grow makes room for n more entries: a format adding every member of a
// large object (unmapped members) sizes the entries once.
func (d *Details) Grow(n int) {
	if more := d.n + n - len(d.inline); more > 0 {
		d.extra = slices.Grow(d.extra, more-len(d.extra))
	}
}

func (d *Details) add(e detail) {
	if d.n < len(d.inline) {
		d.inline[d.n] = e
	} else {
		d.extra = append(d.extra, e)
	}
	d.n++
}

func (d *Details) entry(i int) *detail {
	if i < len(d.inline) {
		return &d.inline[i]
	}
	return &d.extra[i-len(d.inline)]
}

// Build encodes the details, or returns nil when there are none. A later
// entry with the same key replaces an earlier one.
func (d *Details) Build(red *Redactor) (json.RawMessage, *Error) {
	if d.n == 0 {
		return nil, nil
	}
	// Sort positions, not the entries themselves (they are large).
	var orderBuf [16]int
	order := orderBuf[:0]
	for i := range d.n {
		order = append(order, i)
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return jsonscan.CompareUTF16([]byte(d.entry(a).key), []byte(d.entry(b).key))
	})
	bp := bufPool.Get().(*[]byte)
	defer putBuf(bp)
	out := (*bp)[:0]
	if d.n > len(d.inline) {
		// Many entries: a format adding a payload's unmapped members,
		// whose details may be most of the payload. Sized once, they
		// cost their size; grown from a pooled buffer, nearly twice that
		// while the last growth copies them.
		if size := d.sizeEstimate(); size > maxPooled {
			out = make([]byte, 0, size+size/8)
		}
	}
	out = append(out, '{')
	for oi, i := range order {
		e := d.entry(i)
		if oi+1 < len(order) && d.entry(order[oi+1]).key == e.key {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = jsontree.AppendString(out, []byte(e.key))
		out = append(out, ':')
		switch {
		case red.Secret([]byte(e.key)):
			out = append(out, `"`+Redacted+`"`...)
		case e.str:
			out = jsontree.AppendString(out, []byte(e.s))
		case e.m != nil:
			out = appendStringMap(out, e.m, red)
		case e.ps != nil:
			out = appendPairs(out, e.ps, red)
		case e.raw != nil:
			out = append(out, e.raw...)
		default:
			var err error
			if out, err = d.appendValue(out, e.n.v, red); err != nil {
				*bp = out[:0]
				return nil, locate(e.n, err)
			}
		}
	}
	out = append(out, '}')
	if cap(out) > maxPooled {
		// Outsized details (a payload's worth): the buffer becomes the
		// event's rather than be copied, which would briefly double them,
		// and the pool keeps what it had.
		return json.RawMessage(out[:len(out):len(out)]), nil
	}
	*bp = out[:0]
	// One exact-size copy: the pooled buffer absorbs the growth.
	return json.RawMessage(append(make([]byte, 0, len(out)), out...)), nil
}

// sizeEstimate is about the size of the encoded details, a little more
// when values need escaping.
func (d *Details) sizeEstimate() int {
	n := 2
	for i := range d.n {
		e := d.entry(i)
		n += len(e.key) + 4
		switch {
		case e.str:
			n += len(e.s)
		case e.m != nil:
			for k, v := range e.m {
				n += len(k) + len(v) + 6
			}
		case e.ps != nil:
			for _, p := range e.ps {
				n += len(p.Name) + len(p.Value) + 6
			}
		case e.raw != nil:
			n += len(e.raw)
		default:
			n += valueSize(e.n.v)
		}
	}
	return n
}

// valueSize is about the size of v's canonical encoding.
func valueSize(v *jsontree.Value) int {
	switch v.Kind() {
	case jsontree.Object:
		n := 2
		v.Visit(func(k []byte, c *jsontree.Value) { n += len(k) + 4 + valueSize(c) })
		return n
	case jsontree.Array:
		n := 2
		for _, c := range v.Elements() {
			n += 1 + valueSize(c)
		}
		return n
	case jsontree.String:
		return len(v.StringBytes()) + 2
	case jsontree.Number:
		return 16 // at most 24, seldom more than a few
	}
	return 5
}

func (d *Details) appendValue(out []byte, v *jsontree.Value, red *Redactor) ([]byte, error) {
	for _, r := range d.reuse {
		if r.V == v {
			return append(out, r.B...), nil
		}
	}
	return jsontree.AppendCanonical(out, v, red.matcher())
}

func appendStringMap(out []byte, m map[string]string, red *Redactor) []byte {
	ps := make([]Pair, 0, len(m))
	for k, v := range m {
		// Views, not copies: appendPairs only reads the bytes.
		ps = append(ps, Pair{Name: unsafe.Slice(unsafe.StringData(k), len(k)), Value: unsafe.Slice(unsafe.StringData(v), len(v))})
	}
	return appendPairs(out, ps, red)
}

// appendPairs encodes an object of strings canonically (sorted names) and
// redacts the values of secret names. It sorts ps in place.
func appendPairs(out []byte, ps []Pair, red *Redactor) []byte {
	slices.SortFunc(ps, func(a, b Pair) int { return jsonscan.CompareUTF16(a.Name, b.Name) })
	out = append(out, '{')
	for i, p := range ps {
		if i > 0 {
			out = append(out, ',')
		}
		out = jsontree.AppendString(out, p.Name)
		out = append(out, ':')
		if red.Secret(p.Name) {
			out = append(out, `"`+Redacted+`"`...)
		} else {
			out = jsontree.AppendString(out, p.Value)
		}
	}
	return append(out, '}')
}

// Options are the settings every built-in format shares.
type Options struct {
	Limits   Limits
	Redactor *Redactor
}

// locate attributes an encoder error to the node it happened under.
func locate(n Node, err error) *Error {
	le := n.Err(ErrValue, "")
	if f, ok := err.(*jsonscan.Failure); ok {
		le.Kind, le.Expected, le.Got, le.Detail = faultKind(f.Fault), f.Expected, f.Got, f.Detail
	} else {
		le.Got, le.Detail = "", err.Error()
	}
	return le
}
