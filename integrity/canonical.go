package integrity

import (
	"slices"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/internal/jsonw"
)

// AppendCanonical appends the RFC 8785 (JCS) canonical JSON of ev without
// its integrity block: what an event's hash covers. It writes the schema's
// members in their sorted order directly, so only details (JSON text from
// the transformer or the destination) needs the general canonicalizer,
// and not even that when it is canonical already, as the built-in
// transformers write it. The result is byte for byte
// auditpipe.Canonicalize of the event's JSON with integrity removed
// (TestCanonicalMatchesReference).
func AppendCanonical(dst []byte, ev *auditpipe.Event) ([]byte, error) {
	dst = append(dst, `{"action":`...)
	dst = jsonw.AppendCanonicalString(dst, ev.Action)
	if ev.Actor != (auditpipe.Actor{}) {
		a := &ev.Actor
		dst = append(dst, `,"actor":`...)
		dst = appendMembers(dst, "email", a.Email, "id", a.ID, "name", a.Name, "provider", a.Provider,
			"type", string(a.Type), "uid", a.UID)
	}
	if len(ev.Category) > 0 {
		dst = append(dst, `,"category":[`...)
		for i, c := range ev.Category {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jsonw.AppendCanonicalString(dst, c)
		}
		dst = append(dst, ']')
	}
	if ev.Client != (auditpipe.Client{}) {
		dst = append(dst, `,"client":`...)
		dst = appendMembers(dst, "ip", ev.Client.IP, "user_agent", ev.Client.UserAgent)
	}
	if len(ev.Details) > 0 {
		dst = append(dst, `,"details":`...)
		if canonical(ev.Details) {
			dst = append(dst, ev.Details...)
		} else {
			c, err := auditpipe.Canonicalize(ev.Details)
			if err != nil {
				return dst, err
			}
			dst = append(dst, c...)
		}
	}
	dst = append(dst, `,"id":`...)
	dst = jsonw.AppendCanonicalString(dst, ev.ID)
	if len(ev.Labels) > 0 {
		dst = append(dst, `,"labels":{`...)
		keys := make([]string, 0, len(ev.Labels))
		for k := range ev.Labels {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, compareUTF16)
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jsonw.AppendCanonicalString(dst, k)
			dst = append(dst, ':')
			dst = jsonw.AppendCanonicalString(dst, ev.Labels[k])
		}
		dst = append(dst, '}')
	}
	if ev.Message != "" {
		dst = append(dst, `,"message":`...)
		dst = jsonw.AppendCanonicalString(dst, ev.Message)
	}
	if !ev.ObservedTime.IsZero() {
		dst = append(dst, `,"observed_time":`...)
		dst = appendTime(dst, ev.ObservedTime)
	}
	dst = append(dst, `,"operation":`...)
	dst = jsonw.AppendCanonicalString(dst, string(ev.Operation))
	dst = append(dst, `,"outcome":`...)
	dst = jsonw.AppendCanonicalString(dst, string(ev.Outcome))
	if ev.RawSHA256 != "" {
		dst = append(dst, `,"raw_sha256":`...)
		dst = jsonw.AppendCanonicalString(dst, ev.RawSHA256)
	}
	if ev.Reason != "" {
		dst = append(dst, `,"reason":`...)
		dst = jsonw.AppendCanonicalString(dst, ev.Reason)
	}
	if r := &ev.Resource; *r != (auditpipe.Resource{}) {
		dst = append(dst, `,"resource":`...)
		dst = appendMembers(dst, "api_group", r.APIGroup, "api_version", r.APIVersion, "id", r.ID,
			"name", r.Name, "namespace", r.Namespace, "type", r.Type)
	}
	dst = append(dst, `,"schema_version":`...)
	dst = jsonw.AppendCanonicalString(dst, ev.SchemaVersion)
	dst = append(dst, `,"source":{`...)
	if ev.Source.Format != "" {
		dst = append(dst, `"format":`...)
		dst = jsonw.AppendCanonicalString(dst, ev.Source.Format)
		dst = append(dst, ',')
	}
	if ev.Source.Name != "" {
		dst = append(dst, `"name":`...)
		dst = jsonw.AppendCanonicalString(dst, ev.Source.Name)
		dst = append(dst, ',')
	}
	dst = append(dst, `"type":`...)
	dst = jsonw.AppendCanonicalString(dst, ev.Source.Type)
	dst = append(dst, '}')
	if ev.Tenant != (auditpipe.Tenant{}) {
		dst = append(dst, `,"tenant":`...)
		dst = appendMembers(dst, "account", ev.Tenant.Account, "org", ev.Tenant.Org, "project", ev.Tenant.Project)
	}
	dst = append(dst, `,"time":`...)
	dst = appendTime(dst, ev.Time)
	return append(dst, '}'), nil
}

// appendMembers writes an object of the non-empty name/value pairs, which
// the caller gives in sorted order.
func appendMembers(dst []byte, kv ...string) []byte {
	dst = append(dst, '{')
	first := true
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, kv[i]...)
		dst = append(dst, '"', ':')
		dst = jsonw.AppendCanonicalString(dst, kv[i+1])
	}
	return append(dst, '}')
}

func appendTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// compareUTF16 orders strings by their UTF-16 code units, as RFC 8785
// sorts member names. For ASCII and the BMP below the surrogates it is
// byte order; it differs only where a supplementary character meets one
// of U+E000..U+FFFF.
func compareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			ua, ub := utf16Unit(ra), utf16Unit(rb)
			if ua != ub {
				if ua < ub {
					return -1
				}
				return 1
			}
			// Same high surrogate: the low ones decide.
			_, la := utf16.EncodeRune(ra)
			_, lb := utf16.EncodeRune(rb)
			if la < lb {
				return -1
			}
			return 1
		}
		a, b = a[na:], b[nb:]
	}
	switch {
	case a == "" && b == "":
		return 0
	case a == "":
		return -1
	}
	return 1
}

func utf16Unit(r rune) rune {
	if r >= 0x10000 {
		hi, _ := utf16.EncodeRune(r)
		return hi
	}
	return r
}
