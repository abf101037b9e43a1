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
	"bytes"
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
	doc, err := transformers.DecodeWith(in, t.opts, Format)
	if err != nil {
		return res, err
	}
	defer doc.Close()
	res.Errors = append(res.Errors, doc.Errors...)
	if err := doc.Items(t.opts.Limits, func(item transformers.Node, root *transformers.Root) {
		ev, ierr := t.event(item, root)
		res.Emit(ev, ierr, in.Meta, root.RawSHA256(), Format, item)
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

func (t *Transformer) event(item transformers.Node, root *transformers.Root) (auditpipe.Event, *transformers.Error) {
	var ev auditpipe.Event
	if _, err := item.Object(); err != nil {
		return ev, err
	}
	action, err := item.Get("action").StringBytes()
	if err != nil {
		return ev, err
	}
	ts, err := item.Get("timestamp").Time(time.Millisecond)
	if err != nil {
		return ev, err
	}
	actor, err := item.Get("actor").OptStringBytes()
	if err != nil {
		return ev, err
	}
	account, err := item.Get("account").OptStringBytes()
	if err != nil {
		return ev, err
	}
	ip, err := item.Get("remoteIP").OptStringBytes()
	if err != nil {
		return ev, err
	}
	data := item.Get("data")
	if data.Present() && !data.IsObject() {
		return ev, data.Err(transformers.ErrType, "object or null")
	}
	if ctxNode := item.Get("context"); ctxNode.Present() && !ctxNode.IsObject() {
		return ev, ctxNode.Err(transformers.ErrType, "object or null")
	}

	// Every string of the event is cut from one allocation (all, below):
	// this runs for every Spacelift event.
	buf := make([]byte, 0, 2*(len(action)+len(actor))+len(account)+len(ip)+64)
	buf = append(buf, action...)
	buf = append(buf, actor...)
	buf = append(buf, account...)
	buf = append(buf, ip...)
	idStart := len(buf)
	if buf, err = data.Get("ID").AppendText(buf); err != nil {
		return ev, err
	}
	idEnd := len(buf)
	typeBytes := action[:max(0, bytes.LastIndexByte(action, '.'))]
	buf = appendMessage(buf, actor, action, typeBytes, buf[idStart:idEnd])
	all := string(buf)
	cut := func(from, n int) string { return all[from : from+n] }
	a, ac, acc, p := len(action), len(actor), len(account), len(ip)
	actionS, actorS, accountS, ipS := cut(0, a), cut(a, ac), cut(a+ac, acc), cut(a+ac+acc, p)
	resourceID, message := all[idStart:idEnd], all[idEnd:]
	resourceType, verb := splitAction(actionS)

	ev.Time = ts
	ev.Source = auditpipe.Source{Type: Format, Format: Format}
	ev.Action = actionS
	ev.Operation = Operation(verb)
	ev.Category = []string{"configuration"}
	ev.Outcome = auditpipe.OutcomeSuccess // the trail records performed mutations only
	ev.Actor = ParseActor(actorS)
	ev.Resource = auditpipe.Resource{Type: resourceType, ID: resourceID}
	ev.Tenant = auditpipe.Tenant{Account: accountS}
	ev.Client = auditpipe.Client{IP: ipS}
	if resourceType == "audit_trail_webhook" {
		ev.Labels = map[string]string{SecuritySignalLabel: "true"}
	}
	ev.Message = message

	// One canonical encoding serves the id, the details where nothing needs
	// redacting, and the raw hash when the payload was already canonical.
	canon, err := root.Canonical(item, t.opts.Redactor)
	if err != nil {
		return ev, err
	}
	defer canon.Release()
	ev.ID = canon.ID()
	if item.Value() == root.Value() {
		root.NoteCanonical(canon, ev.ID)
	}
	var d transformers.Details
	d.Reuse(canon)
	d.Value("context", item.Get("context"))
	d.Value("data", data)
	if ev.Details, err = d.Build(t.opts.Redactor); err != nil {
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

func appendMessage(dst, actor, action, resourceType, resourceID []byte) []byte {
	if len(actor) == 0 {
		dst = append(dst, "unknown actor"...)
	}
	dst = append(dst, actor...)
	dst = append(dst, " performed "...)
	dst = append(dst, action...)
	if len(resourceID) > 0 {
		dst = append(dst, " on "...)
		if len(resourceType) > 0 {
			dst = append(dst, resourceType...)
			dst = append(dst, ' ')
		}
		dst = append(dst, resourceID...)
	}
	return dst
}
