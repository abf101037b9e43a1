package transformers

import (
	"sync"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/transformers/internal/jsonscan"
	"github.com/auditpipe/auditpipe/transformers/internal/jsontree"
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// AppendCanonical appends the RFC 8785 (JCS) encoding of n to dst. With a
// non-nil red, values under secret-looking member names are replaced by
// Redacted. It is the fast counterpart of auditpipe.Canonicalize, which the
// tests hold it to. A duplicate member name, or a number JSON text cannot
// hold exactly, is an error.
func AppendCanonical(dst []byte, n Node, red *Redactor) ([]byte, error) {
	dst, err := jsontree.AppendCanonical(dst, n.v, red.matcher())
	return dst, encoderError(err)
}

// AppendCanonicalJSON appends the RFC 8785 (JCS) encoding of JSON text to
// dst, as AppendCanonical encodes a document: for a caller that needs the
// id a transformer would derive from text it holds. The text is parsed as
// leniently as encoding/json reads it, without the limits of Decode.
func AppendCanonicalJSON(dst, text []byte) ([]byte, error) {
	p := parserPool.Get().(*jsontree.Parser)
	defer parserPool.Put(p)
	v, err := jsontree.Parse(p, text)
	if err != nil {
		return dst, err
	}
	dst, err = jsontree.AppendCanonical(dst, v, nil)
	return dst, encoderError(err)
}

var parserPool = sync.Pool{New: func() any { return new(jsontree.Parser) }}

// encoderError is an encoder's failure as callers have always had it: a
// typed *Error without a location, or the duplicate-name error as is.
func encoderError(err error) error {
	if f, ok := err.(*jsonscan.Failure); ok {
		return &Error{Kind: faultKind(f.Fault), Expected: f.Expected, Got: f.Got, Detail: f.Detail}
	}
	return err
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
	clean []jsontree.Encoded
}

// EncodeCanonical encodes n canonically, noting which top-level members
// red would leave untouched.
func EncodeCanonical(n Node, red *Redactor) (*Canonical, *Error) {
	bp := bufPool.Get().(*[]byte)
	b, clean, err := jsontree.AppendWatched((*bp)[:0], n.v, red.matcher())
	c := &Canonical{buf: bp, b: b, clean: clean}
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

// Canonical encodes item n of this root canonically (EncodeCanonical) or,
// when n is the whole root and its payload already was canonical but for
// whitespace, takes the payload's own bytes,
// compacted if need be: nothing is encoded, and for a compact payload the
// raw hash and the id are one hash.
func (r *Root) Canonical(n Node, red *Redactor) (*Canonical, *Error) {
	b := r.CanonicalBytes()
	if n.v != r.v || b == nil {
		return EncodeCanonical(n, red)
	}
	spans := r.scan.Members[:r.scan.NMembers] // CanonicalBytes implies a scan
	c := &Canonical{b: b}
	if red == nil || len(spans) == 0 || r.scan.Red != red.matcher() {
		return c, nil
	}
	if !r.Node.IsObject() || r.v.NumMembers() != len(spans) {
		return c, nil
	}
	c.clean = make([]jsontree.Encoded, 0, len(spans))
	i := 0
	// The tree keeps members in payload order, as the scan recorded them.
	r.v.Visit(func(_ []byte, v *jsontree.Value) {
		if m := spans[i]; !m.Dirty {
			c.clean = append(c.clean, jsontree.Encoded{V: v, B: c.b[m.ValStart:m.ValEnd:m.ValEnd]})
		}
		i++
	})
	return c, nil
}
