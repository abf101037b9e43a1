package eventjson

import (
	"fmt"
	"strconv"
	"time"
	"unsafe"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/internal/jsonsyntax"
)

// Decode decodes the JSON form of an event, as Append writes it, into ev.
// It is the decoder for events that were already encoded once: the
// sidecar's queue records and what external transformer plugins send. It
// is written by hand because encoding/json's reflection costs several
// times more (see BenchmarkDecodeEvent).
//
// It is strict where the two could differ: it rejects unknown members, null
// values, invalid UTF-8, lone surrogates and numbers where encoding/json
// would be lenient or lossy, so that every event it accepts is one
// encoding/json decodes to the same value (FuzzDecodeEvent holds it to
// that). Member order, whitespace, escapes and repeated members (the last
// wins, merging objects as encoding/json does) are accepted.
func Decode(b []byte, ev *auditpipe.Event) error {
	// One copy of the whole event as a string: the values without escapes
	// (nearly all) are substrings of it, which costs one allocation per
	// event instead of one per field.
	return decode(decoder{b: b, s: string(b)}, ev)
}

// DecodeShared is Decode without copies: the event's strings and details
// refer to b, which must not change while the event is in use. It is for
// bytes nobody writes again, such as the sidecar's queue records, which
// are fresh memory for each batch read.
func DecodeShared(b []byte, ev *auditpipe.Event) error {
	if len(b) == 0 {
		return Decode(b, ev)
	}
	return decode(decoder{b: b, s: unsafe.String(unsafe.SliceData(b), len(b)), shared: true}, ev)
}

func decode(d decoder, ev *auditpipe.Event) error {
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

// MaxDecodeDepth bounds nesting inside details for Decode: the schema's
// own bound, which Event.Validate applies too.
const MaxDecodeDepth = auditpipe.MaxDetailsDepth

type decoder struct {
	b []byte
	s string // b as a string
	i int
	// raw reports that the last string strBytes read held no escape: its
	// value is b[rawStart:d.i-1].
	raw      bool
	rawStart int
	// shared: s is b itself (DecodeShared), so details need no copy.
	shared bool
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("event JSON: offset %d: %s", d.i, fmt.Sprintf(format, args...))
}

func (d *decoder) ws() {
	if d.i < len(d.b) && d.b[d.i] > ' ' {
		return // Append writes no whitespace
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

func (d *decoder) eventMember(key []byte, ev *auditpipe.Event) error {
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
		ev.SchemaVersion, err = d.enum(auditpipe.SchemaVersion)
	case "operation":
		var s string
		s, err = d.enum(operations...)
		ev.Operation = auditpipe.Operation(s)
	case "category":
		ev.Category, err = d.strings()
	case "outcome":
		var s string
		s, err = d.enum(outcomes...)
		ev.Outcome = auditpipe.Outcome(s)
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
		n, p := jsonsyntax.Skip(d.b[d.i:], MaxDecodeDepth)
		if p != jsonsyntax.None {
			d.i += n
			return d.errorf("%v", p)
		}
		if d.shared {
			ev.Details = d.b[d.i : d.i+n : d.i+n]
		} else {
			ev.Details = append([]byte(nil), d.b[d.i:d.i+n]...)
		}
		d.i += n
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
			ev.Integrity = new(auditpipe.Integrity)
		}
		err = d.object(func(k []byte) error { return d.integrityMember(k, ev.Integrity) })
	default:
		return d.unknown(key)
	}
	return err
}

func (d *decoder) sourceMember(key []byte, s *auditpipe.Source) (err error) {
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

func (d *decoder) actorMember(key []byte, a *auditpipe.Actor) (err error) {
	switch string(key) {
	case "type":
		var s string
		s, err = d.enum(actorTypes...)
		a.Type = auditpipe.ActorType(s)
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

func (d *decoder) resourceMember(key []byte, r *auditpipe.Resource) (err error) {
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

func (d *decoder) tenantMember(key []byte, t *auditpipe.Tenant) (err error) {
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

func (d *decoder) clientMember(key []byte, c *auditpipe.Client) (err error) {
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

func (d *decoder) integrityMember(key []byte, in *auditpipe.Integrity) (err error) {
	switch string(key) {
	case "stream":
		in.Stream, err = d.str()
	case "seq":
		n, p := jsonsyntax.Number(d.b[d.i:])
		if p != jsonsyntax.None {
			d.i += n
			return d.errorf("%v", p)
		}
		in.Seq, err = strconv.ParseUint(string(d.b[d.i:d.i+n]), 10, 64)
		if err != nil {
			return d.errorf("integrity.seq: want an unsigned integer")
		}
		d.i += n
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
	operations = strs(auditpipe.Operations())
	outcomes   = strs(auditpipe.Outcomes())
	actorTypes = strs(auditpipe.ActorTypes())
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
// (Event.Validate judges it).
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
	n, escaped, p := jsonsyntax.String(d.b[start:])
	if p != jsonsyntax.None {
		d.i = start + n
		return nil, d.errorf("%v", p)
	}
	d.i = start + n + 1
	raw := d.b[start : start+n]
	if d.raw, d.rawStart = !escaped, start; d.raw {
		return raw, nil
	}
	// An escape is never shorter than what it stands for.
	return jsonsyntax.AppendUnescaped(make([]byte, 0, n), raw), nil
}
