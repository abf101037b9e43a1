// Package spacelift decodes Spacelift's audit-trail webhook payloads.
//
// Each payload is one object with account, action, actor ("provider::id"),
// context.mutation, data, remoteIP and timestamp (epoch milliseconds). A JSON
// array of such objects, or NDJSON, is accepted too (archives, replays).
//
// Id rule: Spacelift sends no id, so the id is the SHA-256 of the payload's
// canonical JSON (RFC 8785). Spacelift retries failed deliveries with the
// same body, so a retry gets the same id.
//
// Actions on the audit trail itself (audit_trail_webhook.*) are what
// Spacelift calls security signals: they carry the label
// security_signal=true, which routes can match.
package spacelift

import (
	"context"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/transformers"
)

// Format is the format name, also the source type of the events.
const Format = "spacelift"

// SecuritySignalLabel is set to "true" on events that Spacelift documents as
// security signals (changes to the audit trail itself).
const SecuritySignalLabel = "security_signal"

// Transformer decodes Spacelift audit-trail payloads.
type Transformer struct {
	opts transformers.Options
}

// New returns a Spacelift transformer.
func New(opts transformers.Options) *Transformer { return &Transformer{opts: opts} }

// Transform implements transformers.Transformer.
func (t *Transformer) Transform(ctx context.Context, in transformers.Input) (transformers.Result, error) {
	res := transformers.Result{Format: Format}
	doc, err := transformers.Decode(in, t.opts.Limits, Format)
	if err != nil {
		return res, err
	}
	defer doc.Close()
	res.Errors = append(res.Errors, doc.Errors...)
	if err := doc.Items(t.opts.Limits, func(item transformers.Node, raw string) {
		ev, ierr := t.event(item)
		if ierr == nil {
			ierr = transformers.Finish(&ev, in.Meta, raw, Format, item)
		}
		if ierr != nil {
			res.Fail(ierr)
			return
		}
		res.Events = append(res.Events, ev)
	}); err != nil {
		return res, err
	}
	return res, nil
}

// Detect implements transformers.Detector: a Spacelift payload has account,
// action and actor strings, a numeric timestamp, and remoteIP or
// context.mutation.
func (t *Transformer) Detect(root transformers.Node, _ transformers.Meta) (string, bool) {
	if root.IsArray() && root.Len() > 0 {
		root = root.Index(0)
	}
	if !root.Get("account").IsString() || !root.Get("action").IsString() || !root.Get("actor").IsString() {
		return "", false
	}
	if v := root.Get("timestamp").Value(); v == nil || root.Get("timestamp").Kind() != "number" {
		return "", false
	}
	if m := root.Get("context").Get("mutation"); m.IsString() {
		return m.Path(), true
	}
	if ip := root.Get("remoteIP"); ip.Exists() {
		return ip.Path(), true
	}
	return "", false
}

func (t *Transformer) event(item transformers.Node) (auditpipe.Event, *transformers.Error) {
	var ev auditpipe.Event
	if _, err := item.Object(); err != nil {
		return ev, err
	}
	action, err := item.Get("action").String()
	if err != nil {
		return ev, err
	}
	ts, err := item.Get("timestamp").Time(time.Millisecond)
	if err != nil {
		return ev, err
	}
	actor, err := item.Get("actor").OptString()
	if err != nil {
		return ev, err
	}
	account, err := item.Get("account").OptString()
	if err != nil {
		return ev, err
	}
	ip, err := item.Get("remoteIP").OptString()
	if err != nil {
		return ev, err
	}
	data := item.Get("data")
	if data.Present() && !data.IsObject() {
		return ev, data.Err(transformers.ErrType, "object or null")
	}
	resourceID, err := data.Get("ID").Text()
	if err != nil {
		return ev, err
	}
	if ctxNode := item.Get("context"); ctxNode.Present() && !ctxNode.IsObject() {
		return ev, ctxNode.Err(transformers.ErrType, "object or null")
	}

	resourceType, verb := splitAction(action)
	ev.Time = ts
	ev.Source = auditpipe.Source{Type: Format, Format: Format}
	ev.Action = action
	ev.Operation = Operation(verb)
	ev.Category = []string{"configuration"}
	ev.Outcome = auditpipe.OutcomeSuccess // the trail records performed mutations only
	ev.Actor = ParseActor(actor)
	ev.Resource = auditpipe.Resource{Type: resourceType, ID: resourceID}
	ev.Tenant = auditpipe.Tenant{Account: account}
	ev.Client = auditpipe.Client{IP: ip}
	if resourceType == "audit_trail_webhook" {
		ev.Labels = map[string]string{SecuritySignalLabel: "true"}
	}
	ev.Message = message(actor, action, resourceType, resourceID)

	var d transformers.Details
	d.Value("context", item.Get("context"))
	d.Value("data", data)
	if ev.Details, err = d.Build(t.opts.Redactor); err != nil {
		return ev, err
	}
	if ev.ID, err = transformers.CanonicalIDReusing(item, &d); err != nil {
		return ev, err
	}
	return ev, nil
}

// splitAction splits "stack.create" into resource type "stack" and verb
// "create"; an action without a dot is all verb.
func splitAction(action string) (resourceType, verb string) {
	if i := strings.LastIndexByte(action, '.'); i >= 0 {
		return action[:i], action[i+1:]
	}
	return "", action
}

// Operation maps a Spacelift verb to the schema's operation. Compound verbs
// ("set_state", "createVersion") are judged by their first word.
func Operation(verb string) auditpipe.Operation {
	verb = strings.ToLower(verb)
	if i := strings.IndexAny(verb, "_-"); i > 0 {
		verb = verb[:i]
	}
	switch {
	case hasAnyPrefix(verb, "create", "add", "new", "invite", "register", "import"):
		return auditpipe.OperationCreate
	case hasAnyPrefix(verb, "delete", "remove", "destroy", "revoke", "unregister", "purge"):
		return auditpipe.OperationDelete
	case hasAnyPrefix(verb, "set", "unset", "update", "edit", "change", "enable", "disable", "lock", "unlock",
		"attach", "detach", "move", "rename", "sync", "reset", "rotate", "assign", "unassign", "toggle"):
		return auditpipe.OperationUpdate
	case hasAnyPrefix(verb, "trigger", "run", "retry", "confirm", "discard", "apply", "deploy", "execute", "start", "stop", "cancel", "approve", "reject"):
		return auditpipe.OperationExecute
	case hasAnyPrefix(verb, "get", "list", "read", "view", "download", "search", "export"):
		return auditpipe.OperationRead
	case hasAnyPrefix(verb, "login"):
		return auditpipe.OperationLogin
	case hasAnyPrefix(verb, "logout"):
		return auditpipe.OperationLogout
	}
	return auditpipe.OperationOther
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// ParseActor reads Spacelift's "provider::id" actor. API keys (provider
// "api") are tokens, Spacelift itself is the system, every identity provider
// (github, gitlab, saml, oidc, ...) stands for a user. Without "::" the
// whole string is the id and the type is unknown.
func ParseActor(s string) auditpipe.Actor {
	if s == "" {
		return auditpipe.Actor{Type: auditpipe.ActorUnknown}
	}
	provider, id, ok := strings.Cut(s, "::")
	if !ok {
		return auditpipe.Actor{Type: auditpipe.ActorUnknown, ID: s, Name: s}
	}
	a := auditpipe.Actor{ID: id, Name: id, Provider: provider}
	switch strings.ToLower(provider) {
	case "api", "api_key", "apikey", "token":
		a.Type = auditpipe.ActorToken
	case "spacelift", "system":
		a.Type = auditpipe.ActorSystem
	case "":
		a.Type = auditpipe.ActorUnknown
	default:
		a.Type = auditpipe.ActorUser
	}
	return a
}

func message(actor, action, resourceType, resourceID string) string {
	if actor == "" {
		actor = "unknown actor"
	}
	var b strings.Builder
	b.WriteString(actor)
	b.WriteString(" performed ")
	b.WriteString(action)
	if resourceID != "" {
		b.WriteString(" on ")
		if resourceType != "" {
			b.WriteString(resourceType)
			b.WriteString(" ")
		}
		b.WriteString(resourceID)
	}
	return b.String()
}
