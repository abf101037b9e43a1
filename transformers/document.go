package transformers

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/transformers/internal/jsonscan"
	"github.com/auditpipe/auditpipe/transformers/internal/jsontree"
)

// Root is one JSON document of a payload: the whole payload, or one NDJSON
// line.
type Root struct {
	Node
	// Raw is the bytes this root was parsed from (valid while the
	// document is open); nil when the payload arrived already decoded.
	Raw    []byte
	rawSHA string
	// scan is the prescan of Raw (pooled, returned on Close); nil for a
	// payload that arrived decoded, and for an NDJSON line but while Each
	// visits it.
	scan *jsonscan.Result
	// compact is Raw without its whitespace, when that is its canonical
	// form (jsonscan.Result.Spaced); pooled, returned on Close.
	compact *[]byte
	// lazy tells whether the tree is built and, if not, how it will be.
	lazy uint8
	// canonical: an NDJSON line the prescan found canonical, whose scan
	// Each repeats to serve Root.Canonical.
	canonical bool
	// plain: Raw holds no escape (jsonscan.Result.Escaped), for the tree
	// builder.
	plain bool
	// units is how many items Items makes of the root: its elements when
	// it is an array, else 1.
	units int
	doc   *Document
}

// How a root's tree is built (Root.lazy).
const (
	// built: the tree is there (or the payload arrived decoded).
	built = iota
	// lazyCanonical: a canonical object DecodeLazy left unbuilt; it is
	// read through Member, and Parse builds it.
	lazyCanonical
	// lazyLine: an NDJSON line. Each builds one line's tree at a time, so
	// that the trees of a whole stream are never alive at once.
	lazyLine
	// lazyArray: a top-level array, a batch. Each builds one element's
	// tree at a time: a tree costs several times its JSON text.
	lazyArray
)

// Parsed reports whether the root's tree is built. DecodeLazy leaves it
// unbuilt for an already-canonical object read through Member; decoding
// leaves it unbuilt for an NDJSON line and a top-level array, whose items
// Each and Items build one at a time.
func (r *Root) Parsed() bool { return r.lazy == built }

// Parse builds the whole tree of a root left unbuilt; it stays until the
// document is closed. The payload is known to be valid JSON by then. Each
// and Items build trees themselves, an item at a time: Parse is for a
// format that needs the root as a whole.
func (r *Root) Parse() {
	if r.lazy == built {
		return
	}
	// Nil cannot happen for a payload the prescan found well formed;
	// leaving the root missing would make every access a typed error.
	r.v, r.lazy = r.doc.keepTree(r.Raw, r.plain), built
}

// IsArray reports whether the root is a JSON array, built or not.
func (r *Root) IsArray() bool {
	if r.lazy == built {
		return r.Node.IsArray()
	}
	return r.lazy == lazyArray || r.rawKind() == "array"
}

// Kind names the JSON kind of the root, built or not.
func (r *Root) Kind() string {
	if r.lazy == built {
		return r.Node.Kind()
	}
	return r.rawKind()
}

// rawKind is the kind of the JSON text of an unbuilt root, which the
// scan found valid: its first byte says.
func (r *Root) rawKind() string { return jsonscan.Kind(r.Raw) }

// Len is the number of elements of an array root, built or not, else 0.
func (r *Root) Len() int {
	if r.lazy == built {
		return r.Node.Len()
	}
	if r.IsArray() {
		return r.units
	}
	return 0
}

// Member returns the canonical JSON of a top-level member of a canonical
// object root (see DecodeLazy), and whether it holds nothing the redactor
// would change. ok is false when there is no such member or the root is
// not such an object. Clean is judged with the redactor the document was
// decoded with.
func (r *Root) Member(name string) (val []byte, clean, ok bool) {
	b := r.CanonicalBytes()
	if b == nil {
		return nil, false, false
	}
	for _, m := range r.scan.Members[:r.scan.NMembers] { // CanonicalBytes implies a scan
		if string(b[m.KeyStart:m.KeyEnd]) == name {
			return b[m.ValStart:m.ValEnd:m.ValEnd], !m.Dirty, true
		}
	}
	return nil, false, false
}

// RawSHA256 is the forensic hash of Raw (event.raw_sha256), computed on
// first use; empty when the payload arrived already decoded.
func (r *Root) RawSHA256() string {
	if r.rawSHA == "" && r.Raw != nil {
		r.rawSHA = auditpipe.RawSHA256(r.Raw)
	}
	return r.rawSHA
}

// NoteCanonical tells the root the canonical encoding of the item that is
// the whole root, and the id hashed from it. Go services and most SDKs send
// compact JSON with sorted keys, which is already canonical: then the raw
// hash is that same id, and hashing the payload a second time is skipped.
func (r *Root) NoteCanonical(canonical []byte, id string) {
	if r.rawSHA == "" && bytes.Equal(canonical, r.Raw) {
		r.rawSHA = id
	}
}

// CanonicalBytes is the canonical form of a root the prescan found
// already canonical (the payload less trailing whitespace, or its
// compacted copy), or nil.
func (r *Root) CanonicalBytes() []byte {
	switch {
	case r.scan == nil || !r.scan.Canonical || r.Raw == nil:
		return nil
	case r.scan.Spaced:
		if r.compact == nil {
			return nil // decoded without DecodeWith/DecodeLazy: not kept
		}
		return *r.compact
	}
	return r.Raw[:r.scan.End]
}

// Document is a decoded payload. Close it when done: it holds pooled
// tree memory that the events must not reference (they don't: every
// string taken from a Node is copied).
//
// Memory follows the payload's size, not its shape: an NDJSON stream and
// a top-level array (a batch) are checked whole when decoded, but their
// trees are built one item at a time by Each and Items, so that only one
// item's tree is alive at once. A tree costs several times its text (a
// hundred bytes or so per value): a batch's trees all at once would cost
// many times the payload.
type Document struct {
	Roots []Root
	// Errors are NDJSON lines that did not parse; the other lines are in
	// Roots.
	Errors []*Error
	// NDJSON reports that the payload was newline-delimited documents.
	NDJSON bool

	// tree holds the values of the trees kept until Close (a msgpack
	// document's, a JSON root's, a decoded value's), scratch their numbers
	// (msgpack) or unescaped strings (JSON); kept is the msgpack input,
	// which events may keep views into.
	tree    *jsontree.Tree
	scratch *[]byte
	kept    []byte
	// What decoding was asked for, which Each needs again for the scans
	// of canonical NDJSON lines, and the size of the JSON text.
	lim  Limits
	red  *Redactor
	size int
	// itemTree and itemScratch hold the tree of the item Each visits,
	// which the next one replaces; itemScan and itemCompact serve the
	// lines' scans.
	itemTree    *jsontree.Tree
	itemScratch *[]byte
	itemScan    *jsonscan.Result
	itemCompact *[]byte
	// One root is the common case; no allocation then.
	rootsInline [1]Root
	// open is set from decoding until Close, which does nothing on a
	// closed document: documents are pooled, and a second Close must not
	// hand one to two users.
	open bool
}

// docPool keeps documents for reuse: the Fluent Bit plugin decodes one per
// record, and a document is a few hundred bytes.
var docPool = sync.Pool{New: func() any { return new(Document) }}

// newDocument returns an empty open document with its inline root in
// place.
func newDocument() *Document {
	d := docPool.Get().(*Document)
	d.Roots, d.open = d.rootsInline[:0], true
	return d
}

var scanPool = sync.Pool{New: func() any { return new(jsonscan.Result) }}

// maxPooled is the largest buffer, in bytes, put back in a pool: one
// outsized payload's memory must not stay behind it in a pool, for every
// later small payload to carry around.
const maxPooled = 1 << 20

// Close returns the document and its tree memory to the pools. Nothing
// read from the document may be used afterwards; closing it again does
// nothing.
func (d *Document) Close() {
	if d == nil || !d.open {
		return
	}
	for i := range d.Roots {
		if c := d.Roots[i].compact; c != nil && c != d.itemCompact {
			putBuf(c)
		}
		if sc := d.Roots[i].scan; sc != nil && sc != d.itemScan {
			*sc = jsonscan.Result{}
			scanPool.Put(sc)
		}
	}
	if d.itemScan != nil {
		*d.itemScan = jsonscan.Result{}
		scanPool.Put(d.itemScan)
	}
	if d.itemCompact != nil {
		putBuf(d.itemCompact)
	}
	big := d.kept == nil && d.size > maxPooled
	jsontree.PutTree(d.tree, big, maxPooled)
	jsontree.PutTree(d.itemTree, big, maxPooled)
	if d.scratch != nil {
		putBuf(d.scratch)
	}
	if d.itemScratch != nil {
		putBuf(d.itemScratch)
	}
	// Cleared, not kept: results may hold the Errors slice, and the roots
	// point into memory now back in the pools.
	*d = Document{}
	docPool.Put(d)
}

// putBuf returns a buffer to bufPool unless it grew outsized.
func putBuf(b *[]byte) {
	if cap(*b) <= maxPooled {
		*b = (*b)[:0]
		bufPool.Put(b)
	}
}

// Strings sets each *dst to src[i] as a string an event can keep: a view
// into a msgpack input stays a view, as the caller never changes those
// bytes (Input.Msgpack); anything else (JSON text, numbers spelled out,
// pooled parser memory) is copied, all in one allocation. An event's
// dozen fields thus cost one allocation from JSON and none from a Fluent
// Bit record. Copies share memory, which is harmless: strings are
// immutable.
func (d *Document) Strings(dst []*string, src [][]byte) {
	total := 0
	for _, b := range src {
		if !d.inKept(b) {
			total += len(b)
		}
	}
	var all string
	if total > 0 {
		buf := make([]byte, 0, total)
		for _, b := range src {
			if !d.inKept(b) {
				buf = append(buf, b...)
			}
		}
		all = unsafe.String(unsafe.SliceData(buf), len(buf))
	}
	off := 0
	for i, b := range src {
		if d.inKept(b) {
			*dst[i] = unsafe.String(unsafe.SliceData(b), len(b))
			continue
		}
		*dst[i] = all[off : off+len(b)]
		off += len(b)
	}
}

// inKept reports whether b is a non-empty view into the msgpack input.
func (d *Document) inKept(b []byte) bool {
	if len(b) == 0 || len(d.kept) == 0 {
		return false
	}
	p, base := uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(unsafe.Pointer(unsafe.SliceData(d.kept)))
	return p >= base && p-base <= uintptr(len(d.kept)-len(b))
}

// Decode returns in's document: in.Doc as is, Body parsed (one JSON
// document, or NDJSON when the first line is a complete document on its
// own), Msgpack or Value converted. Every limit is enforced here, so formats only
// deal with shape.
func Decode(in Input, lim Limits, format string) (*Document, error) {
	return DecodeWith(in, Options{Limits: lim}, format)
}

// DecodeLazy is DecodeWith for formats that can map an object straight
// from its canonical bytes: when the payload is one JSON object already in
// canonical form (whitespace aside), its tree is not built (Root.Parsed
// reports false); the format reads it with Root.Member, and Items builds
// the tree when the format needs it after all. Anything else decodes as
// DecodeWith does.
func DecodeLazy(in Input, opts Options, format string) (*Document, error) {
	if in.Doc != nil || in.Body == nil {
		return DecodeWith(in, opts, format)
	}
	return decodeBytes(in.Body, opts.Limits.WithDefaults(), opts.Redactor, format, true)
}

// DecodeWith is Decode that also knows the redactor, so that the one pass
// over the raw bytes notes which top-level members of an already-canonical
// payload need no redaction (Root.Canonical).
func DecodeWith(in Input, opts Options, format string) (*Document, error) {
	lim, red := opts.Limits, opts.Redactor
	if in.Doc != nil {
		for i := range in.Doc.Roots {
			in.Doc.Roots[i].Node = in.Doc.Roots[i].Node.WithFormat(format)
		}
		return in.Doc, nil
	}
	lim = lim.WithDefaults()
	if in.Body == nil && in.Msgpack != nil {
		return decodeMsgpack(in.Msgpack, lim, format)
	}
	if in.Body == nil && in.Value != nil {
		return decodeValue(in.Value, lim, format)
	}
	return decodeBytes(in.Body, lim, red, format, false)
}

// decodeBytes checks the whole payload in one prescan before any tree is
// built: a payload that breaks a limit costs its bytes, never a tree of
// them, and every error it gets is built from the scan (scanError), at
// any depth the same short message.
func decodeBytes(body []byte, lim Limits, red *Redactor, format string, lazy bool) (*Document, error) {
	whole := func(kind error) *Error { return &Error{Format: format, Item: -1, Path: "$", Kind: kind} }
	if len(body) > lim.MaxPayloadBytes {
		e := whole(ErrTooLarge)
		e.Expected, e.Got = fmt.Sprintf("at most %d bytes", lim.MaxPayloadBytes), fmt.Sprintf("%d bytes", len(body))
		return nil, e
	}
	if !utf8.Valid(body) {
		e := whole(ErrInvalidUTF8)
		e.Detail = fmt.Sprintf("first invalid byte at offset %d", invalidUTF8Offset(body))
		return nil, e
	}
	if len(bytes.TrimSpace(body)) == 0 {
		e := whole(ErrSyntax)
		e.Expected, e.Got = "a JSON document", "empty payload"
		return nil, e
	}
	d := newDocument()
	d.lim, d.red, d.size = lim, red, len(body)
	d.Roots = append(d.Roots, Root{Node: newNode(format, nil), Raw: body, doc: d, units: 1, scan: scanPool.Get().(*jsonscan.Result)})
	root := &d.Roots[0]
	sc := root.scan
	var compact *[]byte
	if red != nil || lazy {
		// Only DecodeWith and DecodeLazy callers use Root.Canonical and
		// Root.Member.
		compact = bufPool.Get().(*[]byte)
	}
	jsonscan.Scan(body, lim.scan(), red.matcher(), sc, compact)
	if compact != nil {
		if sc.OK && sc.Canonical && sc.Spaced {
			root.compact = compact
		} else {
			putBuf(compact)
		}
	}
	root.plain = !sc.Escaped
	if !sc.OK || !sc.WellFormed {
		// Not one document: NDJSON when the first line stands on its own
		// and another follows.
		first, more, _ := bytes.Cut(bytes.TrimLeft(body, " \t\r\n"), []byte{'\n'})
		if len(bytes.TrimSpace(more)) == 0 || !jsonscan.StandsAlone(first) {
			e := scanError(body, sc, lim, newNode(format, nil))
			d.Close()
			return nil, e
		}
		if e := d.decodeLines(body, format); e != nil {
			d.Close()
			return nil, e
		}
		return d, nil
	}
	switch {
	case lazy && sc.Canonical && sc.NMembers > 0:
		root.lazy = lazyCanonical
	case root.rawKind() == "array":
		root.lazy, root.units = lazyArray, sc.Top
	default:
		if root.v = d.keepTree(body, root.plain); root.v == nil {
			d.Close()
			return nil, parserRefused(newNode(format, nil))
		}
	}
	return d, nil
}

// parserRefused is the error of JSON text the scan passed and the tree
// builder did not. It should not happen (FuzzBuildTree looks for it).
func parserRefused(at Node) *Error {
	return at.Errf(ErrSyntax, "", "the tree builder refused what the checks passed")
}

// decodeLines reads body as NDJSON: every line is checked whole now, so
// that the lines' errors come first and in order, but none is parsed:
// Each builds one line's tree at a time. What is kept per line is its
// Root.
func (d *Document) decodeLines(body []byte, format string) *Error {
	lim := d.lim
	d.NDJSON = true
	if sc := d.Roots[0].scan; sc != nil {
		*sc = jsonscan.Result{}
		scanPool.Put(sc)
	}
	if c := d.Roots[0].compact; c != nil {
		putBuf(c)
	}
	d.Roots = d.Roots[:0]
	// Sized once, to the lines that hold something (blank lines cost
	// nothing, however many): a root is a few hundred bytes.
	if n := contentLines(body, lim.MaxItems); n > cap(d.Roots) {
		d.Roots = make([]Root, 0, n)
	}
	sc := scanPool.Get().(*jsonscan.Result)
	defer func() { *sc = jsonscan.Result{}; scanPool.Put(sc) }()
	line := 0
	for rest := body; len(rest) > 0; {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte{'\n'})
		line++
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		n := len(d.Roots) + len(d.Errors)
		if n >= lim.MaxItems {
			return &Error{Format: format, Item: -1, Path: "$", Kind: ErrTooManyItems,
				Expected: fmt.Sprintf("at most %d NDJSON lines", lim.MaxItems), Got: "more"}
		}
		node := newNode(format, nil).AsItem(n)
		node.line = int32(line)
		jsonscan.Scan(l, lim.scan(), nil, sc, nil)
		if !sc.OK || !sc.WellFormed {
			d.Errors = append(d.Errors, scanError(l, sc, lim, node))
			continue
		}
		r := Root{Node: node, Raw: l, lazy: lazyLine, canonical: sc.Canonical, plain: !sc.Escaped, units: 1, doc: d}
		if r.rawKind() == "array" {
			r.units = sc.Top
		}
		d.Roots = append(d.Roots, r)
	}
	return nil
}

// contentLines counts the lines of body that are not blank, up to most.
func contentLines(body []byte, most int) int {
	n := 0
	for rest := body; len(rest) > 0 && n < most; {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte{'\n'})
		for _, c := range l {
			if !jsonscan.IsSpace(c) {
				n++
				break
			}
		}
	}
	return n
}

// First is the first root as a format detector sees it (auto): its tree
// built, except that of a top-level array only the first element is:
// the node is then an array holding that element alone, as detectors only
// look at the first item of a batch. A missing node when the document has
// no root.
func (d *Document) First() Node {
	if len(d.Roots) == 0 {
		return Node{}
	}
	r := &d.Roots[0]
	if r.lazy != lazyArray {
		r.Parse()
		return r.Node
	}
	var first *jsontree.Value
	jsonscan.EachElement(r.Raw, func(_ int, elem []byte) bool {
		first = d.keepTree(elem, r.plain)
		return false
	})
	if d.tree == nil {
		d.tree, d.scratch = jsontree.GetTree(), bufPool.Get().(*[]byte)
		*d.scratch = (*d.scratch)[:0]
	}
	n := r.Node
	n.v = d.tree.Head(first)
	return n
}

// Each calls f for each unit of the document, in payload order: every
// element of a root that is a JSON array, every other root as it is, with
// the root it belongs to, until f returns false. The tree of an NDJSON
// line or of an element of a top-level array is built just before f is
// called and taken down after: whatever f read from unit is invalid once
// it returns (events copy what they keep, and are made in f).
func (d *Document) Each(f func(unit Node, root *Root) bool) {
	for ri := range d.Roots {
		r := &d.Roots[ri]
		if r.lazy == lazyArray {
			ok := true
			jsonscan.EachElement(r.Raw, func(i int, elem []byte) bool {
				ok = f(r.Node.child(pathSeg{idx: i}, d.build(elem, r.plain)), r)
				return ok
			})
			if !ok {
				return
			}
			continue
		}
		line := r.lazy == lazyLine
		if line {
			d.buildLine(r)
		}
		r.Parse()
		ok := true
		if r.Node.IsArray() {
			for i := range r.Node.Len() {
				if ok = f(r.Index(i), r); !ok {
					break
				}
			}
		} else {
			ok = f(r.Node, r)
		}
		if line {
			r.v, r.lazy, r.scan, r.compact = nil, lazyLine, nil, nil
		}
		if !ok {
			return
		}
	}
}

// EachRoot calls f for each root with its whole tree built, until f
// returns false: for formats whose items are not Each's units (an
// EventList's events). As with Each, the tree of an NDJSON line or a
// top-level array is taken down after f returns.
func (d *Document) EachRoot(f func(root *Root) bool) {
	for ri := range d.Roots {
		r := &d.Roots[ri]
		was := r.lazy
		switch was {
		case lazyLine:
			d.buildLine(r)
		case lazyArray:
			r.v, r.lazy = d.build(r.Raw, r.plain), built
		default:
			r.Parse()
		}
		ok := f(r)
		if was == lazyLine || was == lazyArray {
			r.v, r.lazy, r.scan, r.compact = nil, was, nil, nil
		}
		if !ok {
			return
		}
	}
}

// build builds the tree of valid JSON text (without escapes, if plain)
// into the item tree, replacing the previous item's.
func (d *Document) build(b []byte, plain bool) *jsontree.Value {
	if d.itemTree == nil {
		d.itemTree, d.itemScratch = jsontree.GetTree(), bufPool.Get().(*[]byte)
	}
	d.itemTree.Reset()
	*d.itemScratch = (*d.itemScratch)[:0]
	return d.itemTree.Build(b, d.itemScratch, plain)
}

// keepTree builds the tree of valid JSON text (without escapes, if
// plain) into the document's tree, where it stays until Close.
func (d *Document) keepTree(b []byte, plain bool) *jsontree.Value {
	if d.tree == nil {
		d.tree, d.scratch = jsontree.GetTree(), bufPool.Get().(*[]byte)
		*d.scratch = (*d.scratch)[:0]
	}
	// Appends to scratch: the strings of trees built before point into it.
	return d.tree.Build(b, d.scratch, plain)
}

// buildLine builds an NDJSON line's tree as the item's and, for a
// line the prescan found canonical, scans it again to serve
// Root.Canonical, as a document's root is served (with the redactor
// decoding had, and its compacted copy).
func (d *Document) buildLine(r *Root) {
	r.v, r.lazy = d.build(r.Raw, r.plain), built
	if !r.canonical {
		return
	}
	if d.itemScan == nil {
		d.itemScan = scanPool.Get().(*jsonscan.Result)
	}
	var compact *[]byte
	if d.red != nil {
		if d.itemCompact == nil {
			d.itemCompact = bufPool.Get().(*[]byte)
		}
		compact = d.itemCompact
	}
	jsonscan.Scan(r.Raw, d.lim.scan(), d.red.matcher(), d.itemScan, compact)
	r.scan = d.itemScan
	if compact != nil && d.itemScan.Spaced {
		r.compact = compact
	}
}

// Items calls f for every item of the document: each element of a root
// that is a JSON array, each other root as it is, with the root it belongs
// to (Each, numbered). Items are numbered across the whole document. More
// than lim.MaxItems items is a payload error, found before f is called
// for any: a payload refused as a whole leaves no events behind.
func (d *Document) Items(lim Limits, f func(item Node, root *Root)) *Error {
	lim = lim.WithDefaults()
	n := 0
	for ri := range d.Roots {
		r := &d.Roots[ri]
		if n += r.Units(); n > lim.MaxItems {
			e := r.Err(ErrTooManyItems, fmt.Sprintf("at most %d items", lim.MaxItems))
			e.Got = strconv.Itoa(n)
			return e
		}
	}
	n = 0
	d.Each(func(unit Node, r *Root) bool {
		if d.NDJSON || unit.v != r.v {
			unit = unit.AsItem(n)
		}
		f(unit, r)
		n++
		return true
	})
	return nil
}

// Units is how many items Items makes of the root: its elements when it
// is an array, else 1.
func (r *Root) Units() int {
	if r.lazy == built {
		if r.Node.IsArray() {
			return r.Node.Len()
		}
		return 1
	}
	return r.units
}

// Count is the number of items Items makes of the document: formats size
// their results with it (Result.Grow).
func (d *Document) Count() int {
	n := 0
	for i := range d.Roots {
		n += d.Roots[i].Units()
	}
	return n
}

func invalidUTF8Offset(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}
