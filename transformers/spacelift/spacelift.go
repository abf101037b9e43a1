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
func (t *Transformer) Transform(ctx context.Context, in transformers.Input, res *transformers.Result) error {
	res.Format = Format
	doc, err := transformers.DecodeLazy(in, t.opts, Format)
	if err != nil {
		return err
	}
	defer doc.Close()
	if len(doc.Roots) == 1 && !doc.Roots[0].Parsed() && !doc.NDJSON {
		root := &doc.Roots[0]
		// An already-canonical payload, Spacelift's usual: mapped from its
		// bytes, unless it holds anything the fast path does not handle
		// (or is an array): Items builds its tree then.
		if ev, ok := t.canonicalEvent(root); ok {
			res.Emit(ev, nil, in.Meta, root.RawSHA256(), Format, root.Node)
			return nil
		}
	}
	res.Errors = append(res.Errors, doc.Errors...)
	res.Grow(doc.Count())
	if err := doc.Items(t.opts.Limits, func(item transformers.Node, root *transformers.Root) {
		ev, ierr := t.event(item, root)
		res.Emit(ev, ierr, in.Meta, root.RawSHA256(), Format, item)
	}); err != nil {
		return err
	}
	return nil
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
	if root.Get("timestamp").Kind() != "number" { // missing is "nothing"
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

// fields are what an event is mapped from, read from the tree or straight
// from a canonical payload's bytes.
type fields struct {
	action, actor, account, ip, resourceID []byte
	time                                   time.Time
}

func (t *Transformer) event(item transformers.Node, root *transformers.Root) (auditpipe.Event, *transformers.Error) {
	var ev auditpipe.Event
	var f fields
	if _, err := item.Object(); err != nil {
		return ev, err
	}
	var err *transformers.Error
	if f.action, err = item.Get("action").StringBytes(); err != nil {
		return ev, err
	}
	if f.time, err = item.Get("timestamp").Time(time.Millisecond); err != nil {
		return ev, err
	}
	if f.actor, err = item.Get("actor").OptStringBytes(); err != nil {
		return ev, err
	}
	if f.account, err = item.Get("account").OptStringBytes(); err != nil {
		return ev, err
	}
	if f.ip, err = item.Get("remoteIP").OptStringBytes(); err != nil {
		return ev, err
	}
	data := item.Get("data")
	if data.Present() && !data.IsObject() {
		return ev, data.Err(transformers.ErrType, "object or null")
	}
	if ctxNode := item.Get("context"); ctxNode.Present() && !ctxNode.IsObject() {
		return ev, ctxNode.Err(transformers.ErrType, "object or null")
	}
	if id := data.Get("ID"); id.Present() {
		if f.resourceID, err = id.AppendText(nil); err != nil {
			return ev, err
		}
	}
	ev = t.build(f)

	// One canonical encoding serves the id, the details where nothing needs
	// redacting, and the raw hash when the payload was already canonical.
	canon, err := root.Canonical(item, t.opts.Redactor)
	if err != nil {
		return ev, err
	}
	defer canon.Release()
	ev.ID = canon.ID()
	if item.Same(root.Node) {
		root.NoteCanonical(canon.Bytes(), ev.ID)
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

// canonicalEvent maps an already-canonical payload from its bytes, with no
// tree: the id is the hash of the payload itself and the details are cut
// from it. Anything it does not expect (a wrong type, a value to redact)
// makes it give up (ok false), and the tree path maps the payload and
// reports what is wrong; SlowPathSame holds the two paths to the same
// events.
func (t *Transformer) canonicalEvent(root *transformers.Root) (ev auditpipe.Event, ok bool) {
	var f fields
	str := func(name string, required bool) ([]byte, bool) {
		v, _, present := root.Member(name)
		if !present || transformers.RawNull(v) {
			return nil, !required
		}
		s, isStr := transformers.RawString(v)
		return s, isStr && (!required || len(s) > 0)
	}
	obj := func(name string) ([]byte, bool) {
		v, clean, present := root.Member(name)
		if !present || transformers.RawNull(v) {
			return nil, true
		}
		return v, clean && transformers.RawObject(v)
	}
	var aOK, acOK, accOK, ipOK bool
	f.action, aOK = str("action", true)
	f.actor, acOK = str("actor", false)
	f.account, accOK = str("account", false)
	f.ip, ipOK = str("remoteIP", false)
	data, dataOK := obj("data")
	ctx, ctxOK := obj("context")
	ts, _, tsOK := root.Member("timestamp")
	ms, isInt := transformers.RawInt(ts)
	if !(aOK && acOK && accOK && ipOK && dataOK && ctxOK && tsOK && isInt) {
		return ev, false
	}
	f.time = time.UnixMilli(ms).UTC()
	if id, has := transformers.RawMember(data, "ID"); has && !transformers.RawNull(id) {
		switch s, isStr := transformers.RawString(id); {
		case isStr:
			f.resourceID = s
		case string(id) == "true" || string(id) == "false":
			f.resourceID = id
		default:
			if _, isInt := transformers.RawInt(id); !isInt {
				return ev, false // an object or array: the tree path says so
			}
			f.resourceID = id
		}
	}
	ev = t.build(f)
	canonical := root.CanonicalBytes()
	ev.ID = auditpipe.IDFromCanonical(canonical)
	root.NoteCanonical(canonical, ev.ID)
	var d transformers.Details
	d.Raw("context", ctx)
	d.Raw("data", data)
	details, err := d.Build(t.opts.Redactor)
	if err != nil {
		return ev, false
	}
	ev.Details = details
	return ev, true
}

// build makes the event from its fields. Every string of the event is cut
// from one allocation: this runs for every Spacelift event.
func (t *Transformer) build(f fields) auditpipe.Event {
	buf := make([]byte, 0, 2*(len(f.action)+len(f.actor)+len(f.resourceID))+len(f.account)+len(f.ip)+32)
	buf = append(buf, f.action...)
	buf = append(buf, f.actor...)
	buf = append(buf, f.account...)
	buf = append(buf, f.ip...)
	idStart := len(buf)
	buf = append(buf, f.resourceID...)
	idEnd := len(buf)
	typeBytes := f.action[:max(0, bytes.LastIndexByte(f.action, '.'))]
	buf = appendMessage(buf, f.actor, f.action, typeBytes, f.resourceID)
	all := string(buf)
	cut := func(from, n int) string { return all[from : from+n] }
	a, ac, acc, p := len(f.action), len(f.actor), len(f.account), len(f.ip)
	action, actor, account, ip := cut(0, a), cut(a, ac), cut(a+ac, acc), cut(a+ac+acc, p)
	resourceID, message := all[idStart:idEnd], all[idEnd:]
	resourceType, verb := splitAction(action)

	ev := auditpipe.Event{
		Time:      f.time,
		Source:    auditpipe.Source{Type: Format, Format: Format},
		Action:    action,
		Operation: Operation(verb),
		Category:  []string{"configuration"},
		Outcome:   auditpipe.OutcomeSuccess, // the trail records performed mutations only
		Actor:     ParseActor(actor),
		Resource:  auditpipe.Resource{Type: resourceType, ID: resourceID},
		Tenant:    auditpipe.Tenant{Account: account},
		Client:    auditpipe.Client{IP: ip},
		Message:   message,
	}
	if resourceType == "audit_trail_webhook" {
		ev.Labels = map[string]string{SecuritySignalLabel: "true"}
	}
	return ev
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
