// Package k8s decodes Kubernetes API-server audit events: audit.k8s.io/v1
// (and v1beta1, which has the same fields) kind Event, one per line as the
// log backend writes them (NDJSON), or kind EventList as the webhook backend
// sends them. EventList items carry no apiVersion or kind of their own; an
// Event without them (a log line whose envelope a shipper dropped) is
// accepted too.
//
// Stages: the API server audits one request at up to four stages
// (RequestReceived, ResponseStarted for long-running requests,
// ResponseComplete, Panic), every time with the same auditID. Only the
// configured stages become events, by default ResponseComplete and Panic:
// one event per request, carrying its outcome. The others are counted as
// skipped "stage".
//
// Id rule: the SHA-256 of auditID, stage and requestReceivedTimestamp
// (auditpipe.IDFromParts), not the auditID itself. The API server takes the
// auditID from the client's Audit-ID request header when there is one, so a
// client could give all its requests one id, and every output that dedupes
// by id (Elasticsearch create, S3 keys) would keep only the first of them:
// an audit-evasion channel. The receive time is set by the server, to the
// microsecond; the stage keeps the configured stages of one request apart.
// All three are the same in the log and webhook copies of an event, in a
// retry, and through either front door. The auditID is kept in
// details.auditID to correlate stages.
//
// Mapping: action is the verb verbatim (create, get, watch, deletecollection,
// impersonate): the API's own name for what was done, while what it was done
// to is resource.type, the resource plus "/subresource" (pods/exec). The
// operation, outcome, actor type and category rules are on Operation,
// Outcome, ParseUser and Category. client.ip is sourceIPs[0]; note that all
// but the last source IP come from X-Forwarded-For and X-Real-Ip, which a
// client can set, so every one is kept in details.sourceIPs.
//
// Details hold the auditID, level, stage, requestURI, the user (groups and
// extra), impersonatedUser, sourceIPs, annotations, responseStatus and
// objectRef.resourceVersion, redacted by key. The request and response
// objects are only included when Config.IncludeObjects is set; Secrets among
// them are blanked by position (see scrubSecret).
package k8s

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/transformers"
)

// Format is the format name, also the source type of the events.
const Format = "k8s"

// The audit stages of a request, in the order the API server emits them.
const (
	StageRequestReceived  = "RequestReceived"
	StageResponseStarted  = "ResponseStarted"
	StageResponseComplete = "ResponseComplete"
	StagePanic            = "Panic"
)

const (
	apiVersionV1       = "audit.k8s.io/v1"
	apiVersionV1beta1  = "audit.k8s.io/v1beta1"
	kindEvent          = "Event"
	kindEventList      = "EventList"
	annotationDecision = "authorization.k8s.io/decision"
	annotationReason   = "authorization.k8s.io/reason"
	// lastApplied is where kubectl apply keeps a full copy of the object it
	// applied, Secret values included.
	lastApplied = "kubectl.kubernetes.io/last-applied-configuration"
)

// Config is the k8s format's configuration (the k8s: block).
type Config struct {
	// Stages are the audit stages that become events. Empty means
	// ResponseComplete and Panic.
	Stages []string `yaml:"stages"`
	// IncludeObjects copies requestObject and responseObject (logged at the
	// Request and RequestResponse audit levels) into details. Off by
	// default: they are large and may hold secrets.
	IncludeObjects bool `yaml:"include_objects"`
}

// Transformer decodes Kubernetes audit events.
type Transformer struct {
	stages         []string
	includeObjects bool
	opts           transformers.Options
}

// New validates cfg and returns a k8s transformer.
func New(cfg Config, opts transformers.Options) (*Transformer, error) {
	stages := slices.Clone(cfg.Stages)
	if len(stages) == 0 {
		stages = []string{StageResponseComplete, StagePanic}
	}
	for i, s := range stages {
		switch s {
		case StageRequestReceived, StageResponseStarted, StageResponseComplete, StagePanic:
		default:
			return nil, fmt.Errorf("k8s.stages[%d]: unknown stage %q (known: %s, %s, %s, %s)", i, s,
				StageRequestReceived, StageResponseStarted, StageResponseComplete, StagePanic)
		}
	}
	return &Transformer{stages: stages, includeObjects: cfg.IncludeObjects, opts: opts}, nil
}

// Transform implements transformers.Transformer. A single document that is
// not an audit Event or EventList is a payload error; in NDJSON such a line
// is an item error and the other lines still count.
func (t *Transformer) Transform(ctx context.Context, in transformers.Input, res *transformers.Result) error {
	res.Format = Format
	doc, err := transformers.Decode(in, t.opts.Limits, Format)
	if err != nil {
		return err
	}
	defer doc.Close()
	res.Errors = append(res.Errors, doc.Errors...)
	// Roots are mapped as they are read, one tree at a time; a payload
	// found over Limits.MaxItems further on is refused whole all the same:
	// what was mapped of it is taken back.
	mark := res.Mark()
	res.Grow(doc.Count())
	limit := t.opts.Limits.WithDefaults().MaxItems
	n := 0
	var over, whole *transformers.Error
	doc.EachRoot(func(r *transformers.Root) bool {
		at := r.Get("items")
		if kind, _ := r.Get("kind").OptString(); kind == kindEventList && at.IsArray() {
			n += at.Len()
		} else {
			at = r.Node
			n++
		}
		if n > limit && over == nil {
			over = at.Err(transformers.ErrTooManyItems, fmt.Sprintf("at most %d items", limit))
		}
		if over != nil {
			return true // counting on, for the total the error reports
		}
		if err := t.root(res, r, in.Meta); err != nil {
			if !doc.NDJSON {
				whole = err
				return false
			}
			res.Fail(err)
		}
		return true
	})
	if over != nil {
		over.Got = strconv.Itoa(n)
		whole = over
	}
	if whole != nil {
		res.Rollback(mark)
		return whole
	}
	return nil
}

// root maps one document, an Event or an EventList. Problems with the
// document itself are returned; problems with one of its events are
// recorded in res.
func (t *Transformer) root(res *transformers.Result, r *transformers.Root, meta transformers.Meta) *transformers.Error {
	isList, err := envelope(r.Node, true)
	if err != nil {
		return err
	}
	if !isList {
		t.item(res, r.Node, r.RawSHA256(), meta)
		return nil
	}
	items := r.Get("items")
	if items.Present() && !items.IsArray() {
		return items.Err(transformers.ErrType, "array")
	}
	for i := range items.Len() {
		item := items.Index(i).AsItem(i)
		if _, err := envelope(item, false); err != nil {
			res.Fail(err)
			continue
		}
		t.item(res, item, r.RawSHA256(), meta)
	}
	return nil
}

// envelope checks that n is an object whose apiVersion and kind, both
// optional, are ones this package decodes, and reports an EventList.
func envelope(n transformers.Node, listOK bool) (isList bool, err *transformers.Error) {
	want := kindEvent
	if listOK {
		want = kindEvent + " or " + kindEventList
	}
	if !n.IsObject() {
		return false, n.Err(transformers.ErrType, "an audit.k8s.io "+want+" object")
	}
	v := n.Get("apiVersion")
	version, err := v.OptString()
	if err != nil {
		return false, err
	}
	if version != "" && version != apiVersionV1 && version != apiVersionV1beta1 {
		return false, unsupported(v, apiVersionV1+" or "+apiVersionV1beta1, version)
	}
	k := n.Get("kind")
	kind, err := k.OptString()
	if err != nil {
		return false, err
	}
	switch {
	case kind == "" || kind == kindEvent:
		return false, nil
	case kind == kindEventList && listOK:
		return true, nil
	}
	return false, unsupported(k, want, kind)
}

// unsupported names the value it refuses: an apiVersion or kind is a schema
// name, never a secret, and it is what the sender needs to see.
func unsupported(n transformers.Node, expected, got string) *transformers.Error {
	e := n.Errf(transformers.ErrUnsupported, expected, "got "+strconv.Quote(transformers.Excerpt(got)))
	e.Got = ""
	return e
}

func (t *Transformer) item(res *transformers.Result, item transformers.Node, raw string, meta transformers.Meta) {
	ev, keep, err := t.event(item)
	if err == nil && !keep {
		res.Skip("stage")
		return
	}
	res.Emit(ev, err, meta, raw, Format, item)
}

// Detect implements transformers.Detector: an audit.k8s.io/v1 (or v1beta1)
// Event or EventList, or, without that envelope, an object with the auditID,
// stage and verb strings every audit event has.
func (t *Transformer) Detect(root transformers.Node, _ transformers.Meta) (string, bool) {
	v := root.Get("apiVersion")
	version, _ := v.OptString()
	kind, _ := root.Get("kind").OptString()
	if (version == apiVersionV1 || version == apiVersionV1beta1) && (kind == kindEvent || kind == kindEventList) {
		return v.Path(), true
	}
	if id := root.Get("auditID"); id.IsString() && root.Get("stage").IsString() && root.Get("verb").IsString() {
		return id.Path(), true
	}
	return "", false
}

// event maps one audit event; keep is false for a stage not configured.
func (t *Transformer) event(item transformers.Node) (ev auditpipe.Event, keep bool, err *transformers.Error) {
	var f fields
	stage := f.required(item.Get("stage"))
	if f.err != nil || !slices.Contains(t.stages, stage) {
		return ev, false, f.err
	}
	auditID := f.required(item.Get("auditID"))
	verb := f.required(item.Get("verb"))
	received := f.time(item.Get("requestReceivedTimestamp"))
	staged := f.time(item.Get("stageTimestamp"))
	level := f.str(item.Get("level"))
	uri := f.str(item.Get("requestURI"))
	userAgent := f.str(item.Get("userAgent"))
	user := f.object(item.Get("user"))
	username, uid := f.str(user.Get("username")), f.str(user.Get("uid"))
	impersonated := f.object(item.Get("impersonatedUser"))
	as := f.str(impersonated.Get("username"))
	ips := f.array(item.Get("sourceIPs"))
	ip := f.str(ips.Index(0))
	ref := f.object(item.Get("objectRef"))
	resource, subresource := f.str(ref.Get("resource")), f.str(ref.Get("subresource"))
	target := auditpipe.Resource{Type: resource, ID: f.str(ref.Get("uid")), Name: f.str(ref.Get("name")),
		Namespace: f.str(ref.Get("namespace")), APIGroup: f.str(ref.Get("apiGroup")), APIVersion: f.str(ref.Get("apiVersion"))}
	resourceVersion := f.str(ref.Get("resourceVersion"))
	status := f.object(item.Get("responseStatus"))
	code := f.int(status.Get("code"))
	statusText, statusMessage := f.str(status.Get("status")), f.str(status.Get("message"))
	annotations := f.object(item.Get("annotations"))
	decision, decisionReason := f.str(annotations.Get(annotationDecision)), f.str(annotations.Get(annotationReason))
	if f.err != nil {
		return ev, false, f.err
	}
	when := received
	if when.IsZero() {
		when = staged
	}
	if when.IsZero() {
		return ev, false, item.Get("requestReceivedTimestamp").Err(transformers.ErrMissing, "RFC 3339 timestamp string")
	}
	if subresource != "" && resource != "" {
		target.Type = resource + "/" + subresource
	}

	ev.ID = auditpipe.IDFromParts(auditID, stage, when.Format(time.RFC3339Nano))
	ev.Time = when
	ev.Source = auditpipe.Source{Type: Format, Format: Format}
	ev.Action = verb
	ev.Operation = Operation(verb, subresource)
	ev.Category = Category(verb, target.APIGroup, resource, subresource)
	ev.Outcome = Outcome(stage, code, statusText, decision)
	if ev.Outcome == auditpipe.OutcomeDenied || ev.Outcome == auditpipe.OutcomeFailure {
		// Only a failure has a reason in the schema's sense; the reason
		// annotation of an allowed request ("RBAC: allowed by ...") stays
		// in details.
		ev.Reason = firstOf(statusMessage, decisionReason)
	}
	ev.Actor = ParseUser(username, uid)
	ev.Resource = target
	ev.Client = auditpipe.Client{IP: ip, UserAgent: userAgent}
	ev.Message = message(username, as, verb, target, uri)

	var d transformers.Details
	d.String("auditID", auditID)
	d.String("level", level)
	d.String("stage", stage)
	d.String("requestURI", uri)
	d.Value("user", user)
	d.Value("impersonatedUser", impersonated)
	d.Value("sourceIPs", ips)
	d.Value("annotations", annotations)
	d.Value("responseStatus", status)
	d.String("resourceVersion", resourceVersion)
	if t.includeObjects {
		for _, key := range []string{"requestObject", "responseObject"} {
			if err := addObject(&d, key, item.Get(key), resource == "secrets"); err != nil {
				return ev, false, err
			}
		}
	}
	if ev.Details, err = d.Build(t.opts.Redactor); err != nil {
		return ev, false, err
	}
	return ev, true, nil
}

// addObject adds a request or response object to the details, with the
// values of a Secret blanked first.
func addObject(d *transformers.Details, key string, obj transformers.Node, secret bool) *transformers.Error {
	switch {
	case !obj.Present() || !secret:
	case !obj.IsObject() && !obj.IsArray():
		// A body the server could not re-encode as JSON (a YAML apply
		// patch) may hold anything.
		d.String(key, transformers.Redacted)
		return nil
	default:
		if dup := scrubSecret(obj); dup != "" {
			return obj.Errf(transformers.ErrValue, "member names that are unique", "duplicate "+strconv.Quote(dup))
		}
	}
	d.Value(key, obj)
	return nil
}

// scrubSecret replaces with Redacted, in place, every value of a Secret in
// a request or response object: a Secret, a SecretList, a Table, a merge or
// JSON patch. Key-based redaction cannot find them, because a Secret's
// values sit under keys its author chose (data["tls.key"], data.DSN,
// data[".dockerconfigjson"]), so they are found by position instead:
// data and stringData members anywhere, the last-applied-configuration
// annotation (a full copy of the Secret), and the value of a JSON-patch
// operation. The document belongs to this Transform call (it closes it), so
// editing in place is safe, and it is linear where a copy would be
// quadratic (setting a member searches the object).
//
// A member it must blank that appears twice is reported instead: SetString
// replaces only the first, and the second would keep its value.
func scrubSecret(n transformers.Node) (duplicate string) {
	switch {
	case n.IsObject():
		patchOp := n.Get("op").Exists()
		var blank []string
		n.Members(func(key string, c transformers.Node) {
			if duplicate != "" {
				return
			}
			switch {
			case key == "data", key == "stringData", key == lastApplied, key == "value" && patchOp:
				if slices.Contains(blank, key) {
					duplicate = key
				}
				blank = append(blank, key)
			default:
				duplicate = scrubSecret(c)
			}
		})
		if duplicate != "" {
			return duplicate
		}
		for _, k := range blank {
			n.SetString(k, transformers.Redacted)
		}
	case n.IsArray():
		for i := range n.Len() {
			if dup := scrubSecret(n.Index(i)); dup != "" {
				return dup
			}
		}
	}
	return ""
}

// Operation maps a Kubernetes verb, with the subresource it acted on, to the
// schema's operation. exec, attach and portforward run something in a pod
// whatever the verb (SPDY clients create, WebSocket clients get); a create
// through a proxy subresource is an arbitrary POST to the proxied service,
// while other proxied verbs keep their meaning.
func Operation(verb, subresource string) auditpipe.Operation {
	switch subresource {
	case "exec", "attach", "portforward":
		return auditpipe.OperationExecute
	case "proxy":
		if verb == "create" {
			return auditpipe.OperationExecute
		}
	}
	switch verb {
	case "create":
		return auditpipe.OperationCreate
	case "get", "list", "watch":
		return auditpipe.OperationRead
	case "update", "patch":
		return auditpipe.OperationUpdate
	case "delete", "deletecollection":
		return auditpipe.OperationDelete
	case "impersonate", "bind", "escalate", "approve":
		return auditpipe.OperationExecute
	}
	return auditpipe.OperationOther
}

// Outcome judges a request from its stage, responseStatus.code (0 when
// absent), responseStatus.status and the authorization.k8s.io/decision
// annotation. A 403 or a forbid decision is denied (RBAC, or an admission
// webhook refusing); any other code from 400 is a failure, below it a
// success. Without a code, status Success or Failure decides; a Panic is a
// failure (the server always sets a 500, but the status may be lost);
// otherwise (RequestReceived) the outcome is not known yet.
func Outcome(stage string, code int64, status, decision string) auditpipe.Outcome {
	switch {
	case code == 403 || decision == "forbid":
		return auditpipe.OutcomeDenied
	case code >= 400:
		return auditpipe.OutcomeFailure
	case code > 0:
		return auditpipe.OutcomeSuccess
	case status == "Failure" || stage == StagePanic:
		return auditpipe.OutcomeFailure
	case status == "Success":
		return auditpipe.OutcomeSuccess
	}
	return auditpipe.OutcomeUnknown
}

// ParseUser maps user.username and user.uid to the actor. Kubernetes marks
// its own identities with the system: prefix: service accounts
// (system:serviceaccount:<namespace>:<name>) are services, bootstrap tokens
// (system:bootstrap:<token-id>) tokens, system:anonymous (an
// unauthenticated request) unknown, and every other system: name (nodes,
// the scheduler, the controller manager) the system. Any other name is a
// user's.
func ParseUser(username, uid string) auditpipe.Actor {
	a := auditpipe.Actor{ID: username, UID: uid, Name: username}
	switch {
	case username == "" || username == "system:anonymous":
		a.Type = auditpipe.ActorUnknown
	case strings.HasPrefix(username, "system:serviceaccount:"):
		a.Type = auditpipe.ActorService
	case strings.HasPrefix(username, "system:bootstrap:"):
		a.Type = auditpipe.ActorToken
	case strings.HasPrefix(username, "system:"):
		a.Type = auditpipe.ActorSystem
	default:
		a.Type = auditpipe.ActorUser
	}
	return a
}

// Category gives the ECS-style category: authentication for the
// authentication.k8s.io (tokenreviews) and certificates.k8s.io
// (certificatesigningrequests) groups; iam for RBAC, service accounts (and
// their tokens) and the impersonate, bind and escalate verbs; configuration
// for changes to anything else except what is state rather than
// configuration: status subresources, events, leases (heartbeats, leader
// election), access reviews (queries, never stored) and the streaming
// subresources. Reads of other resources have no category.
func Category(verb, apiGroup, resource, subresource string) []string {
	switch {
	case apiGroup == "authentication.k8s.io" || apiGroup == "certificates.k8s.io":
		return []string{"authentication"}
	case apiGroup == "rbac.authorization.k8s.io", apiGroup == "" && resource == "serviceaccounts",
		verb == "impersonate", verb == "bind", verb == "escalate":
		return []string{"iam"}
	case !slices.Contains([]string{"create", "update", "patch", "delete", "deletecollection"}, verb),
		slices.Contains([]string{"status", "exec", "attach", "portforward", "proxy"}, subresource),
		resource == "events" && (apiGroup == "" || apiGroup == "events.k8s.io"),
		resource == "leases" && apiGroup == "coordination.k8s.io",
		apiGroup == "authorization.k8s.io":
		return nil
	}
	return []string{"configuration"}
}

// message reads "alice performed create on pods default/nginx", or for a
// non-resource request "alice performed get on /healthz".
func message(user, as, verb string, res auditpipe.Resource, uri string) string {
	var b strings.Builder
	b.WriteString(firstOf(user, "unknown actor"))
	if as != "" {
		b.WriteString(" (as " + as + ")")
	}
	b.WriteString(" performed " + verb)
	switch {
	case res.Type != "":
		b.WriteString(" on " + res.Type)
		switch {
		case res.Name != "" && res.Namespace != "":
			b.WriteString(" " + res.Namespace + "/" + res.Name)
		case res.Name != "":
			b.WriteString(" " + res.Name)
		case res.Namespace != "":
			b.WriteString(" in " + res.Namespace)
		}
	case uri != "":
		path, _, _ := strings.Cut(uri, "?")
		b.WriteString(" on " + path)
	}
	return b.String()
}

// firstOf returns the first non-empty string.
func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// fields reads the members of an event and keeps the first error, so that
// mapping twenty of them stays readable; every read after an error is a
// no-op returning the zero value.
type fields struct{ err *transformers.Error }

func (f *fields) required(n transformers.Node) string {
	if f.err != nil {
		return ""
	}
	s, err := n.String()
	f.err = err
	return s
}

func (f *fields) str(n transformers.Node) string {
	if f.err != nil {
		return ""
	}
	s, err := n.OptString()
	f.err = err
	return s
}

func (f *fields) int(n transformers.Node) int64 {
	if f.err != nil || !n.Present() {
		return 0
	}
	i, err := n.Int()
	f.err = err
	return i
}

func (f *fields) object(n transformers.Node) transformers.Node {
	if f.err == nil && n.Present() && !n.IsObject() {
		f.err = n.Err(transformers.ErrType, "object or null")
	}
	return n
}

func (f *fields) array(n transformers.Node) transformers.Node {
	if f.err == nil && n.Present() && !n.IsArray() {
		f.err = n.Err(transformers.ErrType, "array or null")
	}
	return n
}

// time reads an optional timestamp. The API server writes RFC 3339 strings
// with microseconds; unlike Node.Time, numbers and numeric strings are
// refused, since no server writes them and guessing their unit would be
// wrong.
func (f *fields) time(n transformers.Node) time.Time {
	if f.err != nil || !n.Present() {
		return time.Time{}
	}
	if !n.IsString() {
		f.err = n.Err(transformers.ErrType, "RFC 3339 timestamp string")
		return time.Time{}
	}
	s, _ := n.OptString()
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		f.err = n.Errf(transformers.ErrValue, "RFC 3339 timestamp", "unparseable time")
		return time.Time{}
	}
	return t.UTC()
}
