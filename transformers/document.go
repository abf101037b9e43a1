package transformers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/auditpipe/auditpipe"
	"github.com/valyala/fastjson"
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
	scan *scanResult
	// compact is Raw without its whitespace, when that is its canonical
	// form (scanResult.spaced); pooled, returned on Close.
	compact *[]byte
	// lazy tells whether the tree is built and, if not, how it will be.
	lazy uint8
	// canonical: an NDJSON line the prescan found canonical, whose scan
	// Each repeats to serve Root.Canonical.
	canonical bool
	// plain: Raw holds no escape (scanResult.escaped), for the tree
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
// prescan found valid: its first byte says.
func (r *Root) rawKind() string {
	switch b := bytes.TrimLeft(r.Raw, " \t\r\n"); {
	case len(b) == 0:
		return "nothing"
	case b[0] == '{':
		return "object"
	case b[0] == '[':
		return "array"
	case b[0] == '"':
		return "string"
	case b[0] == 't' || b[0] == 'f':
		return "boolean"
	case b[0] == 'n':
		return "null"
	}
	return "number"
}

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
	for _, m := range r.scan.members[:r.scan.nMembers] { // CanonicalBytes implies a scan
		if string(b[m.keyStart:m.keyEnd]) == name {
			return b[m.valStart:m.valEnd:m.valEnd], !m.dirty, true
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
	case r.scan == nil || !r.scan.canonical || r.Raw == nil:
		return nil
	case r.scan.spaced:
		if r.compact == nil {
			return nil // decoded without DecodeWith/DecodeLazy: not kept
		}
		return *r.compact
	}
	return r.Raw[:r.scan.end]
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

	arena *fastjson.Arena
	// tree holds the values of the trees kept until Close (a msgpack
	// document's, a JSON root's), scratch their numbers (msgpack) or
	// unescaped strings (JSON); kept is the msgpack input, which events
	// may keep views into.
	tree    *tree
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
	itemTree    *tree
	itemScratch *[]byte
	itemScan    *scanResult
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

var (
	arenaPool fastjson.ArenaPool
	scanPool  = sync.Pool{New: func() any { return new(scanResult) }}
)

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
			*sc = scanResult{}
			scanPool.Put(sc)
		}
	}
	if d.itemScan != nil {
		*d.itemScan = scanResult{}
		scanPool.Put(d.itemScan)
	}
	if d.itemCompact != nil {
		putBuf(d.itemCompact)
	}
	big := d.kept == nil && d.size > maxPooled
	putTree(d.tree, big)
	putTree(d.itemTree, big)
	if d.scratch != nil {
		putBuf(d.scratch)
	}
	if d.itemScratch != nil {
		putBuf(d.itemScratch)
	}
	if d.arena != nil {
		d.arena.Reset()
		arenaPool.Put(d.arena)
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
	d.Roots = append(d.Roots, Root{Node: NewNode(format, nil), Raw: body, doc: d, units: 1, scan: scanPool.Get().(*scanResult)})
	root := &d.Roots[0]
	sc := root.scan
	var compact *[]byte
	if red != nil || lazy {
		// Only DecodeWith and DecodeLazy callers use Root.Canonical and
		// Root.Member.
		compact = bufPool.Get().(*[]byte)
	}
	prescan(body, lim, red, sc, compact)
	if compact != nil {
		if sc.ok && sc.canonical && sc.spaced {
			root.compact = compact
		} else {
			putBuf(compact)
		}
	}
	root.plain = !sc.escaped
	if !sc.ok || !sc.wellFormed {
		// Not one document: NDJSON when the first line stands on its own
		// and another follows.
		first, more, _ := bytes.Cut(bytes.TrimLeft(body, " \t\r\n"), []byte{'\n'})
		if len(bytes.TrimSpace(more)) == 0 || !standsAlone(first) {
			e := scanError(body, sc, lim, NewNode(format, nil))
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
	case lazy && sc.canonical && sc.nMembers > 0:
		root.lazy = lazyCanonical
	case root.rawKind() == "array":
		root.lazy, root.units = lazyArray, sc.top
	default:
		if root.v = d.keepTree(body, root.plain); root.v == nil {
			d.Close()
			return nil, parserRefused(NewNode(format, nil))
		}
	}
	return d, nil
}

// parserRefused is the error of JSON text the prescan passed and the tree
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
		*sc = scanResult{}
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
	sc := scanPool.Get().(*scanResult)
	defer func() { *sc = scanResult{}; scanPool.Put(sc) }()
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
		node := NewNode(format, nil).AsItem(n)
		node.line = int32(line)
		prescan(l, lim, nil, sc, nil)
		if !sc.ok || !sc.wellFormed {
			d.Errors = append(d.Errors, scanError(l, sc, lim, node))
			continue
		}
		r := Root{Node: node, Raw: l, lazy: lazyLine, canonical: sc.canonical, plain: !sc.escaped, units: 1, doc: d}
		if r.rawKind() == "array" {
			r.units = sc.top
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
			if !isSpace(c) {
				n++
				break
			}
		}
	}
	return n
}

// standsAlone reports whether line holds one JSON value as far as its
// brackets, quotes and tokens tell: whether a payload that is not one
// document is NDJSON, whose first line stands on its own (a first line
// that is only "{" is a broken document). What the value holds is not
// checked: a first line with a bad number is a bad line of a stream.
func standsAlone(line []byte) bool {
	depth, values := 0, 0
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case isSpace(c):
			continue
		case c == '"':
			i++
			for i < len(line) && line[i] != '"' {
				if line[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(line) {
				return false
			}
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth--; depth < 0 {
				return false
			}
		case depth > 0:
		case scanClass[c] == clsToken:
			for i+1 < len(line) && scanClass[line[i+1]] == clsToken {
				i++
			}
		default:
			return false
		}
		if depth == 0 {
			values++
		}
	}
	return depth == 0 && values == 1
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
	head := &treeValue{t: fastjson.TypeArray}
	eachElement(r.Raw, func(_ int, elem []byte) bool {
		head.a = []*fastjson.Value{d.keepTree(elem, r.plain)}
		return false
	})
	n := r.Node
	n.v = (*fastjson.Value)(unsafe.Pointer(head))
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
			eachElement(r.Raw, func(i int, elem []byte) bool {
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

// eachElement calls f with the text of each element of the array that is
// b, valid JSON, until f returns false. The elements are found as they
// are needed, rather than noted by the prescan: that would cost every
// payload for the sake of batches.
func eachElement(b []byte, f func(i int, elem []byte) bool) {
	i := bytes.IndexByte(b, '[') + 1
	for n := 0; ; n++ {
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i >= len(b) || b[i] == ']' {
			return
		}
		end := valueEnd(b, i)
		if !f(n, b[i:end]) {
			return
		}
		for i = end; i < len(b) && isSpace(b[i]); i++ {
		}
		if i < len(b) && b[i] == ',' {
			i++
		}
	}
}

// valueEnd is the offset just past the value that starts at b[i], in
// valid JSON.
func valueEnd(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		switch c := b[i]; {
		case c == '"':
			i++
			for i < len(b) {
				k := indexSpecial(b[i:])
				if k < 0 {
					return len(b)
				}
				if i += k; b[i] == '"' {
					break
				}
				i += escapeEnd(b[i:])
			}
			i++
		case c == '{' || c == '[':
			depth++
			i++
			continue
		case c == '}' || c == ']':
			depth--
			i++
		case scanClass[c] == clsToken:
			for i < len(b) && scanClass[b[i]] == clsToken {
				i++
			}
		default:
			i++
			continue
		}
		if depth <= 0 {
			return i
		}
	}
	return i
}

// build builds the tree of valid JSON text (without escapes, if plain)
// into the item tree, replacing the previous item's.
func (d *Document) build(b []byte, plain bool) *fastjson.Value {
	if d.itemTree == nil {
		d.itemTree, d.itemScratch = treePool.Get().(*tree), bufPool.Get().(*[]byte)
	}
	d.itemTree.reset()
	*d.itemScratch = (*d.itemScratch)[:0]
	return jsonTree(b, d.itemTree, d.itemScratch, plain)
}

// keepTree builds the tree of valid JSON text (without escapes, if
// plain) into the document's tree, where it stays until Close.
func (d *Document) keepTree(b []byte, plain bool) *fastjson.Value {
	if d.tree == nil {
		d.tree, d.scratch = treePool.Get().(*tree), bufPool.Get().(*[]byte)
		*d.scratch = (*d.scratch)[:0]
	}
	// Appends to scratch: the strings of trees built before point into it.
	return jsonTree(b, d.tree, d.scratch, plain)
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
		d.itemScan = scanPool.Get().(*scanResult)
	}
	var compact *[]byte
	if d.red != nil {
		if d.itemCompact == nil {
			d.itemCompact = bufPool.Get().(*[]byte)
		}
		compact = d.itemCompact
	}
	prescan(r.Raw, d.lim, d.red, d.itemScan, compact)
	r.scan = d.itemScan
	if compact != nil && d.itemScan.spaced {
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

// escapeEnd is the length of the escape sequence at the start of s (a
// surrogate pair counts as one).
func escapeEnd(s []byte) int {
	if len(s) < 2 || s[1] != 'u' {
		return min(2, len(s))
	}
	if len(s) >= 12 && s[6] == '\\' && s[7] == 'u' {
		if r, ok := hex4(s[2:]); ok && r >= 0xD800 && r < 0xDC00 {
			return 12
		}
	}
	return min(6, len(s))
}

// checkRawString validates escapes and rejects raw control characters and
// unpaired surrogates, which fastjson accepts "best effort".
func checkRawString(s []byte) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 {
			return "control character 0x" + strconv.FormatUint(uint64(c), 16) + " must be escaped"
		}
		if c != '\\' {
			continue
		}
		i++
		if i >= len(s) {
			return "unterminated escape"
		}
		switch s[i] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		case 'u':
			r, ok := hex4(s[i+1:])
			if !ok {
				return `invalid \u escape`
			}
			i += 4
			switch {
			case r >= 0xD800 && r < 0xDC00:
				if i+6 >= len(s)+0 || s[i+1] != '\\' || s[i+2] != 'u' {
					return "unpaired surrogate"
				}
				if lo, ok := hex4(s[i+3:]); !ok || lo < 0xDC00 || lo > 0xDFFF {
					return "unpaired surrogate"
				}
				i += 6
			case r >= 0xDC00 && r <= 0xDFFF:
				return "unpaired surrogate"
			}
		default:
			return "invalid escape \\" + string(rune(s[i]))
		}
	}
	return ""
}

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// decodeValue converts an already-decoded payload (msgpack maps from Fluent
// Bit) into a document without going through JSON text.
func decodeValue(val any, lim Limits, format string) (*Document, error) {
	a := arenaPool.Get()
	c := converter{a: a, lim: lim, format: format}
	v, err := c.convert(val, NewNode(format, nil), 1)
	if err != nil {
		a.Reset()
		arenaPool.Put(a)
		return nil, err
	}
	if c.size > lim.MaxPayloadBytes {
		a.Reset()
		arenaPool.Put(a)
		return nil, &Error{Format: format, Item: -1, Path: "$", Kind: ErrTooLarge,
			Expected: fmt.Sprintf("at most %d bytes", lim.MaxPayloadBytes), Got: fmt.Sprintf("about %d bytes", c.size)}
	}
	d := newDocument()
	d.Roots, d.arena = append(d.Roots, Root{Node: NewNode(format, v)}), a
	return d, nil
}

type converter struct {
	a      *fastjson.Arena
	lim    Limits
	format string
	size   int
}

func (c *converter) convert(val any, at Node, depth int) (*fastjson.Value, *Error) {
	if depth > c.lim.MaxDepth {
		return nil, at.Err(ErrTooDeep, fmt.Sprintf("at most %d levels of nesting", c.lim.MaxDepth))
	}
	c.size += 8
	switch x := val.(type) {
	case nil:
		return c.a.NewNull(), nil
	case bool:
		if x {
			return c.a.NewTrue(), nil
		}
		return c.a.NewFalse(), nil
	case string:
		return c.str(x, at)
	case []byte:
		return c.str(string(x), at)
	case json.Number:
		if !validNumber([]byte(x)) {
			return nil, at.Err(ErrSyntax, "a JSON number")
		}
		return c.a.NewNumberString(string(x)), nil
	case time.Time:
		return c.a.NewString(x.UTC().Format(time.RFC3339Nano)), nil
	case float32:
		return c.float(float64(x), at)
	case float64:
		return c.float(x, at)
	case map[string]any:
		if err := c.members(len(x), at, true); err != nil {
			return nil, err
		}
		o := c.a.NewObject()
		for k, v := range x {
			cv, err := c.member(k, v, at, depth)
			if err != nil {
				return nil, err
			}
			o.Set(k, cv)
		}
		return o, nil
	case map[any]any:
		if err := c.members(len(x), at, true); err != nil {
			return nil, err
		}
		o := c.a.NewObject()
		for k, v := range x {
			var ks string
			switch kk := k.(type) {
			case string:
				ks = kk
			case []byte:
				ks = string(kk)
			default:
				return nil, at.Errf(ErrType, "string member names", fmt.Sprintf("member name of type %T", k))
			}
			cv, err := c.member(ks, v, at, depth)
			if err != nil {
				return nil, err
			}
			o.Set(ks, cv)
		}
		return o, nil
	case []any:
		if err := c.members(len(x), at, false); err != nil {
			return nil, err
		}
		arr := c.a.NewArray()
		for i, e := range x {
			cv, err := c.convert(e, at.child(pathSeg{idx: i}, nil), depth+1)
			if err != nil {
				return nil, err
			}
			arr.SetArrayItem(i, cv)
		}
		return arr, nil
	}
	rv := reflect.ValueOf(val)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return c.a.NewNumberString(strconv.FormatInt(rv.Int(), 10)), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return c.a.NewNumberString(strconv.FormatUint(rv.Uint(), 10)), nil
	}
	return nil, at.Errf(ErrType, "a JSON-compatible value", fmt.Sprintf("Go type %T", val))
}

// members refuses an object or array of more than MaxMembers.
func (c *converter) members(n int, at Node, object bool) *Error {
	if n <= c.lim.MaxMembers {
		return nil
	}
	e := at.Err(ErrTooManyMembers, tooManyMembers(c.lim.MaxMembers, object))
	e.Got = ""
	return e
}

func (c *converter) member(k string, v any, at Node, depth int) (*fastjson.Value, *Error) {
	child := at.child(pathSeg{key: k, idx: -1}, nil)
	if len(k) > c.lim.MaxStringLength {
		return nil, child.Err(ErrStringTooLong, fmt.Sprintf("member names of at most %d bytes", c.lim.MaxStringLength))
	}
	if !utf8.ValidString(k) {
		return nil, child.Err(ErrInvalidUTF8, "UTF-8 member name")
	}
	c.size += len(k)
	return c.convert(v, child, depth+1)
}

func (c *converter) str(s string, at Node) (*fastjson.Value, *Error) {
	if len(s) > c.lim.MaxStringLength {
		return nil, at.Err(ErrStringTooLong, fmt.Sprintf("at most %d bytes", c.lim.MaxStringLength))
	}
	if !utf8.ValidString(s) {
		return nil, at.Err(ErrInvalidUTF8, "UTF-8 string")
	}
	c.size += len(s)
	return c.a.NewString(s), nil
}

func (c *converter) float(f float64, at Node) (*fastjson.Value, *Error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, at.Err(ErrValue, "a finite number")
	}
	return c.a.NewNumberString(string(AppendES6Number(nil, f))), nil
}
