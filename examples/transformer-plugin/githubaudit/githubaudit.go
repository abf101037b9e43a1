package githubaudit

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/external"
)

// Format names this decoder in events (source.format) and errors.
const Format = "github_audit"

// SourceType is the events' source.type.
const SourceType = "github"

// CountryLabel is the label holding actor_location.country_code.
const CountryLabel = "actor_country_code"

// Transformer maps GitHub audit-log payloads. It is safe for concurrent
// use.
type Transformer struct {
	opts transformers.Options
}

// New returns a transformer with the default limits and redaction.
func New() (*Transformer, error) {
	red, err := transformers.NewRedactor(transformers.RedactConfig{})
	if err != nil {
		return nil, err
	}
	return &Transformer{opts: transformers.Options{Redactor: red}}, nil
}

// Transform is the plugin's transform function (external.TransformFunc).
// A payload that is not JSON at all fails as a whole; an entry that cannot
// be mapped is a per-item error, and the other entries still become
// events.
func (t *Transformer) Transform(ctx context.Context, in external.Payload) ([]auditpipe.Event, error) {
	// transformers.Decode is what the built-in formats use: one JSON
	// document, an array or NDJSON, under size and depth limits, with
	// errors that name the JSON path.
	doc, err := transformers.Decode(transformers.Input{Body: in.Body}, t.opts.Limits, Format)
	if err != nil {
		return nil, err
	}
	defer doc.Close()
	var events []auditpipe.Event
	var errs []error
	for _, e := range doc.Errors { // NDJSON lines that did not parse
		errs = append(errs, e)
	}
	if err := doc.Items(t.opts.Limits, func(item transformers.Node, root *transformers.Root) {
		ev, ierr := t.event(item, root)
		if ierr != nil {
			errs = append(errs, ierr)
			return
		}
		ev.RawSHA256 = root.RawSHA256()
		events = append(events, ev)
	}); err != nil {
		return nil, err
	}
	return events, errors.Join(errs...)
}

// event maps one audit-log entry.
func (t *Transformer) event(item transformers.Node, root *transformers.Root) (auditpipe.Event, *transformers.Error) {
	ev := auditpipe.Event{
		SchemaVersion: auditpipe.SchemaVersion,
		Source:        auditpipe.Source{Type: SourceType, Format: Format},
		// The audit log records what happened; GitHub does not log
		// refused attempts there.
		Outcome: auditpipe.OutcomeSuccess,
	}
	if _, err := item.Object(); err != nil {
		return ev, err
	}
	var err *transformers.Error
	if ev.Action, err = item.Get("action").String(); err != nil {
		return ev, err
	}
	if ev.Time, err = entryTime(item); err != nil {
		return ev, err
	}
	opType, err := item.Get("operation_type").OptString()
	if err != nil {
		return ev, err
	}
	ev.Operation = operation(ev.Action, opType)

	if ev.Actor, err = actor(item); err != nil {
		return ev, err
	}
	if ev.Resource, err = resource(item, ev.Action); err != nil {
		return ev, err
	}
	if ev.Tenant.Org, err = item.Get("org").OptString(); err != nil {
		return ev, err
	}
	if ev.Tenant.Account, err = item.Get("business").OptString(); err != nil {
		return ev, err
	}
	if ev.Client.IP, err = item.Get("actor_ip").OptString(); err != nil {
		return ev, err
	}
	if ev.Client.UserAgent, err = item.Get("user_agent").OptString(); err != nil {
		return ev, err
	}
	country, err := item.Get("actor_location").Get("country_code").OptString()
	if err != nil {
		return ev, err
	}
	if country != "" {
		ev.Labels = map[string]string{CountryLabel: country}
	}
	ev.Message = message(ev)

	if ev.ID, err = item.Get("_document_id").OptString(); err != nil {
		return ev, err
	}
	if ev.ID == "" {
		if ev.ID, err = transformers.CanonicalID(item); err != nil {
			return ev, err
		}
	}
	// The whole entry is the details: canonical JSON (sorted members, so
	// a re-sent entry is byte-identical) with the values of secret-looking
	// members (token, secret, password...) replaced.
	// The entry's share of its document is about the details' size.
	size := len(root.Raw)
	if root.IsArray() {
		size /= max(1, root.Len())
	}
	details, cerr := transformers.AppendCanonical(make([]byte, 0, size+64), item, t.opts.Redactor)
	if cerr != nil {
		return ev, item.Errf(transformers.ErrValue, "", cerr.Error())
	}
	ev.Details = details
	return ev, nil
}

// entryTime is @timestamp, else created_at: epoch milliseconds (or RFC
// 3339, which some exports use).
func entryTime(item transformers.Node) (time.Time, *transformers.Error) {
	n := item.Get("@timestamp")
	if !n.Present() {
		n = item.Get("created_at")
	}
	return n.Time(time.Millisecond)
}

// actor is the entry's actor: a user, or a service for GitHub Apps and
// bots (their logins end in [bot]); no actor at all is GitHub itself.
func actor(item transformers.Node) (auditpipe.Actor, *transformers.Error) {
	name, err := item.Get("actor").OptString()
	if err != nil {
		return auditpipe.Actor{}, err
	}
	id, err := item.Get("actor_id").Text()
	if err != nil {
		return auditpipe.Actor{}, err
	}
	a := auditpipe.Actor{Type: auditpipe.ActorUser, ID: id, Name: name, Provider: "github"}
	switch {
	case name == "" && id == "":
		a.Type, a.Provider = auditpipe.ActorSystem, ""
	case strings.HasSuffix(name, "[bot]"):
		a.Type = auditpipe.ActorService
	}
	return a, nil
}

// resource is what the action's category (the part before the first dot)
// names: repo.create acts on the repo field, team.add_member on the team
// field, and so on; the id is <category>_id when present. A category
// without a field of its own falls back to the repository.
func resource(item transformers.Node, action string) (auditpipe.Resource, *transformers.Error) {
	category, _, _ := strings.Cut(action, ".")
	field := category
	switch category {
	case "repository", "protected_branch", "repository_secret_scanning", "git", "repository_vulnerability_alert":
		field = "repo"
	case "organization", "members_can_create_pages", "org_credential_authorization":
		field = "org"
	}
	name, err := item.Get(field).Text()
	if err != nil {
		return auditpipe.Resource{}, err
	}
	id, err := item.Get(field + "_id").Text()
	if err != nil {
		return auditpipe.Resource{}, err
	}
	if name == "" && id == "" && field != "repo" {
		field = "repo"
		if name, err = item.Get("repo").Text(); err != nil {
			return auditpipe.Resource{}, err
		}
		if id, err = item.Get("repo_id").Text(); err != nil {
			return auditpipe.Resource{}, err
		}
	}
	if name == "" && id == "" {
		return auditpipe.Resource{}, nil
	}
	return auditpipe.Resource{Type: resourceType(field), ID: id, Name: name}, nil
}

func resourceType(field string) string {
	switch field {
	case "repo":
		return "repository"
	case "org":
		return "organization"
	}
	return field
}

// operation is the verb of the action's last part (repo.create -> create,
// team.add_member -> add -> create), else GitHub's own operation_type,
// else other.
func operation(action, operationType string) auditpipe.Operation {
	category, _, _ := strings.Cut(action, ".")
	if category == "workflows" {
		return auditpipe.OperationExecute
	}
	suffix := action[strings.LastIndexByte(action, '.')+1:]
	verb, _, _ := strings.Cut(suffix, "_")
	switch verb {
	case "create", "add", "invite", "import", "fork", "generate":
		return auditpipe.OperationCreate
	case "destroy", "delete", "remove", "revoke":
		return auditpipe.OperationDelete
	case "update", "change", "rename", "edit", "transfer", "archived", "unarchived", "enable", "disable", "set",
		"access", "promote", "demote", "reinstate", "rotate", "publicize", "conceal", "approve", "reject":
		return auditpipe.OperationUpdate
	case "download", "clone", "view", "export", "read", "fetch":
		return auditpipe.OperationRead
	case "login":
		return auditpipe.OperationLogin
	case "logout":
		return auditpipe.OperationLogout
	case "run", "rerun", "execute", "trigger", "dispatch":
		return auditpipe.OperationExecute
	}
	switch operationType {
	case "create":
		return auditpipe.OperationCreate
	case "modify", "transfer":
		return auditpipe.OperationUpdate
	case "remove":
		return auditpipe.OperationDelete
	case "access":
		return auditpipe.OperationRead
	case "authentication":
		return auditpipe.OperationLogin
	}
	return auditpipe.OperationOther
}

// message is a human-readable line: "octocat: repo.create octo-org/hello".
func message(ev auditpipe.Event) string {
	who := ev.Actor.Name
	if who == "" {
		who = "github"
	}
	msg := who + ": " + ev.Action
	if ev.Resource.Name != "" {
		msg += " " + ev.Resource.Name
	}
	return msg
}
