package transformers

import (
	"math"
	"strconv"
	"time"

	"github.com/auditpipe/auditpipe/transformers/internal/jsonscan"
	"github.com/auditpipe/auditpipe/transformers/internal/jsontree"
)

// Node is a position in a decoded payload: a value plus enough context to
// name it in an error. The path is only built when an error needs it: the
// last few steps are kept as segments, so navigating a few levels down
// allocates nothing on the happy path.
type Node struct {
	v    *jsontree.Value
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

// newNode wraps v as a root node of format.
func newNode(format string, v *jsontree.Value) Node {
	return Node{v: v, item: -1, format: format}
}

// child is the node one step (a member name, or an index when seg.idx >= 0)
// below n, holding v.
func (n Node) child(seg pathSeg, v *jsontree.Value) Node {
	c := n
	c.v = v
	if c.nsegs == lazySegs {
		c.base, c.nsegs = n.Path(), 0
	}
	c.keys[c.nsegs], c.idxs[c.nsegs] = seg.key, int32(seg.idx)
	c.nsegs++
	return c
}

// Same reports whether n and o are the same value of a document (an item
// that is its whole root, say), wherever they were reached from.
func (n Node) Same(o Node) bool { return n.v == o.v }

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
func (n Node) Present() bool { return n.v != nil && n.v.Kind() != jsontree.Null }

// Kind names the JSON kind of the node, for error messages.
func (n Node) Kind() string {
	if n.v == nil {
		return "nothing"
	}
	switch n.v.Kind() {
	case jsontree.Object:
		return "object"
	case jsontree.Array:
		return "array"
	case jsontree.String:
		return "string"
	case jsontree.Number:
		return "number"
	case jsontree.True, jsontree.False:
		return "boolean"
	default:
		return "null"
	}
}

// IsObject reports whether the node is a JSON object.
func (n Node) IsObject() bool { return n.v != nil && n.v.Kind() == jsontree.Object }

// IsArray reports whether the node is a JSON array.
func (n Node) IsArray() bool { return n.v != nil && n.v.Kind() == jsontree.Array }

// IsString reports whether the node is a JSON string.
func (n Node) IsString() bool { return n.v != nil && n.v.Kind() == jsontree.String }

// Get returns member key of an object node; a missing node otherwise.
func (n Node) Get(key string) Node {
	var v *jsontree.Value
	if n.v != nil && n.v.Kind() == jsontree.Object {
		v = n.v.Get(key)
	}
	return n.child(pathSeg{key: key, idx: -1}, v)
}

// Len is the number of elements of an array node, else 0.
func (n Node) Len() int {
	if !n.IsArray() {
		return 0
	}
	return len(n.v.Elements())
}

// NumMembers is the number of members of an object node, else 0.
func (n Node) NumMembers() int {
	if !n.IsObject() {
		return 0
	}
	return n.v.NumMembers()
}

// Index returns element i of an array node.
func (n Node) Index(i int) Node {
	var v *jsontree.Value
	if n.IsArray() {
		if a := n.v.Elements(); i >= 0 && i < len(a) {
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
	n.v.Visit(func(k []byte, v *jsontree.Value) {
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
	n.v.Visit(func(k []byte, v *jsontree.Value) {
		for i, name := range names {
			if string(k) != name || seen&(1<<i) != 0 {
				continue
			}
			seen |= 1 << i
			switch v.Kind() {
			case jsontree.String:
				dst[i] = v.StringBytes()
			case jsontree.Null:
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
	names := jsonscan.NewNameSet(nameBuf[:]) // empty values included
	var bad []byte
	var badKind error
	n.v.Visit(func(k []byte, v *jsontree.Value) {
		if bad != nil {
			return
		}
		dup := names.Add(k)
		switch {
		case dup:
			bad, badKind = k, ErrValue
		case v.Kind() == jsontree.String:
			if s := v.StringBytes(); len(s) > 0 {
				dst = append(dst, Pair{Name: k, Value: s})
			}
		case v.Kind() != jsontree.Null:
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
	switch n.v.Kind() {
	case jsontree.String:
		return n.str(), nil
	case jsontree.Number:
		return string(n.v.AppendText(nil)), nil
	case jsontree.True:
		return "true", nil
	case jsontree.False:
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
	b := n.v.StringBytes()
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
	return n.v.StringBytes(), nil
}

// AppendText is Text appending to dst instead of allocating.
func (n Node) AppendText(dst []byte) ([]byte, *Error) {
	if !n.Present() {
		return dst, nil
	}
	switch n.v.Kind() {
	case jsontree.String:
		return append(dst, n.v.StringBytes()...), nil
	case jsontree.Number:
		return n.v.AppendText(dst), nil
	case jsontree.True:
		return append(dst, "true"...), nil
	case jsontree.False:
		return append(dst, "false"...), nil
	}
	return dst, n.Err(ErrType, "string, number or boolean")
}

func (n Node) str() string { return string(n.v.StringBytes()) }

// Number returns a required number.
func (n Node) Number() (float64, *Error) {
	if n.v == nil || n.v.Kind() != jsontree.Number {
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
	if n.v == nil || n.v.Kind() != jsontree.Number {
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
	switch n.v.Kind() {
	case jsontree.True:
		return true, nil
	case jsontree.False:
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
	if n.v != nil && n.v.Kind() == jsontree.Number {
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

// SetString replaces, in place, the value of the first member name of an
// object node with the string s (adding the member when there is none).
// It is for a format that owns its document (Input.Doc) and blanks parts
// of it before encoding them: k8s blanks the values of Secrets, which sit
// under names their authors chose. A node that is not an object is left
// alone.
func (n Node) SetString(name, s string) {
	if n.IsObject() {
		n.v.SetString(name, s)
	}
}
