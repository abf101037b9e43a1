package auditpipe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/auditpipe/auditpipe/internal/jsonw"
	"math/bits"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// DecodeJSON decodes the JSON form of an event, as Event.AppendJSON
// writes it, into ev. It is the decoder for events that were already
// encoded once: the sidecar's queue records and what external transformer
// plugins send. It is written by hand because encoding/json's reflection
// costs several times more (see BenchmarkDecodeEvent in
// transformers/external).
//
// It is strict where the two could differ: it rejects unknown members, null
// values, invalid UTF-8, lone surrogates and numbers where encoding/json
// would be lenient or lossy, so that every event it accepts is one
// encoding/json decodes to the same value (FuzzDecodeEvent holds it to
// that). Member order, whitespace, escapes and repeated members (the last
// wins, merging objects as encoding/json does) are accepted.
func DecodeJSON(b []byte, ev *Event) error {
	// One copy of the whole event as a string: the values without escapes
	// (nearly all) are substrings of it, which costs one allocation per
	// event instead of one per field.
	d := decoder{b: b, s: string(b)}
	d.ws()
	if err := d.object(func(key []byte) error { return d.eventMember(key, ev) }); err != nil {
		return err
	}
	d.ws()
	if d.i != len(d.b) {
		return d.errorf("data after the event")
	}
	return nil
}

// MaxDecodeDepth bounds nesting inside details for DecodeJSON, below
// encoding/json's 10000.
const MaxDecodeDepth = 1000

type decoder struct {
	b     []byte
	s     string // b as a string
	i     int
	depth int
	// raw reports that the last string strBytes read held no escape: its
	// value is b[rawStart:d.i-1].
	raw      bool
	rawStart int
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("event JSON: offset %d: %s", d.i, fmt.Sprintf(format, args...))
}

func (d *decoder) ws() {
	if d.i < len(d.b) && d.b[d.i] > ' ' {
		return // AppendJSON writes no whitespace
	}
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) consume(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *decoder) peek() byte {
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

// object reads an object, calling member for each member with the
// decoder positioned at its value.
func (d *decoder) object(member func(key []byte) error) error {
	if !d.consume('{') {
		return d.errorf("expected an object")
	}
	d.ws()
	if d.consume('}') {
		return nil
	}
	for {
		d.ws()
		key, err := d.key()
		if err != nil {
			return err
		}
		d.ws()
		if !d.consume(':') {
			return d.errorf("expected ':'")
		}
		d.ws()
		if err := member(key); err != nil {
			return err
		}
		d.ws()
		if d.consume(',') {
			continue
		}
		if d.consume('}') {
			return nil
		}
		return d.errorf("expected ',' or '}'")
	}
}

func (d *decoder) unknown(key []byte) error {
	if len(key) > 64 {
		key = key[:64]
	}
	return d.errorf("unknown member %s", strconv.Quote(string(key)))
}

func (d *decoder) eventMember(key []byte, ev *Event) error {
	var err error
	switch string(key) {
	case "id":
		ev.ID, err = d.str()
	case "time":
		err = d.time(&ev.Time)
	case "observed_time":
		err = d.time(&ev.ObservedTime)
	case "source":
		err = d.object(func(k []byte) error { return d.sourceMember(k, &ev.Source) })
	case "action":
		ev.Action, err = d.str()
	case "schema_version":
		ev.SchemaVersion, err = d.enum(SchemaVersion)
	case "operation":
		var s string
		s, err = d.enum(operations...)
		ev.Operation = Operation(s)
	case "category":
		ev.Category, err = d.strings()
	case "outcome":
		var s string
		s, err = d.enum(outcomes...)
		ev.Outcome = Outcome(s)
	case "reason":
		ev.Reason, err = d.str()
	case "message":
		ev.Message, err = d.str()
	case "actor":
		err = d.object(func(k []byte) error { return d.actorMember(k, &ev.Actor) })
	case "resource":
		err = d.object(func(k []byte) error { return d.resourceMember(k, &ev.Resource) })
	case "tenant":
		err = d.object(func(k []byte) error { return d.tenantMember(k, &ev.Tenant) })
	case "client":
		err = d.object(func(k []byte) error { return d.clientMember(k, &ev.Client) })
	case "details":
		if d.peek() == 'n' {
			return d.errorf("details: null")
		}
		start := d.i
		if err = d.skip(); err == nil {
			ev.Details = append([]byte(nil), d.b[start:d.i]...)
		}
	case "labels":
		if ev.Labels == nil {
			ev.Labels = make(map[string]string)
		}
		err = d.object(func(k []byte) error {
			key := d.lastString(k)
			v, err := d.str()
			ev.Labels[key] = v
			return err
		})
	case "raw_sha256":
		ev.RawSHA256, err = d.str()
	case "integrity":
		if ev.Integrity == nil {
			ev.Integrity = new(Integrity)
		}
		err = d.object(func(k []byte) error { return d.integrityMember(k, ev.Integrity) })
	default:
		return d.unknown(key)
	}
	return err
}

func (d *decoder) sourceMember(key []byte, s *Source) (err error) {
	switch string(key) {
	case "type":
		s.Type, err = d.str()
	case "name":
		s.Name, err = d.str()
	case "format":
		s.Format, err = d.str()
	default:
		return d.unknown(key)
	}
	return err
}

func (d *decoder) actorMember(key []byte, a *Actor) (err error) {
	switch string(key) {
	case "type":
		var s string
		s, err = d.enum(actorTypes...)
		a.Type = ActorType(s)
	case "id":
		a.ID, err = d.str()
	case "uid":
		a.UID, err = d.str()
	case "name":
		a.Name, err = d.str()
	case "email":
		a.Email, err = d.str()
	case "provider":
		a.Provider, err = d.str()
	default:
		return d.unknown(key)
	}
	return err
}

func (d *decoder) resourceMember(key []byte, r *Resource) (err error) {
	switch string(key) {
	case "type":
		r.Type, err = d.str()
	case "id":
		r.ID, err = d.str()
	case "name":
		r.Name, err = d.str()
	case "namespace":
		r.Namespace, err = d.str()
	case "api_group":
		r.APIGroup, err = d.str()
	case "api_version":
		r.APIVersion, err = d.str()
	default:
		return d.unknown(key)
	}
	return err
}

func (d *decoder) tenantMember(key []byte, t *Tenant) (err error) {
	switch string(key) {
	case "account":
		t.Account, err = d.str()
	case "org":
		t.Org, err = d.str()
	case "project":
		t.Project, err = d.str()
	default:
		return d.unknown(key)
	}
	return err
}

func (d *decoder) clientMember(key []byte, c *Client) (err error) {
	switch string(key) {
	case "ip":
		c.IP, err = d.str()
	case "user_agent":
		c.UserAgent, err = d.str()
	default:
		return d.unknown(key)
	}
	return err
}

func (d *decoder) integrityMember(key []byte, in *Integrity) (err error) {
	switch string(key) {
	case "stream":
		in.Stream, err = d.str()
	case "seq":
		start := d.i
		if err = d.number(); err != nil {
			return err
		}
		in.Seq, err = strconv.ParseUint(string(d.b[start:d.i]), 10, 64)
		if err != nil {
			d.i = start
			return d.errorf("integrity.seq: want an unsigned integer")
		}
	case "prev_hash":
		in.PrevHash, err = d.str()
	case "hash":
		in.Hash, err = d.str()
	case "key_id":
		in.KeyID, err = d.str()
	case "signature":
		in.Signature, err = d.str()
	default:
		return d.unknown(key)
	}
	return err
}

// time decodes a string with time.Time's own UnmarshalJSON, which is what
// encoding/json calls: the same RFC 3339 strictness.
func (d *decoder) time(t *time.Time) error {
	start := d.i
	if _, err := d.strBytes(); err != nil {
		return err
	}
	if err := t.UnmarshalJSON(d.b[start:d.i]); err != nil {
		d.i = start
		return d.errorf("%v", err)
	}
	return nil
}

func (d *decoder) strings() ([]string, error) {
	if !d.consume('[') {
		return nil, d.errorf("expected an array of strings")
	}
	out := make([]string, 0, 2)
	d.ws()
	if d.consume(']') {
		return out, nil
	}
	for {
		d.ws()
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		d.ws()
		if d.consume(',') {
			continue
		}
		if d.consume(']') {
			return out, nil
		}
		return nil, d.errorf("expected ',' or ']'")
	}
}

// key reads a member name; it aliases the input unless it holds escapes.
func (d *decoder) key() ([]byte, error) { return d.strBytes() }

// lastString is b, the value strBytes just returned, as a string: a
// substring of the input when it held no escape.
func (d *decoder) lastString(b []byte) string {
	if d.raw {
		return d.s[d.rawStart : d.rawStart+len(b)]
	}
	return string(b)
}

func (d *decoder) str() (string, error) {
	b, err := d.strBytes()
	switch {
	case err != nil:
		return "", err
	case d.raw:
		return d.s[d.rawStart : d.rawStart+len(b)], nil
	}
	return string(b), nil
}

// The values of the enumerations, which enum returns without allocating.
var (
	operations = strs(Operations())
	outcomes   = strs(Outcomes())
	actorTypes = strs(ActorTypes())
)

func strs[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// enum is str for a field that nearly always holds one of known: the
// known value is returned instead of a copy. Any other value is kept
// (Validate judges it).
func (d *decoder) enum(known ...string) (string, error) {
	b, err := d.strBytes()
	if err != nil {
		return "", err
	}
	for _, k := range known {
		if string(b) == k {
			return k, nil
		}
	}
	if d.raw {
		return d.s[d.rawStart : d.rawStart+len(b)], nil
	}
	return string(b), nil
}

// strBytes reads a string literal and returns its value: a slice of the
// input when it holds no escape, else a new buffer.
func (d *decoder) strBytes() ([]byte, error) {
	if !d.consume('"') {
		return nil, d.errorf("expected a string")
	}
	start := d.i
	d.raw, d.rawStart = false, start
	ascii := true
	b := d.b
	for d.i < len(b) {
		// Eight plain bytes at a time (no quote, backslash, control or
		// non-ASCII byte), then one at a time up to the special one.
		i := d.i
		for i+8 <= len(b) {
			m := jsonw.Special8(binary.LittleEndian.Uint64(b[i:]))
			if m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i+8 > len(b) {
			for i < len(b) && b[i] >= 0x20 && b[i] < utf8.RuneSelf && b[i] != '"' && b[i] != '\\' {
				i++
			}
		}
		if d.i = i; i == len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			if !ascii && !utf8.Valid(s) {
				d.i = start
				return nil, d.errorf("invalid UTF-8 in string")
			}
			d.raw = true
			return s, nil
		case c == '\\':
			return d.unescape(start)
		case c < 0x20:
			return nil, d.errorf("control character in string")
		case c >= utf8.RuneSelf:
			ascii = false
		}
		d.i++
	}
	return nil, d.errorf("unterminated string")
}

// unescape finishes a string literal that holds escapes; d.i is at the
// first backslash, start just after the opening quote.
func (d *decoder) unescape(start int) ([]byte, error) {
	out := make([]byte, 0, d.i-start+16)
	out = append(out, d.b[start:d.i]...)
	if !utf8.Valid(out) {
		return nil, d.errorf("invalid UTF-8 in string")
	}
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return out, nil
		case c < 0x20:
			return nil, d.errorf("control character in string")
		case c == '\\':
			if d.i+1 >= len(d.b) {
				return nil, d.errorf("unterminated string")
			}
			e := d.b[d.i+1]
			d.i += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := d.hex4()
				if !ok {
					return nil, d.errorf("invalid \\u escape")
				}
				if utf16.IsSurrogate(r) {
					if d.i+1 < len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
						d.i += 2
						r2, ok := d.hex4()
						if r = utf16.DecodeRune(r, r2); ok && r != utf8.RuneError {
							out = utf8.AppendRune(out, r)
							continue
						}
					}
					return nil, d.errorf("lone surrogate in \\u escape")
				}
				out = utf8.AppendRune(out, r)
			default:
				d.i -= 2
				return nil, d.errorf("invalid escape")
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			d.i++
		default:
			r, n := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && n <= 1 {
				return nil, d.errorf("invalid UTF-8 in string")
			}
			out = append(out, d.b[d.i:d.i+n]...)
			d.i += n
		}
	}
	return nil, d.errorf("unterminated string")
}

func (d *decoder) hex4() (rune, bool) {
	if d.i+4 > len(d.b) {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.i += 4
	return r, true
}

// number checks a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *decoder) number() error {
	d.consume('-')
	switch c := d.peek(); {
	case c == '0':
		d.i++
	case c >= '1' && c <= '9':
		d.digits()
	default:
		return d.errorf("expected a number")
	}
	if d.consume('.') {
		if d.digits() == 0 {
			return d.errorf("expected a digit")
		}
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		d.i++
		if c := d.peek(); c == '+' || c == '-' {
			d.i++
		}
		if d.digits() == 0 {
			return d.errorf("expected a digit")
		}
	}
	return nil
}

func (d *decoder) digits() int {
	n := 0
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
		n++
	}
	return n
}

var errTooDeep = errors.New("nested too deep")

// skip checks one JSON value of any kind and moves past it.
func (d *decoder) skip() error {
	switch c := d.peek(); {
	case c == '"':
		_, err := d.strBytes()
		return err
	case c == '{' || c == '[':
		if d.depth++; d.depth > MaxDecodeDepth {
			return d.errorf("%v", errTooDeep)
		}
		defer func() { d.depth-- }()
		if c == '{' {
			return d.object(func([]byte) error { return d.skip() })
		}
		d.i++
		d.ws()
		if d.consume(']') {
			return nil
		}
		for {
			d.ws()
			if err := d.skip(); err != nil {
				return err
			}
			d.ws()
			if d.consume(',') {
				continue
			}
			if d.consume(']') {
				return nil
			}
			return d.errorf("expected ',' or ']'")
		}
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	}
	return d.errorf("expected a JSON value")
}

func (d *decoder) literal(lit string) error {
	if len(d.b)-d.i >= len(lit) && string(d.b[d.i:d.i+len(lit)]) == lit {
		d.i += len(lit)
		return nil
	}
	return d.errorf("expected %s", lit)
}

// validJSON reports whether b is one well-formed JSON value with valid
// UTF-8 and nothing after it.
func validJSON(b []byte) bool {
	d := decoder{b: b}
	d.ws()
	if d.skip() != nil {
		return false
	}
	d.ws()
	return d.i == len(b)
}
