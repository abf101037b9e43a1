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
	// payload that arrived decoded.
	scan *scanResult
	// compact is Raw without its whitespace, when that is its canonical
	// form (scanResult.spaced); pooled, returned on Close.
	compact *[]byte
	// lazy: the root is a canonical object whose tree was not built
	// (DecodeLazy); Parse builds it.
	lazy bool
	doc  *Document
}

// Parsed reports whether the root's tree is built. Only DecodeLazy leaves
// it unbuilt, for an already-canonical object read through Member.
func (r *Root) Parsed() bool { return !r.lazy }

// Parse builds the tree of a root DecodeLazy left unbuilt; the payload is
// known to be valid JSON by then.
func (r *Root) Parse() {
	if !r.lazy {
		return
	}
	p := parserPool.Get()
	v, err := p.ParseBytes(r.Raw)
	if err != nil {
		// Cannot happen for a payload the prescan found well formed;
		// leaving the root missing makes every access a typed error.
		parserPool.Put(p)
		return
	}
	r.doc.parsers = append(r.doc.parsers, p)
	r.v, r.lazy = v, false
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
// parser memory that the events must not reference (they don't: every
// string taken from a Node is copied).
type Document struct {
	Roots []Root
	// Errors are NDJSON lines that did not parse; the other lines are in
	// Roots.
	Errors []*Error
	// NDJSON reports that the payload was newline-delimited documents.
	NDJSON bool

	parsers []*fastjson.Parser
	arena   *fastjson.Arena
	// tree holds a msgpack document's values, scratch its numbers; kept
	// is the msgpack input, which events may keep views into.
	tree    *tree
	scratch *[]byte
	kept    []byte
	// One root and one parser are the common case; no allocation then.
	rootsInline   [1]Root
	parsersInline [1]*fastjson.Parser
	// open is set from decoding until Close, which does nothing on a
	// closed document: documents are pooled, and a second Close must not
	// hand one to two users.
	open bool
}

// docPool keeps documents for reuse: the Fluent Bit plugin decodes one per
// record, and a document is a few hundred bytes.
var docPool = sync.Pool{New: func() any { return new(Document) }}

// newDocument returns an empty open document with its inline roots and
// parsers in place.
func newDocument() *Document {
	d := docPool.Get().(*Document)
	d.Roots, d.parsers, d.open = d.rootsInline[:0], d.parsersInline[:0], true
	return d
}

var (
	parserPool fastjson.ParserPool
	arenaPool  fastjson.ArenaPool
	scanPool   = sync.Pool{New: func() any { return new(scanResult) }}
)

// Close returns the document and its parser memory to the pools. Nothing
// read from the document may be used afterwards; closing it again does
// nothing.
func (d *Document) Close() {
	if d == nil || !d.open {
		return
	}
	for _, p := range d.parsers {
		parserPool.Put(p)
	}
	for i := range d.Roots {
		if c := d.Roots[i].compact; c != nil {
			bufPool.Put(c)
		}
		if sc := d.Roots[i].scan; sc != nil {
			*sc = scanResult{}
			scanPool.Put(sc)
		}
	}
	if d.tree != nil {
		d.tree.reset()
		treePool.Put(d.tree)
	}
	if d.scratch != nil {
		*d.scratch = (*d.scratch)[:0]
		bufPool.Put(d.scratch)
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
// reports false); the format reads it with Root.Member and calls
// Root.Parse when it needs the tree after all. Anything else decodes as
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
	if lazy {
		if d := decodeCanonical(body, lim, red, format); d != nil {
			return d, nil
		}
	}
	d := newDocument()
	p := parserPool.Get()
	d.parsers = append(d.parsers, p)
	v, err := p.ParseBytes(body)
	if err == nil {
		root := Root{Node: NewNode(format, v), Raw: body}
		if e := strict(&root, lim, red); e != nil {
			d.Close()
			return nil, e
		}
		d.Roots = append(d.Roots, root)
		return d, nil
	}
	// Not one document: NDJSON when the first line stands on its own.
	first, _, _ := bytes.Cut(bytes.TrimLeft(body, " \t\r\n"), []byte{'\n'})
	if _, ferr := p.ParseBytes(first); ferr != nil || bytes.Count(body, []byte{'\n'}) == 0 {
		d.Close()
		e := whole(ErrSyntax)
		e.Detail = err.Error()
		var r scanResult
		if prescan(body, lim, nil, &r, nil); !r.ok && r.kind == ErrSyntax {
			// More precise than the parser's "unparsed tail".
			e.Detail = fmt.Sprintf("%s at byte offset %d", r.msg, r.off)
		}
		return nil, e
	}
	d.NDJSON = true
	d.parsers = d.parsers[:0]
	parserPool.Put(p)
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
			d.Close()
			e := whole(ErrTooManyItems)
			e.Expected, e.Got = fmt.Sprintf("at most %d NDJSON lines", lim.MaxItems), "more"
			return nil, e
		}
		lp := parserPool.Get()
		v, err := lp.ParseBytes(l)
		if err != nil {
			parserPool.Put(lp)
			d.Errors = append(d.Errors, &Error{Format: format, Item: n, Line: line, Path: "$", Kind: ErrSyntax, Detail: err.Error()})
			continue
		}
		d.parsers = append(d.parsers, lp)
		node := NewNode(format, v).AsItem(n)
		node.line = int32(line)
		root := Root{Node: node, Raw: l}
		if e := strict(&root, lim, red); e != nil {
			d.Errors = append(d.Errors, e)
			continue
		}
		d.Roots = append(d.Roots, root)
	}
	return d, nil
}

// decodeCanonical is DecodeLazy's shortcut: the prescan first, and the tree
// only if the payload is not a canonical object (or not even valid: then
// nil, and the general path finds and reports what is wrong).
func decodeCanonical(body []byte, lim Limits, red *Redactor, format string) *Document {
	d := newDocument()
	d.Roots = append(d.Roots, Root{Node: NewNode(format, nil), Raw: body, doc: d, scan: scanPool.Get().(*scanResult)})
	root := &d.Roots[0]
	compact := bufPool.Get().(*[]byte)
	prescan(body, lim, red, root.scan, compact)
	if root.scan.ok && root.scan.canonical && root.scan.spaced {
		root.compact = compact
	} else {
		bufPool.Put(compact)
	}
	switch {
	case !root.scan.ok:
	case root.scan.canonical && root.scan.nMembers > 0:
		root.lazy = true
		return d
	default:
		p := parserPool.Get()
		if v, err := p.ParseBytes(body); err == nil {
			d.parsers = append(d.parsers, p)
			root.v = v
			return d
		}
		parserPool.Put(p)
	}
	d.Close()
	return nil
}

// strict holds a parsed document to the limits and the strict grammar
// (prescan). Only when prescan objects is the tree walked, to name the
// JSONPath of the problem.
func strict(root *Root, lim Limits, red *Redactor) *Error {
	if root.scan == nil {
		root.scan = scanPool.Get().(*scanResult)
	}
	r := root.scan
	var compact *[]byte
	if red != nil {
		// Only DecodeWith callers use Root.Canonical.
		compact = bufPool.Get().(*[]byte)
	}
	prescan(root.Raw, lim, red, r, compact)
	if compact != nil {
		if r.ok && r.canonical && r.spaced {
			root.compact = compact
		} else {
			bufPool.Put(compact)
		}
	}
	if r.ok {
		return nil
	}
	if e := checkValue(root.Node, root.v, 1, lim); e != nil {
		return e
	}
	// Problems only visible in the raw text (a bad escape in a member
	// name) have an offset but no path.
	return &Error{Format: root.format, Item: int(root.item), Line: int(root.line), Path: "$", Kind: r.kind, Detail: fmt.Sprintf("%s at byte offset %d", r.msg, r.off)}
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

// checkValue walks a parsed tree for what prescan found wrong, to name its
// JSONPath: depth, string lengths, raw control characters, number syntax.
// It builds no path unless it finds a problem.
func checkValue(at Node, v *fastjson.Value, depth int, lim Limits) *Error {
	w := walker{lim: lim}
	e, segs := w.checkChild(v, depth-1)
	if e == nil {
		return nil
	}
	e.Format, e.Item, e.Line, e.Path = at.format, int(at.item), int(at.line), appendStepsReversed(at.Path(), segs)
	return e
}

type pathSeg struct {
	key string
	idx int
}

type walker struct {
	lim     Limits
	scratch [32]byte
}

func (w *walker) check(v *fastjson.Value, depth int) (*Error, []pathSeg) {
	if depth > w.lim.MaxDepth {
		return &Error{Kind: ErrTooDeep, Expected: fmt.Sprintf("at most %d levels of nesting", w.lim.MaxDepth)}, nil
	}
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		var err *Error
		var segs []pathSeg
		o.Visit(func(k []byte, c *fastjson.Value) {
			if err != nil {
				return
			}
			switch {
			case len(k) > w.lim.MaxStringLength:
				err = &Error{Kind: ErrStringTooLong, Expected: fmt.Sprintf("member names of at most %d bytes", w.lim.MaxStringLength)}
			case hasControl(k):
				err = &Error{Kind: ErrSyntax, Expected: "a JSON string", Detail: "control characters in member names must be escaped"}
			default:
				err, segs = w.checkChild(c, depth)
			}
			if err != nil {
				segs = append(segs, pathSeg{key: string(k[:min(len(k), 256)]), idx: -1})
			}
		})
		return err, segs
	case fastjson.TypeArray:
		a, _ := v.Array()
		for i, c := range a {
			if e, segs := w.checkChild(c, depth); e != nil {
				return e, append(segs, pathSeg{idx: i})
			}
		}
	}
	return nil, nil
}

func (w *walker) checkChild(c *fastjson.Value, depth int) (*Error, []pathSeg) {
	switch c.Type() {
	case fastjson.TypeObject, fastjson.TypeArray:
		return w.check(c, depth+1)
	case fastjson.TypeString:
		s, _ := c.StringBytes()
		if len(s) > w.lim.MaxStringLength {
			return &Error{Kind: ErrStringTooLong, Expected: fmt.Sprintf("at most %d bytes", w.lim.MaxStringLength), Got: fmt.Sprintf("%d bytes", len(s))}, nil
		}
		if hasControl(s) {
			return &Error{Kind: ErrSyntax, Expected: "a JSON string", Detail: "control characters must be escaped"}, nil
		}
	case fastjson.TypeNumber:
		if !validNumber(c.MarshalTo(w.scratch[:0])) {
			return &Error{Kind: ErrSyntax, Expected: "a JSON number", Got: "malformed number"}, nil
		}
	}
	return nil, nil
}

func hasControl(s []byte) bool {
	for _, c := range s {
		if c < 0x20 {
			return true
		}
	}
	return false
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

// Items calls f for every item of the document: each element of a root
// that is a JSON array, each other root as it is, with the root it belongs
// to. Items are numbered across the whole document. More than lim.MaxItems
// items is a payload error.
func (d *Document) Items(lim Limits, f func(item Node, root *Root)) *Error {
	lim = lim.WithDefaults()
	n := 0
	for ri := range d.Roots {
		r := &d.Roots[ri]
		if r.IsArray() {
			if n+r.Len() > lim.MaxItems {
				e := r.Err(ErrTooManyItems, fmt.Sprintf("at most %d items", lim.MaxItems))
				e.Got = fmt.Sprintf("%d", n+r.Len())
				return e
			}
			for i := range r.Len() {
				f(r.Index(i).AsItem(n), r)
				n++
			}
			continue
		}
		item := r.Node
		if d.NDJSON {
			item = item.AsItem(n)
		}
		f(item, r)
		n++
	}
	return nil
}
