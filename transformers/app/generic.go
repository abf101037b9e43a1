package app

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/transformers"
)

// GenericConfig maps another app's events to the schema with RFC 6901 JSON
// pointers ("/actor/id", "/tags/0", "/a~1b" for the member "a/b"). Every
// pointer is optional except action; values may be strings, numbers or
// booleans (ids are numbers in some apps).
type GenericConfig struct {
	// ID is the event's own unique id. Default: the SHA-256 of the item's
	// canonical JSON, equal items in one batch told apart by position.
	ID string `yaml:"id"`
	// Time is when it happened: RFC 3339, or a number of time_unit since the
	// epoch. Default: when auditpipe received it.
	Time string `yaml:"time"`
	// TimeUnit is the unit of numeric times: s (default), ms, us or ns.
	TimeUnit string `yaml:"time_unit"`
	// Action is the app's action name, kept verbatim. Required.
	Action string `yaml:"action"`
	// Outcome is the app's outcome value, mapped by outcome_map and then
	// by the usual spellings (ok, success, failed, error, denied, forbidden,
	// true, false...); unrecognised values are unknown. Default: what the
	// action name says (*_failed, *_denied), else unknown.
	Outcome string `yaml:"outcome"`
	// OutcomeMap maps the app's outcome values to success, failure, denied
	// or unknown.
	OutcomeMap map[string]string `yaml:"outcome_map"`
	// OperationMap maps action names to create, read, update, delete,
	// login, logout, execute or other. Actions not in it get the verb rule
	// of Operation.
	OperationMap map[string]string `yaml:"operation_map"`
	// ActorID, ActorName and ActorEmail are the actor's; ActorType's value
	// is mapped by ActorType. Without a type, an actor with an email is a
	// user, any other unknown.
	ActorID    string `yaml:"actor_id"`
	ActorType  string `yaml:"actor_type"`
	ActorName  string `yaml:"actor_name"`
	ActorEmail string `yaml:"actor_email"`
	// The remaining pointers fill the schema field of the same name.
	ResourceType  string `yaml:"resource_type"`
	ResourceID    string `yaml:"resource_id"`
	ResourceName  string `yaml:"resource_name"`
	TenantOrg     string `yaml:"tenant_org"`
	TenantProject string `yaml:"tenant_project"`
	ClientIP      string `yaml:"client_ip"`
	UserAgent     string `yaml:"user_agent"`
	// Message is a human-readable line. Default: "<actor> performed
	// <action> on <resource>".
	Message string `yaml:"message"`
	Reason  string `yaml:"reason"`
	// Details points to an object kept, redacted, as the event's details.
	// Default: the whole item.
	Details string `yaml:"details"`
}

// mapping is a compiled GenericConfig.
type mapping struct {
	pointers   map[string]Pointer // by yaml key; absent when not configured
	unit       time.Duration
	outcomes   map[string]auditpipe.Outcome
	operations map[string]auditpipe.Operation
}

// compile validates c, naming the bad key; it returns nil when c is empty.
func compile(c GenericConfig) (*mapping, error) {
	fields := []struct{ key, ptr string }{
		{"id", c.ID}, {"time", c.Time}, {"action", c.Action}, {"outcome", c.Outcome},
		{"actor_id", c.ActorID}, {"actor_type", c.ActorType}, {"actor_name", c.ActorName},
		{"actor_email", c.ActorEmail}, {"resource_type", c.ResourceType}, {"resource_id", c.ResourceID},
		{"resource_name", c.ResourceName}, {"tenant_org", c.TenantOrg}, {"tenant_project", c.TenantProject},
		{"client_ip", c.ClientIP}, {"user_agent", c.UserAgent}, {"message", c.Message},
		{"reason", c.Reason}, {"details", c.Details},
	}
	m := &mapping{pointers: make(map[string]Pointer)}
	for _, f := range fields {
		if f.ptr == "" {
			continue // unset: RFC 6901's "" (the whole item) is never a useful field
		}
		p, err := ParsePointer(f.ptr)
		if err != nil {
			return nil, fmt.Errorf("app.generic.%s: %w", f.key, err)
		}
		m.pointers[f.key] = p
	}
	switch c.TimeUnit {
	case "", "s":
		m.unit = time.Second
	case "ms":
		m.unit = time.Millisecond
	case "us":
		m.unit = time.Microsecond
	case "ns":
		m.unit = time.Nanosecond
	default:
		return nil, fmt.Errorf("app.generic.time_unit: must be s, ms, us or ns, got %q", c.TimeUnit)
	}
	if len(c.OutcomeMap) > 0 {
		if c.Outcome == "" {
			return nil, fmt.Errorf("app.generic.outcome_map: needs app.generic.outcome to point at the value")
		}
		m.outcomes = make(map[string]auditpipe.Outcome)
		for _, k := range slices.Sorted(maps.Keys(c.OutcomeMap)) {
			o := auditpipe.Outcome(c.OutcomeMap[k])
			if !o.Valid() {
				return nil, fmt.Errorf("app.generic.outcome_map[%q]: must be success, failure, denied or unknown, got %q", k, c.OutcomeMap[k])
			}
			m.outcomes[k] = o
		}
	}
	if len(c.OperationMap) > 0 {
		m.operations = make(map[string]auditpipe.Operation)
		for _, k := range slices.Sorted(maps.Keys(c.OperationMap)) {
			op := auditpipe.Operation(c.OperationMap[k])
			if !op.Valid() {
				return nil, fmt.Errorf("app.generic.operation_map[%q]: must be one of create, read, update, delete, login, logout, execute, other, got %q", k, c.OperationMap[k])
			}
			m.operations[k] = op
		}
	}
	if len(m.pointers) == 0 && c.TimeUnit == "" && m.outcomes == nil && m.operations == nil {
		return nil, nil
	}
	if !m.has("action") {
		return nil, fmt.Errorf("app.generic.action: required when a generic mapping is configured")
	}
	return m, nil
}

func (m *mapping) has(key string) bool {
	if m == nil {
		return false
	}
	_, ok := m.pointers[key]
	return ok
}

// get resolves the pointer configured for key under n; a missing node when
// it is not configured.
func (m *mapping) get(n transformers.Node, key string) transformers.Node {
	if p, ok := m.pointers[key]; ok {
		return p.Resolve(n)
	}
	return transformers.Node{}
}

// decode reads n through the mapping.
func (m *mapping) decode(n transformers.Node, inCE bool) (decoded, *transformers.Error) {
	d := decoded{flavor: FormatGeneric}
	ev := &d.ev
	var r reader
	ev.ID = r.text(m.get(n, "id"))
	if m.has("time") {
		ev.Time = r.time(m.get(n, "time"), m.unit, !inCE)
	}
	if a := m.get(n, "action"); !a.Present() && !inCE {
		r.fail(a.Err(transformers.ErrMissing, "the action (app.generic.action)"))
	} else {
		ev.Action = r.text(a)
	}
	if o := r.text(m.get(n, "outcome")); o != "" {
		var ok bool
		if ev.Outcome, ok = m.outcomes[o]; !ok {
			ev.Outcome = OutcomeValue(o)
		}
	}
	ev.Actor = actor(r.text(m.get(n, "actor_type")), r.text(m.get(n, "actor_id")),
		r.text(m.get(n, "actor_name")), r.text(m.get(n, "actor_email")))
	d.who = firstOf(ev.Actor.Email, ev.Actor.Name, ev.Actor.ID)
	ev.Resource = auditpipe.Resource{Type: r.text(m.get(n, "resource_type")), ID: r.text(m.get(n, "resource_id")),
		Name: r.text(m.get(n, "resource_name"))}
	ev.Tenant = auditpipe.Tenant{Org: r.text(m.get(n, "tenant_org")), Project: r.text(m.get(n, "tenant_project"))}
	ev.Client = auditpipe.Client{IP: r.text(m.get(n, "client_ip")), UserAgent: r.text(m.get(n, "user_agent"))}
	ev.Message = r.text(m.get(n, "message"))
	ev.Reason = r.text(m.get(n, "reason"))
	det := n
	if m.has("details") {
		det = m.get(n, "details")
		if det.Present() && !det.IsObject() {
			r.fail(det.Err(transformers.ErrType, "object (app.generic.details)"))
		}
	}
	if r.err != nil {
		return d, r.err
	}
	det.Members(func(k string, v transformers.Node) { d.details.Value(k, v) })
	return d, nil
}

// OutcomeValue maps the usual spellings of an outcome value: ok, success,
// succeeded, allowed, true -> success; failed, failure, error, false ->
// failure; denied, forbidden, unauthorized, blocked -> denied; anything else
// unknown. Case is ignored.
func OutcomeValue(s string) auditpipe.Outcome {
	switch strings.ToLower(s) {
	case "ok", "success", "succeeded", "successful", "allowed", "allow", "true", "pass", "passed":
		return auditpipe.OutcomeSuccess
	case "failed", "failure", "fail", "error", "false":
		return auditpipe.OutcomeFailure
	case "denied", "deny", "forbidden", "unauthorized", "blocked":
		return auditpipe.OutcomeDenied
	}
	return auditpipe.OutcomeUnknown
}
