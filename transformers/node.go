package transformers

import (
	"math"
	"strconv"
	"time"

	"github.com/valyala/fastjson"
)

// Node is a position in a decoded payload: a value plus enough context to
// name it in an error. The path is only built when an error needs it: the
// last few steps are kept as segments, so navigating a few levels down
// allocates nothing on the happy path.
type Node struct {
	v    *fastjson.Value
	base string // JSONPath of an ancestor; "" for the root ($)
	// The steps below base: a member name, or an index when idxs[i] >= 0.
	// Kept in two arrays and small integers because nodes are copied on
	// every step down a payload: the smaller, the cheaper.
	keys   [lazySegs]string
	idxs   [lazySegs]int32
	nsegs  uint8
	item   int32 // batch item index the node belongs to, or -1
	line   int32 // NDJSON line, or 0
	format string
}

// lazySegs is how many steps a Node keeps unbuilt before it materialises
// its ancestor's path. Six covers the fields transformers read
// ($.alerts[3].labels.gvk is four), so a path string is built only for an
// error: at three, Alertmanager payloads built one per field read, a fifth
// of their transform time.
const lazySegs = 6

// NewNode wraps v as a root node of format.
func NewNode(format string, v *fastjson.Value) Node {
	return Node{v: v, item: -1, format: format}
}

// child is the node one step (a member name, or an index when seg.idx >= 0)
// below n, holding v.
func (n Node) child(seg pathSeg, v *fastjson.Value) Node {
	c := n
	c.v = v
	if c.nsegs == lazySegs {
		c.base, c.nsegs = n.Path(), 0
	}
	c.keys[c.nsegs], c.idxs[c.nsegs] = seg.key, int32(seg.idx)
	c.nsegs++
	return c
}

// Value is the underlying fastjson value; nil when the node is missing.
func (n Node) Value() *fastjson.Value { return n.v }

// Format is the decoder the node's errors are attributed to.
func (n Node) Format() string { return n.format }

// WithFormat returns n attributed to another format (auto hands documents
// to the format it detected).
func (n Node) WithFormat(f string) Node { n.format = f; return n }

// Item is the batch item index of the node, or -1.
func (n Node) Item() int { return int(n.item) }

// Line is the NDJSON line of the node, or 0.
func (n Node) Line() int { return int(n.line) }

// AsItem marks n as batch item i: errors under it report the index.
func (n Node) AsItem(i int) Node { n.item = int32(i); return n }

// Path is the JSONPath of the node ($ for a root), shortened around an
// ellipsis past MaxPathLength bytes (see Error.Path).
func (n Node) Path() string {
	p := n.base
	if p == "" {
		p = "$"
	}
	for i := range n.nsegs {
		if n.idxs[i] >= 0 {
			p = appendPathIndex(p, int(n.idxs[i]))
		} else {
			p = appendPathKey(p, n.keys[i])
		}
	}
	return boundPath(p)
}

// Exists reports whether the node is present (null counts as present).
func (n Node) Exists() bool { return n.v != nil }

// Present reports whether the node is present and not null.
func (n Node) Present() bool { return n.v != nil && n.v.Type() != fastjson.TypeNull }

// Kind names the JSON kind of the node, for error messages.
func (n Node) Kind() string {
	if n.v == nil {
		return "nothing"
	}
	switch n.v.Type() {
	case fastjson.TypeObject:
		return "object"
	case fastjson.TypeArray:
		return "array"
	case fastjson.TypeString:
		return "string"
	case fastjson.TypeNumber:
		return "number"
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return "boolean"
	default:
		return "null"
	}
}

// IsObject reports whether the node is a JSON object.
func (n Node) IsObject() bool { return n.v != nil && n.v.Type() == fastjson.TypeObject }

// IsArray reports whether the node is a JSON array.
func (n Node) IsArray() bool { return n.v != nil && n.v.Type() == fastjson.TypeArray }

// IsString reports whether the node is a JSON string.
func (n Node) IsString() bool { return n.v != nil && n.v.Type() == fastjson.TypeString }

// Get returns member key of an object node; a missing node otherwise.
func (n Node) Get(key string) Node {
	var v *fastjson.Value
	if n.v != nil && n.v.Type() == fastjson.TypeObject {
		v = n.v.Get(key)
	}
	return n.child(pathSeg{key: key, idx: -1}, v)
}

// Len is the number of elements of an array node, else 0.
func (n Node) Len() int {
	if !n.IsArray() {
		return 0
	}
	a, _ := n.v.Array()
	return len(a)
}

// NumMembers is the number of members of an object node, else 0.
func (n Node) NumMembers() int {
	if !n.IsObject() {
		return 0
	}
	o, _ := n.v.Object()
	return o.Len()
}

// Index returns element i of an array node.
func (n Node) Index(i int) Node {
	var v *fastjson.Value
	if n.IsArray() {
		if a, _ := n.v.Array(); i >= 0 && i < len(a) {
			v = a[i]
		}
	}
	return n.child(pathSeg{idx: i}, v)
}

// Members calls f for each member of an object node, in payload order.
func (n Node) Members(f func(key string, v Node)) {
	if !n.IsObject() {
		return
	}
	o, _ := n.v.Object()
	o.Visit(func(k []byte, v *fastjson.Value) {
		key := string(k)
		f(key, n.child(pathSeg{key: key, idx: -1}, v))
	})
}

// OptStrings reads several optional string members of an object node in
// one pass over it: dst[i] is member names[i] as a view valid while the
// document is open, nil when missing or null. The first member named that
// is neither a string nor null is an error at its path, as OptStringBytes
// gives it. A node that is not an object reads as empty; callers check
// the kind themselves. At most 64 names. It is Get and OptStringBytes for
// hot paths: Get searches the object and copies a Node for every member
// read.
func (n Node) OptStrings(names []string, dst [][]byte) *Error {
	if !n.IsObject() {
		return nil
	}
	var seen uint64 // the first of equal names counts, as for Get
	bad := -1
	o, _ := n.v.Object()
	o.Visit(func(k []byte, v *fastjson.Value) {
		for i, name := range names {
			if string(k) != name || seen&(1<<i) != 0 {
				continue
			}
			seen |= 1 << i
			switch v.Type() {
			case fastjson.TypeString:
				dst[i], _ = v.StringBytes()
			case fastjson.TypeNull:
			default:
				if bad < 0 || i < bad {
					bad = i // reported in names' order, as reading one by one would
				}
			}
			return
		}
	})
	if bad >= 0 {
		_, err := n.Get(names[bad]).OptStringBytes()
		return err
	}
	return nil
}

// StringPairs appends the members of an object of strings (labels,
// annotations) to dst, as views valid while the document is open. Missing
// or null is empty, and so is a member whose value is "" or null: label
// systems treat an empty label as an absent one. A duplicate name is
// refused, as the canonical encoder refuses it, so that no two readers of
// a payload can disagree about it. It reads the object in one pass and
// builds a Node only for an error.
func (n Node) StringPairs(dst []Pair) ([]Pair, *Error) {
	if !n.Present() {
		return dst, nil
	}
	if !n.IsObject() {
		return dst, n.Err(ErrType, "object of strings or null")
	}
	start := len(dst)
	var nameBuf [24][]byte
	names := nameSet{names: nameBuf[:0]} // empty values included
	var bad []byte
	var badKind error
	o, _ := n.v.Object()
	o.Visit(func(k []byte, v *fastjson.Value) {
		if bad != nil {
			return
		}
		dup := names.add(k)
		switch {
		case dup:
			bad, badKind = k, ErrValue
		case v.Type() == fastjson.TypeString:
			if s, _ := v.StringBytes(); len(s) > 0 {
				dst = append(dst, Pair{Name: k, Value: s})
			}
		case v.Type() != fastjson.TypeNull:
			bad, badKind = k, ErrType
		}
	})
	if bad == nil {
		return dst, nil
	}
	at := n.child(pathSeg{key: string(bad), idx: -1}, nil)
	if badKind == ErrValue {
		return dst[:start], at.Errf(ErrValue, "unique names", "duplicate name")
	}
	at.v = n.v.Get(string(bad))
	return dst[:start], at.Err(ErrType, "string or null")
}

// nameSet finds repeated member names: a scan of the names seen while
// they fit the caller's buffer, a set past that. A 64-bit filter on each
// name's length and end bytes spares most scans: the names of one object
// rarely collide in it. Names are views, valid while the set is used.
type nameSet struct {
	filter uint64
	names  [][]byte
	many   map[string]struct{}
}

// add records k and reports whether it was seen before.
func (s *nameSet) add(k []byte) (dup bool) {
	if s.many != nil {
		_, dup = s.many[string(k)]
		s.many[string(k)] = struct{}{}
		return dup
	}
	h := uint(len(k))
	if len(k) > 0 {
		h = h*31 + uint(k[0])*7 + uint(k[len(k)-1])
	}
	if bit := uint64(1) << (h & 63); s.filter&bit == 0 {
		s.filter |= bit
	} else {
		for _, seen := range s.names {
			dup = dup || string(seen) == string(k)
		}
	}
	if len(s.names) == cap(s.names) {
		s.many = make(map[string]struct{}, 2*len(s.names)+1)
		for _, seen := range s.names {
			s.many[string(seen)] = struct{}{}
		}
		s.many[string(k)] = struct{}{}
		return dup
	}
	s.names = s.names[:len(s.names)+1] // within the caller's buffer
	s.names[len(s.names)-1] = k
	return dup
}

// Err builds an error located at n.
func (n Node) Err(kind error, expected string) *Error {
	return &Error{Format: n.format, Item: int(n.item), Line: int(n.line), Path: n.Path(), Kind: kind, Expected: expected, Got: n.Kind()}
}

// Errf builds an error located at n with a free-text detail.
func (n Node) Errf(kind error, expected, detail string) *Error {
	e := n.Err(kind, expected)
	e.Detail = detail
	return e
}

func (n Node) typeErr(expected string) *Error {
	if n.v == nil {
		return n.Err(ErrMissing, expected)
	}
	return n.Err(ErrType, expected)
}

// Object returns n if it is an object, else a typed error.
func (n Node) Object() (Node, *Error) {
	if !n.IsObject() {
		return n, n.typeErr("object")
	}
	return n, nil
}

// String returns a required, non-empty string.
func (n Node) String() (string, *Error) {
	if !n.IsString() {
		return "", n.typeErr("string")
	}
	s := n.str()
	if s == "" {
		return "", n.Err(ErrValue, "non-empty string")
	}
	return s, nil
}

// OptString returns a string that may be missing or null ("" then).
func (n Node) OptString() (string, *Error) {
	if !n.Present() {
		return "", nil
	}
	if !n.IsString() {
		return "", n.Err(ErrType, "string or null")
	}
	return n.str(), nil
}

// Text returns a scalar as text: strings as they are, numbers in their JSON
// spelling, booleans as true/false; missing or null as "". Objects and
// arrays are an error. Apps are loose about ids and labels; this is lenient
// where leniency loses nothing.
func (n Node) Text() (string, *Error) {
	if !n.Present() {
		return "", nil
	}
	switch n.v.Type() {
	case fastjson.TypeString:
		return n.str(), nil
	case fastjson.TypeNumber:
		return string(n.v.MarshalTo(nil)), nil
	case fastjson.TypeTrue:
		return "true", nil
	case fastjson.TypeFalse:
		return "false", nil
	}
	return "", n.Err(ErrType, "string, number or boolean")
}

// StringBytes is String without the copy: the bytes stay valid while the
// document is open. Hot paths gather several fields into one string.
func (n Node) StringBytes() ([]byte, *Error) {
	if !n.IsString() {
		return nil, n.typeErr("string")
	}
	b, _ := n.v.StringBytes()
	if len(b) == 0 {
		return nil, n.Err(ErrValue, "non-empty string")
	}
	return b, nil
}

// OptStringBytes is OptString without the copy (see StringBytes).
func (n Node) OptStringBytes() ([]byte, *Error) {
	if !n.Present() {
		return nil, nil
	}
	if !n.IsString() {
		return nil, n.Err(ErrType, "string or null")
	}
	b, _ := n.v.StringBytes()
	return b, nil
}

// AppendText is Text appending to dst instead of allocating.
func (n Node) AppendText(dst []byte) ([]byte, *Error) {
	if !n.Present() {
		return dst, nil
	}
	switch n.v.Type() {
	case fastjson.TypeString:
		b, _ := n.v.StringBytes()
		return append(dst, b...), nil
	case fastjson.TypeNumber:
		return n.v.MarshalTo(dst), nil
	case fastjson.TypeTrue:
		return append(dst, "true"...), nil
	case fastjson.TypeFalse:
		return append(dst, "false"...), nil
	}
	return dst, n.Err(ErrType, "string, number or boolean")
}

func (n Node) str() string {
	b, _ := n.v.StringBytes()
	return string(b)
}

// Number returns a required number.
func (n Node) Number() (float64, *Error) {
	if n.v == nil || n.v.Type() != fastjson.TypeNumber {
		return 0, n.typeErr("number")
	}
	f, err := n.v.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, n.Err(ErrValue, "finite number")
	}
	return f, nil
}

// Int returns a required integer.
func (n Node) Int() (int64, *Error) {
	if n.v == nil || n.v.Type() != fastjson.TypeNumber {
		return 0, n.typeErr("integer")
	}
	i, err := n.v.Int64()
	if err != nil {
		f, ferr := n.v.Float64()
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return 0, n.Err(ErrValue, "integer")
		}
		i = int64(f)
	}
	return i, nil
}

// Bool returns an optional boolean (missing or null is false).
func (n Node) Bool() (bool, *Error) {
	if !n.Present() {
		return false, nil
	}
	switch n.v.Type() {
	case fastjson.TypeTrue:
		return true, nil
	case fastjson.TypeFalse:
		return false, nil
	}
	return false, n.Err(ErrType, "boolean")
}

// Time reads a required timestamp given as an RFC 3339 string, or as a number
// of units since the Unix epoch (unit = time.Second, time.Millisecond...).
func (n Node) Time(unit time.Duration) (time.Time, *Error) {
	t, err := n.anyTime(unit)
	if err == nil && (t.Year() < 1 || t.Year() > 9999) {
		// The schema's bound (Event.Validate; JSON cannot encode other
		// years, and such a value is a unit mistake anyway): reported
		// here, at the field, for every transformer, rather than later as
		// an invalid event at the item.
		return time.Time{}, n.Err(ErrValue, "a timestamp between the years 1 and 9999")
	}
	return t, err
}

func (n Node) anyTime(unit time.Duration) (time.Time, *Error) {
	if n.v != nil && n.v.Type() == fastjson.TypeNumber {
		if i, err := n.v.Int64(); err == nil {
			return epoch(i, unit), nil
		}
		f, err := n.Number()
		if err != nil {
			return time.Time{}, err
		}
		if math.Abs(f) > 1e18 {
			return time.Time{}, n.Err(ErrValue, "a timestamp in range")
		}
		// Split whole and fractional units: f*unit would lose the
		// sub-unit digits to float rounding at today's epoch values.
		whole := math.Floor(f)
		frac := int64(math.Round((f - whole) * float64(unit)))
		return epoch(int64(whole), unit).Add(time.Duration(frac)), nil
	}
	if n.IsString() {
		s := n.str()
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			// Numeric strings are common in loosely-typed apps.
			if i, ierr := strconv.ParseInt(s, 10, 64); ierr == nil {
				return epoch(i, unit), nil
			}
			return time.Time{}, n.Errf(ErrValue, "RFC 3339 timestamp or epoch "+unitName(unit), "unparseable time")
		}
		return t.UTC(), nil
	}
	return time.Time{}, n.typeErr("RFC 3339 timestamp or epoch " + unitName(unit))
}

func epoch(i int64, unit time.Duration) time.Time {
	switch unit {
	case time.Second:
		return time.Unix(i, 0).UTC()
	case time.Millisecond:
		return time.UnixMilli(i).UTC()
	case time.Microsecond:
		return time.UnixMicro(i).UTC()
	default:
		return time.Unix(0, i*int64(unit)).UTC()
	}
}

func unitName(unit time.Duration) string {
	switch unit {
	case time.Second:
		return "seconds"
	case time.Millisecond:
		return "milliseconds"
	case time.Microsecond:
		return "microseconds"
	}
	return "nanoseconds"
}
