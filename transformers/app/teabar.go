package app

import (
	"time"

	"github.com/auditpipe/auditpipe/transformers"
)

// teabar reads a Teabar-style rich event: id, timestamp (RFC 3339, or epoch
// seconds), actor{type,id,email,name}, action ("member.invited"),
// resource{type,id,name}, details, ip_address, user_agent. Details holds
// the members of the event's details object plus any top-level member not
// mapped here (hash-chain fields, say); a details member wins a name clash.
func teabar(n transformers.Node, inCE bool) (decoded, *transformers.Error) {
	d := decoded{flavor: FormatTeabar}
	ev := &d.ev
	var r reader
	ev.ID = r.text(n.Get("id"))
	ev.Time = r.time(n.Get("timestamp"), time.Second, !inCE)
	ev.Action = r.str(n.Get("action"), !inCE)

	switch a := n.Get("actor"); {
	case a.IsObject():
		typ := r.str(a.Get("type"), false)
		ev.Actor = actor(typ, r.text(a.Get("id")), r.str(a.Get("name"), false), r.str(a.Get("email"), false))
		d.who = firstOf(ev.Actor.Email, ev.Actor.Name, ev.Actor.ID, typ)
	case a.IsString(): // loose apps name the actor only
		d.who = r.str(a, false)
		ev.Actor = actor("", d.who, "", "")
	case a.Present():
		r.fail(a.Err(transformers.ErrType, "object, string or null"))
	default:
		ev.Actor = actor("", "", "", "")
	}

	res := n.Get("resource")
	if res.Present() && !res.IsObject() {
		r.fail(res.Err(transformers.ErrType, "object or null"))
	}
	ev.Resource.Type = r.str(res.Get("type"), false)
	ev.Resource.ID = r.text(res.Get("id"))
	ev.Resource.Name = r.str(res.Get("name"), false)
	ev.Client.IP = r.str(n.Get("ip_address"), false)
	ev.Client.UserAgent = r.str(n.Get("user_agent"), false)
	if r.err != nil {
		return d, r.err
	}

	unmapped(n, &d.details, "id", "timestamp", "actor", "action", "resource", "details", "ip_address", "user_agent")
	if det := n.Get("details"); det.IsObject() {
		det.Members(func(k string, v transformers.Node) { d.details.Value(k, v) })
	} else {
		d.details.Value("details", det) // not an object: kept as it came
	}
	return d, nil
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
