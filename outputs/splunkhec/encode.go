package splunkhec

import (
	"fmt"
	"strconv"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/internal/jsonw"
	"github.com/auditpipe/auditpipe/outputs"
)

// encoder writes HEC event envelopes, one JSON object per event, which
// the event endpoint reads one after the other:
//
//	{"time":1764763200.123,"host":..,"source":..,"sourcetype":..,"index":..,
//	 "fields":{"label":"value"},"event":{<the event's JSON form>}}
//
// Members whose template gives "" are left out, so that Splunk applies
// the token's defaults.
type encoder struct {
	index, sourcetype, source, host outputs.Template
	fields                          []string
}

func newEncoder(c Config) (*encoder, error) {
	e := &encoder{fields: c.Fields}
	for _, t := range []struct {
		key, v string
		dst    *outputs.Template
	}{
		{"index", c.Index, &e.index}, {"sourcetype", c.Sourcetype, &e.sourcetype},
		{"source", c.Source, &e.source}, {"host", c.Host, &e.host},
	} {
		tpl, err := outputs.ParseTemplate(t.v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.key, err)
		}
		*t.dst = tpl
	}
	return e, nil
}

// invalidIndexError is an index template that gave a name Splunk refuses
// for one event: the event is dead-lettered without being sent, since
// HEC would reject the whole rest of the request at it (code 7).
type invalidIndexError struct{ name string }

func (e *invalidIndexError) Error() string {
	return fmt.Sprintf("index %q from the index template is not a Splunk index name (lower-case letters, digits, _ and -)", e.name)
}

// appendEvent appends ev's envelope to dst. On an error, which is
// permanent, dst is returned as it was.
func (e *encoder) appendEvent(dst []byte, ev *auditpipe.Event) ([]byte, error) {
	start := len(dst)
	dst = append(dst, `{"time":`...)
	dst = appendEpoch(dst, ev)
	dst = appendTemplate(dst, `,"host":`, e.host, ev)
	dst = appendTemplate(dst, `,"source":`, e.source, ev)
	dst = appendTemplate(dst, `,"sourcetype":`, e.sourcetype, ev)
	if !e.index.IsZero() {
		n := len(dst)
		dst = appendTemplate(dst, `,"index":`, e.index, ev)
		if len(dst) > n {
			// The name is between the quotes; an escaped one is invalid
			// anyway.
			name := dst[n+len(`,"index":"`) : len(dst)-1]
			if !validIndex(name) {
				err := outputs.Permanent(&invalidIndexError{string(name)})
				return dst[:start], err
			}
		}
	}
	if len(e.fields) > 0 {
		n := len(dst)
		dst = append(dst, `,"fields":{`...)
		empty := len(dst)
		for _, name := range e.fields {
			v, ok := ev.Labels[name]
			if !ok {
				continue
			}
			if len(dst) > empty {
				dst = append(dst, ',')
			}
			dst = jsonw.AppendString(dst, name)
			dst = append(dst, ':')
			dst = jsonw.AppendString(dst, v)
		}
		if len(dst) == empty {
			dst = dst[:n]
		} else {
			dst = append(dst, '}')
		}
	}
	dst = append(dst, `,"event":`...)
	dst = eventjson.Append(dst, ev)
	return append(dst, '}', '\n'), nil
}

// appendEpoch writes the event time as epoch seconds with milliseconds,
// the form HEC's time takes.
func appendEpoch(dst []byte, ev *auditpipe.Event) []byte {
	ms := ev.Time.UnixMilli()
	if ms < 0 {
		return strconv.AppendFloat(dst, float64(ms)/1000, 'f', 3, 64)
	}
	dst = strconv.AppendInt(dst, ms/1000, 10)
	frac := ms % 1000
	return append(dst, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}

// appendTemplate writes member and t's value for ev as a JSON string,
// or nothing when the value is empty. The value is written in place and
// escaped only when it needs to be, which it rarely does.
func appendTemplate(dst []byte, member string, t outputs.Template, ev *auditpipe.Event) []byte {
	if t.IsZero() {
		return dst
	}
	n := len(dst)
	dst = append(dst, member...)
	dst = append(dst, '"')
	v := len(dst)
	dst = t.Append(dst, ev)
	if len(dst) == v {
		return dst[:n]
	}
	for _, c := range dst[v:] {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			raw := string(dst[v:])
			dst = jsonw.AppendEscaped(dst[:v], raw)
			break
		}
	}
	return append(dst, '"')
}
