package jsontree

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strconv"
	"sync"

	"github.com/auditpipe/auditpipe/internal/jsonsyntax"
	"github.com/auditpipe/auditpipe/internal/jsonw"
	"github.com/auditpipe/auditpipe/transformers/internal/jsonscan"
	"github.com/auditpipe/auditpipe/transformers/internal/redact"
)

// ErrDuplicateKey is returned by the canonical encoder: RFC 8785 forbids
// duplicate member names, and accepting them would let two parties read the
// same payload differently.
var ErrDuplicateKey = errors.New("duplicate object member name")

// Redacted replaces every redacted value (transformers.Redacted).
const Redacted = "[REDACTED]"

type member struct {
	k []byte
	v *Value
}

// encoder carries the state of one canonical encoding. Object members are
// sorted on a shared stack instead of a slice per object.
type encoder struct {
	stack []member
	// red, in redact mode, replaces values under secret-looking names.
	red *redact.Matcher
	// watch, in id mode, only notices secret-looking names (secrets
	// counts them) so clean top-level subtrees can be reused as details.
	watch   *redact.Matcher
	secrets int
	depth   int
	spans   []span
}

type span struct {
	v          *Value
	start, end int
}

// Encoded is a top-level member's value and its canonical encoding, with
// nothing in it to redact.
type Encoded struct {
	V *Value
	B []byte
}

var encoderPool = sync.Pool{New: func() any { return &encoder{stack: make([]member, 0, 64)} }}

// AppendCanonical appends the RFC 8785 (JCS) encoding of v to dst. With a
// non-nil red, values under secret-looking member names are replaced by
// Redacted. It fails with ErrDuplicateKey, or a *jsonscan.Failure for a
// number JSON text cannot hold exactly.
func AppendCanonical(dst []byte, v *Value, red *redact.Matcher) ([]byte, error) {
	e := encoderPool.Get().(*encoder)
	e.red = red
	dst, err := e.append(dst, v)
	e.release()
	return dst, err
}

// AppendWatched is AppendCanonical without redaction that also notes, with
// a non-nil watch, the top-level members whose values hold no name watch
// would redact: clean are their encodings (views into the result).
func AppendWatched(dst []byte, v *Value, watch *redact.Matcher) (_ []byte, clean []Encoded, err error) {
	e := encoderPool.Get().(*encoder)
	e.watch = watch
	dst, err = e.append(dst, v)
	if err == nil && watch != nil {
		clean = make([]Encoded, 0, len(e.spans))
		for _, sp := range e.spans {
			clean = append(clean, Encoded{sp.v, dst[sp.start:sp.end:sp.end]})
		}
	}
	e.release()
	return dst, clean, err
}

func (e *encoder) release() {
	clear(e.stack)
	e.stack = e.stack[:0]
	clear(e.spans)
	e.spans = e.spans[:0]
	e.red, e.watch, e.secrets, e.depth = nil, nil, 0, 0
	encoderPool.Put(e)
}

func (e *encoder) append(dst []byte, v *Value) ([]byte, error) {
	switch v.Kind() {
	case Object:
		return e.appendObject(dst, v)
	case Array:
		dst = append(dst, '[')
		for i, el := range v.Elements() {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = e.append(dst, el); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case String:
		return AppendString(dst, v.StringBytes()), nil
	case Number:
		return appendNumber(dst, v)
	case True:
		return append(dst, "true"...), nil
	case False:
		return append(dst, "false"...), nil
	default:
		return append(dst, "null"...), nil
	}
}

func (e *encoder) appendObject(dst []byte, v *Value) ([]byte, error) {
	e.depth++
	base := len(e.stack)
	v.Visit(func(k []byte, v *Value) { e.stack = append(e.stack, member{k, v}) })
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
				err = ErrDuplicateKey
				break
			}
			dst = append(dst, ',')
		}
		dst = AppendString(dst, m.k)
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
}

// namesSecret reports a name/value pair whose name is secret-looking, as in
// Kubernetes env vars ({"name": "DB_PASSWORD", "value": "..."}) and most
// config APIs: the sibling "value" member is then redacted too.
func namesSecret(ms []member, red *redact.Matcher) bool {
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
			if m.v.Kind() == String && red.Secret(m.v.StringBytes()) {
				return true
			}
		}
	}
	return false
}

func compareMembers(a, b member) int { return jsonscan.CompareUTF16(a.k, b.k) }

// needsEscape marks the bytes RFC 8785 escapes: '"', '\\' and controls.
var needsEscape = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// AppendString writes s as a JSON string with the minimal escaping of
// RFC 8785: only '"', '\\' and control characters are escaped, the latter
// with the short forms where JSON has them.
func AppendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	// The bytes to escape are exactly the ones the scan looks for.
	k := jsonscan.IndexSpecial(s)
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
		dst = jsonw.AppendEscapedASCII(dst, c)
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendNumber writes a number in the ECMAScript form RFC 8785 mandates.
// Small integers, by far the common case, are already in that form and
// are copied without parsing.
func appendNumber(dst []byte, v *Value) ([]byte, error) {
	start := len(dst)
	dst = v.AppendText(dst)
	raw := dst[start:]
	if jsonscan.IsPlainInt(raw) {
		if len(raw) == 2 && raw[0] == '-' && raw[1] == '0' {
			return append(dst[:start], '0'), nil
		}
		return dst, nil
	}
	if !jsonsyntax.ValidNumber(raw) {
		return dst[:start], &jsonscan.Failure{Fault: jsonscan.Syntax, Expected: "a JSON number", Got: "malformed number"}
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(f, 0) {
		return dst[:start], &jsonscan.Failure{Fault: jsonscan.Value, Expected: "a number representable as an IEEE 754 double", Got: "out of range"}
	}
	return AppendES6Number(dst[:start], f), nil
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
