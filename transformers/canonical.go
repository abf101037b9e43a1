package transformers

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/auditpipe/auditpipe"
	"github.com/valyala/fastjson"
)

// errDuplicateKey is returned by the canonical encoder: RFC 8785 forbids
// duplicate member names, and accepting them would let two parties read the
// same payload differently.
var errDuplicateKey = errors.New("duplicate object member name")

type member struct {
	k []byte
	v *fastjson.Value
}

// encoder carries the state of one canonical encoding. Object members are
// sorted on a shared stack instead of a slice per object.
type encoder struct {
	stack []member
	// red, in redact mode, replaces values under secret-looking names.
	red *Redactor
	// watch, in id mode, only notices secret-looking names (secrets
	// counts them) so clean top-level subtrees can be reused as details.
	watch   *Redactor
	secrets int
	depth   int
	spans   []span
}

type span struct {
	v          *fastjson.Value
	start, end int
}

type encoded struct {
	v *fastjson.Value
	b []byte
}

var encoderPool = sync.Pool{New: func() any { return &encoder{stack: make([]member, 0, 64)} }}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// AppendCanonical appends the RFC 8785 (JCS) encoding of v to dst. With a
// non-nil red, values under secret-looking member names are replaced by
// Redacted. It is the fast counterpart of auditpipe.Canonicalize, which the
// tests hold it to.
func AppendCanonical(dst []byte, v *fastjson.Value, red *Redactor) ([]byte, error) {
	e := encoderPool.Get().(*encoder)
	e.red = red
	dst, err := e.append(dst, v)
	e.release()
	return dst, err
}

func (e *encoder) release() {
	clear(e.stack)
	e.stack = e.stack[:0]
	clear(e.spans)
	e.spans = e.spans[:0]
	e.red, e.watch, e.secrets, e.depth = nil, nil, 0, 0
	encoderPool.Put(e)
}

func (e *encoder) append(dst []byte, v *fastjson.Value) ([]byte, error) {
	switch v.Type() {
	case fastjson.TypeObject:
		e.depth++
		o, _ := v.Object()
		base := len(e.stack)
		o.Visit(func(k []byte, v *fastjson.Value) { e.stack = append(e.stack, member{k, v}) })
		top := len(e.stack)
		ms := e.stack[base:top]
		// Producers that sort their keys (Go maps, most SDKs) are the
		// common case; checking costs n-1 comparisons, sorting many more.
		if !slices.IsSortedFunc(ms, compareMembers) {
			slices.SortFunc(ms, compareMembers)
		}
		pairSecret := false
		if e.red != nil {
			pairSecret = namesSecret(ms, e.red)
		} else if e.watch != nil && namesSecret(ms, e.watch) {
			e.secrets++
		}
		dst = append(dst, '{')
		var err error
		for i := base; i < top; i++ {
			// Re-read through e.stack: nested objects may have grown
			// (and moved) it.
			m := e.stack[i]
			if i > base {
				if bytes.Equal(e.stack[i-1].k, m.k) {
					err = errDuplicateKey
					break
				}
				dst = append(dst, ',')
			}
			dst = appendCanonicalString(dst, m.k)
			dst = append(dst, ':')
			if e.red.Secret(m.k) || pairSecret && string(m.k) == "value" {
				dst = append(dst, `"`+Redacted+`"`...)
				continue
			}
			if e.watch.Secret(m.k) {
				e.secrets++
			}
			start, secrets := len(dst), e.secrets
			if dst, err = e.append(dst, m.v); err != nil {
				break
			}
			if e.depth == 1 && e.watch != nil && e.secrets == secrets {
				e.spans = append(e.spans, span{m.v, start, len(dst)})
			}
		}
		e.stack = e.stack[:base]
		e.depth--
		if err != nil {
			return dst, err
		}
		return append(dst, '}'), nil
	case fastjson.TypeArray:
		a, _ := v.Array()
		dst = append(dst, '[')
		for i, el := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = e.append(dst, el); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case fastjson.TypeString:
		s, _ := v.StringBytes()
		return appendCanonicalString(dst, s), nil
	case fastjson.TypeNumber:
		return appendCanonicalNumber(dst, v)
	case fastjson.TypeTrue:
		return append(dst, "true"...), nil
	case fastjson.TypeFalse:
		return append(dst, "false"...), nil
	default:
		return append(dst, "null"...), nil
	}
}

// namesSecret reports a name/value pair whose name is secret-looking, as in
// Kubernetes env vars ({"name": "DB_PASSWORD", "value": "..."}) and most
// config APIs: the sibling "value" member is then redacted too.
func namesSecret(ms []member, red *Redactor) bool {
	hasValue := false
	for _, m := range ms {
		if string(m.k) == "value" {
			hasValue = true
			break
		}
	}
	if !hasValue {
		return false
	}
	for _, m := range ms {
		switch string(m.k) {
		case "name", "id", "key":
			if s, err := m.v.StringBytes(); err == nil && red.Secret(s) {
				return true
			}
		}
	}
	return false
}

// CanonicalID is the id of a source event without one of its own: the
// SHA-256 of its canonical JSON (auditpipe.IDFromCanonical).
func CanonicalID(n Node) (string, *Error) {
	c, err := EncodeCanonical(n, nil)
	if err != nil {
		return "", err
	}
	defer c.Release()
	return c.ID(), nil
}

// Canonical is the canonical encoding of one source item, made once and
// used twice: hashed into the id, and sliced into the details wherever a
// top-level member's value holds no secret-looking name (the bulk of a
// Spacelift event is its data, which is also its details). Release it
// after use.
type Canonical struct {
	buf   *[]byte
	b     []byte
	clean []encoded
}

// EncodeCanonical encodes n canonically, noting which top-level members
// red would leave untouched.
func EncodeCanonical(n Node, red *Redactor) (*Canonical, *Error) {
	e := encoderPool.Get().(*encoder)
	e.watch = red
	bp := bufPool.Get().(*[]byte)
	b, err := e.append((*bp)[:0], n.v)
	c := &Canonical{buf: bp, b: b}
	if err == nil && red != nil {
		c.clean = make([]encoded, 0, len(e.spans))
		for _, sp := range e.spans {
			c.clean = append(c.clean, encoded{sp.v, b[sp.start:sp.end:sp.end]})
		}
	}
	e.release()
	if err != nil {
		c.Release()
		return nil, locate(n, err)
	}
	return c, nil
}

// Bytes is the canonical encoding; valid until Release.
func (c *Canonical) Bytes() []byte { return c.b }

// ID is the id derived from the encoding (auditpipe.IDFromCanonical).
func (c *Canonical) ID() string { return auditpipe.IDFromCanonical(c.b) }

// Release returns the buffer to its pool.
func (c *Canonical) Release() {
	if c == nil || c.buf == nil {
		return
	}
	*c.buf = c.b[:0]
	putBuf(c.buf)
	c.buf, c.b, c.clean = nil, nil, nil
}

func compareMembers(a, b member) int { return compareUTF16(a.k, b.k) }

// compareUTF16 orders member names by their UTF-16 code units, as RFC 8785
// requires. UTF-8 byte order equals code point order, which differs from
// UTF-16 order only between supplementary characters (4-byte UTF-8) and
// U+E000..U+FFFF (3-byte UTF-8 starting at 0xEE), so the slow path runs only
// when such bytes are present.
func compareUTF16(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	if i == len(a) || i == len(b) {
		return len(a) - len(b)
	}
	if a[i] < 0xEE || b[i] < 0xEE {
		return int(a[i]) - int(b[i])
	}
	// Back up to the start of the differing rune and compare as UTF-16.
	for i > 0 && !utf8.RuneStart(a[i]) {
		i--
	}
	ra, _ := utf8.DecodeRune(a[i:])
	rb, _ := utf8.DecodeRune(b[i:])
	ua, ub := utf16Unit(ra), utf16Unit(rb)
	if ua != ub {
		return int(ua) - int(ub)
	}
	return compareUTF16(a[i+utf8.RuneLen(ra):], b[i+utf8.RuneLen(rb):])
}

func utf16Unit(r rune) uint16 {
	if r >= 0x10000 {
		hi, _ := utf16.EncodeRune(r)
		return uint16(hi)
	}
	return uint16(r)
}

const hexDigits = "0123456789abcdef"

// needsEscape marks the bytes RFC 8785 escapes: '"', '\\' and controls.
var needsEscape = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// appendCanonicalString writes s with the minimal escaping of RFC 8785:
// only '"', '\\' and control characters are escaped, the latter with the
// short forms where JSON has them.
func appendCanonicalString(dst, s []byte) []byte {
	dst = append(dst, '"')
	// The bytes to escape are exactly the ones prescan looks for.
	k := indexSpecial(s)
	if k < 0 {
		dst = append(dst, s...)
		return append(dst, '"')
	}
	start := 0
	for i := k; i < len(s); i++ {
		c := s[i]
		if !needsEscape[c] {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendCanonicalNumber writes a number in the ECMAScript form RFC 8785
// mandates. Small integers, by far the common case, are already in that form
// and are copied without parsing.
func appendCanonicalNumber(dst []byte, v *fastjson.Value) ([]byte, error) {
	start := len(dst)
	dst = v.MarshalTo(dst)
	raw := dst[start:]
	if isPlainInt(raw) {
		if len(raw) == 2 && raw[0] == '-' && raw[1] == '0' {
			return append(dst[:start], '0'), nil
		}
		return dst, nil
	}
	if !validNumber(raw) {
		return dst[:start], &Error{Kind: ErrSyntax, Expected: "a JSON number", Got: "malformed number"}
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(f, 0) {
		return dst[:start], &Error{Kind: ErrValue, Expected: "a number representable as an IEEE 754 double", Got: "out of range"}
	}
	return AppendES6Number(dst[:start], f), nil
}

// isPlainInt reports an integer of at most 15 digits without leading zeros:
// exactly representable as a double and printed the same by ECMAScript.
func isPlainInt(b []byte) bool {
	i := 0
	if len(b) > 0 && b[0] == '-' {
		i = 1
	}
	n := len(b) - i
	if n == 0 || n > 15 || (b[i] == '0' && n > 1) {
		return false
	}
	for ; i < len(b); i++ {
		if b[i] < '0' || b[i] > '9' {
			return false
		}
	}
	return true
}

// AppendES6Number formats f as ECMAScript's Number.prototype.toString does
// (shortest round-trip digits; exponent form below 1e-6 and from 1e21).
func AppendES6Number(dst []byte, f float64) []byte {
	if f == 0 {
		return append(dst, '0')
	}
	abs := math.Abs(f)
	fmt := byte('f')
	if abs < 1e-6 || abs >= 1e21 {
		fmt = 'e'
	}
	dst = strconv.AppendFloat(dst, f, fmt, -1, 64)
	if fmt == 'e' {
		// Go writes e-07 and e+21; ECMAScript writes e-7 and e+21.
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// validNumber checks the JSON number grammar, which fastjson does not
// enforce (it accepts NaN, Inf and "1.2.3").
func validNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == j {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == j {
			return false
		}
	}
	return i == len(b)
}

// Canonical encodes item n of this root canonically (EncodeCanonical) or,
// when n is the whole root and its payload already was canonical but for
// whitespace (see scanResult), takes the payload's own bytes, compacted if
// need be: nothing is encoded, and for a compact payload the raw hash and
// the id are one hash.
func (r *Root) Canonical(n Node, red *Redactor) (*Canonical, *Error) {
	b := r.CanonicalBytes()
	if n.v != r.v || b == nil {
		return EncodeCanonical(n, red)
	}
	spans := r.scan.members[:r.scan.nMembers] // CanonicalBytes implies a scan
	c := &Canonical{b: b}
	if red == nil || len(spans) == 0 || r.scan.red != red {
		return c, nil
	}
	o, err := r.v.Object()
	if err != nil || o.Len() != len(spans) {
		return c, nil
	}
	c.clean = make([]encoded, 0, len(spans))
	i := 0
	// The tree keeps members in payload order, as the scan recorded them.
	o.Visit(func(_ []byte, v *fastjson.Value) {
		if m := spans[i]; !m.dirty {
			c.clean = append(c.clean, encoded{v, c.b[m.valStart:m.valEnd:m.valEnd]})
		}
		i++
	})
	return c, nil
}
