// Package alertmanager decodes Prometheus Alertmanager webhook notifications
// (payload version "4") whose alerts are audit events, as PaletteAI sends
// them: one alert per event, the event in its labels and annotations.
//
// Alertmanager is a notification system, not a log, and the rules below
// follow from that. It groups alerts into one notification, sends a firing
// alert again on every repeat and after its own restarts, and sends it once
// more as "resolved" when it expires (resolve_timeout, one hour in PaletteAI).
//
// Id rule: the id is the alert's audit_id label, verbatim. PaletteAI gives
// every event a random audit_id precisely so that Alertmanager never merges
// two events; the same property makes it the one key that names the event
// across re-notifications, retries and both front doors. An alert without
// it is an error, not an event with a derived id: without audit_id,
// Alertmanager itself merges equal events into one alert, so the alert no
// longer stands for one event and no id derived from it could.
//
// Which alerts are events: only those whose alertname label is the
// configured one ("audit"), because receivers are often shared with real
// alerts; the others are skipped and counted as "alertname". A resolved
// alert is the expiry of an event already forwarded while it fired, so it is
// skipped as "resolved". Only version "4" is accepted: it is the layout this
// mapping was written against, and misreading an unknown layout would lose
// audit data silently where a refusal is visible.
//
// Mapping (labels unless noted): operation is the action verbatim and,
// normalized, the operation (CONNECT is execute); gvk gives the resource's
// api_group, api_version and type; name and namespace the resource; project
// and tenant the tenant's project and org; actor the actor's id and name
// (and email when it is one) and its type (Kubernetes user names tell
// service accounts and system components apart); actorUID the actor's uid;
// admission_status the outcome; the alert's startsAt the time; annotations
// summary and reason the message and reason. The category is
// configuration, plus iam for RBAC objects and service accounts, where
// privileges change. Every other label and annotation, the alert's
// fingerprint and generatorURL and the notification's receiver, groupKey
// and externalURL go to details, redacted, so nothing the sender said about
// the event is lost (groupLabels and commonLabels only repeat the alerts'
// own labels).
//
// A body may also hold several notifications, as NDJSON or a JSON array
// (archives, replays). Alerts are numbered across the whole body: that
// number is the item index errors report. A notification that is unusable
// as a whole (wrong version, no alerts array) fails the request when it is
// alone and is reported beside the others in a batch.
package alertmanager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/transformers"
)

// Format is the format name, also the source type of the events.
const Format = "alertmanager"

// Version is the only webhook payload version accepted.
const Version = "4"

// DefaultAlertname is the alertname PaletteAI gives its audit events.
const DefaultAlertname = "audit"

// Config configures the format (the `alertmanager:` YAML block).
type Config struct {
	// Alertname selects the alerts that are audit events by their alertname
	// label; others are skipped and counted. Default "audit".
	Alertname string `yaml:"alertname"`
}

// Transformer decodes Alertmanager webhook notifications.
type Transformer struct {
	cfg  Config
	opts transformers.Options
}

// New returns an Alertmanager transformer, or an error naming the bad key.
func New(cfg Config, opts transformers.Options) (*Transformer, error) {
	if cfg.Alertname == "" {
		cfg.Alertname = DefaultAlertname
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Transformer{cfg: cfg, opts: opts}, nil
}

func (c Config) validate() error {
	switch {
	case !utf8.ValidString(c.Alertname):
		return errors.New("alertmanager.alertname: must be valid UTF-8")
	case strings.TrimSpace(c.Alertname) != c.Alertname:
		// A stray space from YAML quoting would silently skip every alert.
		return fmt.Errorf("alertmanager.alertname: must not start or end with white space, got %q", c.Alertname)
	case strings.IndexFunc(c.Alertname, unicode.IsControl) >= 0:
		return fmt.Errorf("alertmanager.alertname: must not contain control characters, got %q", c.Alertname)
	}
	return nil
}

// Transform implements transformers.Transformer.
func (t *Transformer) Transform(ctx context.Context, in transformers.Input, res *transformers.Result) error {
	res.Format = Format
	doc, err := transformers.Decode(in, t.opts.Limits, Format)
	if err != nil {
		return err
	}
	defer doc.Close()
	res.Errors = append(res.Errors, doc.Errors...)
	// A payload unusable as a whole fails the request when it is the only
	// one; in a batch it is reported beside the others, so one bad line
	// of an archive does not hold back the rest. Notifications are mapped
	// as they are read, one tree at a time; a payload found over
	// Limits.MaxItems further on is refused whole all the same: what was
	// mapped of it is taken back.
	single := !doc.NDJSON && len(doc.Roots) == 1 && !doc.Roots[0].IsArray()
	maxItems := t.opts.Limits.WithDefaults().MaxItems
	mark := res.Mark()
	alerts, item := 0, 0
	var whole *transformers.Error
	// The roots are batches themselves (of alerts), which is why their
	// units are not Document.Items.
	doc.Each(func(p transformers.Node, r *transformers.Root) bool {
		n, err := readNotification(p.AsItem(-1), res)
		if err != nil {
			if single {
				whole = err
				return false
			}
			res.Fail(err)
			return true
		}
		if alerts += n.alerts.Len(); alerts > maxItems {
			whole = n.alerts.Err(transformers.ErrTooManyItems, fmt.Sprintf("at most %d alerts", maxItems))
			whole.Got = fmt.Sprintf("at least %d", alerts)
			return false
		}
		n.raw, n.doc = r.RawSHA256(), doc
		for i := range n.alerts.Len() {
			alert := n.alerts.Index(i).AsItem(item)
			item++
			ev, skip, ierr := t.event(&n, alert)
			if skip != "" {
				res.Skip(skip)
				continue
			}
			res.Emit(ev, ierr, in.Meta, n.raw, Format, alert)
		}
		return true
	})
	if whole != nil {
		res.Rollback(mark)
		return whole
	}
	return nil
}

// Detect implements transformers.Detector: a webhook notification has a
// version and an array of alerts.
func (t *Transformer) Detect(root transformers.Node, _ transformers.Meta) (string, bool) {
	if root.IsArray() && root.Len() > 0 {
		root = root.Index(0)
	}
	if alerts := root.Get("alerts"); root.Get("version").Exists() && alerts.IsArray() {
		return alerts.Path(), true
	}
	return "", false
}

// notification is one webhook payload of a document.
type notification struct {
	doc    *transformers.Document
	alerts transformers.Node
	raw    string
	// Views into the notification's tree, valid while Document.Each
	// visits it: they only feed comparisons and the details, which are
	// encoded before.
	status                          []byte
	receiver, groupKey, externalURL []byte
}

func readNotification(p transformers.Node, res *transformers.Result) (notification, *transformers.Error) {
	n := notification{alerts: p.Get("alerts")}
	if _, err := p.Object(); err != nil {
		return n, err
	}
	version := p.Get("version")
	if v, _ := version.OptStringBytes(); !version.IsString() || string(v) != Version {
		e := version.Errf(transformers.ErrUnsupported, strconv.Quote(Version), "only Alertmanager webhook payload version "+Version+" is supported")
		if isVersionNumber(string(v)) {
			e.Got = strconv.Quote(string(v)) // a version number is never a secret
		}
		return n, e
	}
	if !n.alerts.IsArray() {
		return n, n.alerts.Err(missingOr(n.alerts, transformers.ErrType), "array")
	}
	var s [len(notificationStrings)][]byte
	if err := p.OptStrings(notificationStrings[:], s[:]); err != nil {
		return n, err
	}
	n.status, n.receiver, n.groupKey, n.externalURL = s[0], s[1], s[2], s[3]
	// Alertmanager leaves out the alerts beyond the receiver's max_alerts
	// and only counts them: those are audit events lost for good, which a
	// retry cannot bring back, so they are reported without failing the
	// alerts that did arrive.
	if tr := p.Get("truncatedAlerts"); tr.Present() {
		if k, err := tr.Int(); err == nil && k > 0 {
			e := tr.Errf(transformers.ErrValue, "0", "Alertmanager left out alerts of this group, and the audit events with them: set max_alerts to 0 on the receiver")
			e.Got = strconv.FormatInt(k, 10)
			res.Fail(e)
		}
	}
	return n, nil
}

// notificationStrings are the optional strings of a notification, in the
// order readNotification reads them.
var notificationStrings = [...]string{"status", "receiver", "groupKey", "externalURL"}

func isVersionNumber(s string) bool {
	return s != "" && len(s) <= 8 && strings.Trim(s, "0123456789.") == ""
}

// The label and annotation fields an event is made of, gathered as views
// in one pass and copied into the event in one allocation.
const (
	fID = iota
	fAction
	fGVK
	fName
	fNamespace
	fProject
	fTenant
	fActor
	fActorUID
	fStatus
	fSummary
	fReason
	nFields
)

// labelField is the event field a label maps to, or -1 for the labels
// that go to details. (A switch: a map lookup here was a tenth of the
// mapping's time.)
func labelField(name []byte) int {
	switch string(name) {
	case "audit_id":
		return fID
	case "operation":
		return fAction
	case "gvk":
		return fGVK
	case "name":
		return fName
	case "namespace":
		return fNamespace
	case "project":
		return fProject
	case "tenant":
		return fTenant
	case "actor":
		return fActor
	case "actorUID":
		return fActorUID
	case "admission_status":
		return fStatus
	}
	return -1
}

// The categories of events, shared by them (an event's slices and maps
// are read-only once it is made); full slices, so an append copies.
var (
	categoryConfiguration = []string{"configuration"}
	categoryIAM           = []string{"configuration", "iam"}
)

// alertStrings are the optional string members of an alert, read in one
// pass (startsAt is required: Node.StringBytes reads it).
var alertStrings = [...]string{aStatus: "status", aFingerprint: "fingerprint", aGeneratorURL: "generatorURL"}

const (
	aStatus = iota
	aFingerprint
	aGeneratorURL
)

// event maps one alert, or says why it is skipped. It reads the labels
// and annotations once each, as views into the document, and copies only
// what the event keeps: this is the hot path of Alertmanager through the
// Fluent Bit plugin. The steps run in the order of the errors they report:
// an alert with several problems gets the first of them.
func (t *Transformer) event(n *notification, alert transformers.Node) (ev auditpipe.Event, skip string, err *transformers.Error) {
	if _, err = alert.Object(); err != nil {
		return ev, "", err
	}
	labelsNode := alert.Get("labels")
	if _, err = labelsNode.Object(); err != nil {
		return ev, "", err
	}
	// The pairs live on the stack while they are read (the labels', then
	// the annotations' after them); the few an event keeps move to the
	// heap with the details.
	var pairBuf [16]transformers.Pair
	var f [nFields][]byte
	labels, skip, err := t.labels(labelsNode, &f, pairBuf[:0])
	if skip != "" || err != nil {
		return ev, skip, err
	}
	// One pass for the alert's strings; an error about one of them is
	// reported where reading them one by one would report it.
	var s [len(alertStrings)][]byte
	serr := alert.OptStrings(alertStrings[:], s[:])
	if skip, err = alertStatus(n, alert, s[aStatus], serr); skip != "" || err != nil {
		return ev, skip, err
	}
	if err = required(labelsNode, &f); err != nil {
		return ev, "", err
	}
	var annotations []transformers.Pair
	f[fSummary], f[fReason], annotations, err = readAnnotations(alert, labels[len(labels):])
	if err != nil {
		return ev, "", err
	}
	if ev.Time, err = rfc3339(alert.Get("startsAt")); err != nil {
		return ev, "", err
	}
	if err = mapFields(&ev, n.doc, &f, labelsNode); err != nil {
		return ev, "", err
	}
	if serr != nil {
		return ev, "", serr
	}
	ev.Details, err = t.details(n, labels, annotations, &s)
	return ev, "", err
}

// labels reads the alert's labels into dst: the event's fields into f,
// the others into rest, for details. An alert of another name is skipped
// as "alertname" before its labels are judged: it is not ours to judge.
func (t *Transformer) labels(labelsNode transformers.Node, f *[nFields][]byte, dst []transformers.Pair) (rest []transformers.Pair, skip string, err *transformers.Error) {
	labels, err := labelsNode.StringPairs(dst)
	var name []byte
	rest = labels[:0]
	for _, p := range labels {
		if i := labelField(p.Name); i >= 0 {
			f[i] = p.Value
		} else if string(p.Name) == "alertname" {
			name = p.Value
		} else {
			rest = append(rest, p)
		}
	}
	if err != nil {
		name, _ = labelsNode.Get("alertname").OptStringBytes()
	}
	if string(name) != t.cfg.Alertname {
		return rest, "alertname", nil
	}
	return rest, "", err
}

// alertStatus skips a resolved alert, by its own status or else the
// notification's. serr is the error reading the alert's strings, of which
// status is reported here, the others with the details.
func alertStatus(n *notification, alert transformers.Node, status []byte, serr *transformers.Error) (skip string, err *transformers.Error) {
	if serr != nil && status == nil {
		if _, err = alert.Get("status").OptStringBytes(); err != nil {
			return "", err
		}
	}
	if len(status) == 0 {
		status = n.status
	}
	if string(status) == "resolved" {
		return "resolved", nil
	}
	return "", nil
}

// required checks the labels an event cannot be made without, with the
// errors StringBytes gives (missing, not a string, empty) at their own
// paths.
func required(labelsNode transformers.Node, f *[nFields][]byte) *transformers.Error {
	if f[fID] == nil {
		_, err := labelsNode.Get("audit_id").StringBytes()
		return err
	}
	if f[fAction] == nil {
		_, err := labelsNode.Get("operation").StringBytes()
		return err
	}
	return nil
}

// readAnnotations reads the alert's annotations into dst: summary and
// reason for the event, the others in rest, for details.
func readAnnotations(alert transformers.Node, dst []transformers.Pair) (summary, reason []byte, rest []transformers.Pair, err *transformers.Error) {
	annotations, err := alert.Get("annotations").StringPairs(dst)
	if err != nil {
		return nil, nil, nil, err
	}
	rest = annotations[:0]
	for _, p := range annotations {
		switch string(p.Name) {
		case "summary":
			summary = p.Value
		case "reason":
			reason = p.Value
		default:
			rest = append(rest, p)
		}
	}
	return summary, reason, rest, nil
}

// mapFields copies the event's fields out of the document, in one
// allocation, and derives the rest of the event from them.
func mapFields(ev *auditpipe.Event, doc *transformers.Document, f *[nFields][]byte, labelsNode transformers.Node) *transformers.Error {
	var gvk, actor, actorUID, outcome string
	doc.Strings([]*string{
		&ev.ID, &ev.Action, &gvk, &ev.Resource.Name, &ev.Resource.Namespace, &ev.Tenant.Project, &ev.Tenant.Org,
		&actor, &actorUID, &outcome, &ev.Message, &ev.Reason,
	}, f[:])
	if gvk != "" {
		var ok bool
		ev.Resource.APIGroup, ev.Resource.APIVersion, ev.Resource.Type, ok = ParseGVK(gvk)
		if !ok {
			return labelsNode.Get("gvk").Errf(transformers.ErrValue,
				`group/version/Kind, "group/version, Kind=Kind" or Kind`, "unparseable GroupVersionKind")
		}
	}
	ev.Source = auditpipe.Source{Type: Format, Format: Format}
	ev.Operation = Operation(ev.Action)
	ev.Actor = ParseActor(actor, actorUID)
	ev.Outcome = Outcome(outcome)
	if ev.Message == "" {
		ev.Message = message(ev.Actor.Name, ev.Action, ev.Resource)
	}
	ev.Category = categoryConfiguration
	switch ev.Resource.Type {
	case "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "ServiceAccount":
		ev.Category = categoryIAM
	}
	return nil
}

// details is everything else the alert and its notification said,
// redacted.
func (t *Transformer) details(n *notification, labels, annotations []transformers.Pair, s *[len(alertStrings)][]byte) (json.RawMessage, *transformers.Error) {
	var d transformers.Details
	if len(labels) > 0 {
		d.Pairs("labels", slices.Clone(labels))
	}
	if len(annotations) > 0 {
		d.Pairs("annotations", slices.Clone(annotations))
	}
	d.Bytes("fingerprint", s[aFingerprint])
	d.Bytes("generatorURL", s[aGeneratorURL])
	d.Bytes("receiver", n.receiver)
	d.Bytes("groupKey", n.groupKey)
	d.Bytes("externalURL", n.externalURL)
	return d.Build(t.opts.Redactor)
}

func missingOr(n transformers.Node, kind error) error {
	if !n.Exists() {
		return transformers.ErrMissing
	}
	return kind
}

// rfc3339 reads a required RFC 3339 timestamp. Alertmanager writes nothing
// else, so epoch numbers, which Node.Time would accept, are refused here.
// Alertmanager's zero time means unset, and years beyond 1..9999 in UTC
// cannot be encoded again as RFC 3339, so both are refused too.
func rfc3339(n transformers.Node) (time.Time, *transformers.Error) {
	b, err := n.StringBytes()
	if err != nil {
		return time.Time{}, err
	}
	// time.Parse keeps nothing of its input: no copy needed.
	ts, perr := time.Parse(time.RFC3339Nano, unsafe.String(unsafe.SliceData(b), len(b)))
	if perr != nil {
		return time.Time{}, n.Errf(transformers.ErrValue, "RFC 3339 timestamp", "unparseable time")
	}
	if y := ts.UTC().Year(); ts.IsZero() || y < 1 || y > 9999 {
		return time.Time{}, n.Errf(transformers.ErrValue, "RFC 3339 timestamp", "unset or outside years 1 to 9999")
	}
	return ts, nil
}

// ParseGVK reads a GroupVersionKind in every spelling audit labels use:
// "group/version/Kind" (PaletteAI's; the core group as "/v1/Kind" or
// "v1/Kind"), Kubernetes' own "group/version, Kind=Kind" ("/v1, Kind=Pod")
// and a bare "Kind". The core group is "". Each part must look like a
// Kubernetes name, so free text is refused instead of split at random.
func ParseGVK(s string) (group, version, kind string, ok bool) {
	bare := false
	if gv, k, found := strings.Cut(s, ","); found {
		if kind, found = strings.CutPrefix(strings.TrimSpace(k), "Kind="); !found {
			return "", "", "", false
		}
		if group, version, found = strings.Cut(gv, "/"); !found {
			group, version = "", gv
		}
	} else {
		switch strings.Count(s, "/") {
		case 0:
			kind, bare = s, true
		case 1:
			version, kind, _ = strings.Cut(s, "/")
		case 2:
			var vk string
			group, vk, _ = strings.Cut(s, "/")
			version, kind, _ = strings.Cut(vk, "/")
		default:
			return "", "", "", false
		}
	}
	if !isName(kind, "-") || !bare && !isName(version, "-") || group != "" && !isName(group, "-.") {
		return "", "", "", false
	}
	return group, version, kind, true
}

// isName reports a non-empty run of ASCII letters and digits, with the
// characters in punct allowed inside it: the shape of Kubernetes groups
// (DNS subdomains), versions and kinds.
func isName(s, punct string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || i == len(s)-1 || strings.IndexByte(punct, c) < 0) {
			return false
		}
	}
	return s != ""
}

// Operation maps an admission operation (CREATE, UPDATE, DELETE, CONNECT)
// to the schema's operation. CONNECT (exec, attach, port-forward) runs
// something rather than changing a resource, hence execute.
func Operation(op string) auditpipe.Operation {
	switch strings.ToUpper(op) {
	case "CREATE":
		return auditpipe.OperationCreate
	case "UPDATE":
		return auditpipe.OperationUpdate
	case "DELETE":
		return auditpipe.OperationDelete
	case "CONNECT":
		return auditpipe.OperationExecute
	}
	return auditpipe.OperationOther
}

// Outcome maps admission_status. Anything but allowed or denied is unknown
// rather than guessed: an audit trail must not claim a success it was not
// told about.
func Outcome(status string) auditpipe.Outcome {
	switch strings.ToLower(status) {
	case "allowed":
		return auditpipe.OutcomeSuccess
	case "denied":
		return auditpipe.OutcomeDenied
	}
	return auditpipe.OutcomeUnknown
}

// ParseActor types a Kubernetes user name: service accounts authenticate
// as "system:serviceaccount:<namespace>:<name>", control-plane components
// and other built-in identities as "system:...", and everything else is a
// person (from OIDC, certificates, ...). The name is kept whole as id and
// name because it is what RBAC and the API server's own audit log use.
func ParseActor(name, uid string) auditpipe.Actor {
	a := auditpipe.Actor{ID: name, UID: uid, Name: name}
	switch {
	case name == "":
		a.Type = auditpipe.ActorUnknown
	case isServiceAccount(name):
		a.Type = auditpipe.ActorService
	case strings.HasPrefix(name, "system:"):
		a.Type = auditpipe.ActorSystem
	default:
		a.Type = auditpipe.ActorUser
		if looksLikeEmail(name) {
			a.Email = name
		}
	}
	return a
}

func isServiceAccount(name string) bool {
	rest, ok := strings.CutPrefix(name, "system:serviceaccount:")
	ns, sa, ok2 := strings.Cut(rest, ":")
	return ok && ok2 && ns != "" && sa != "" && !strings.Contains(sa, ":")
}

// looksLikeEmail is deliberately shallow: OIDC user names are either email
// addresses or opaque subjects, and telling those apart is all it is for.
func looksLikeEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && !strings.ContainsAny(s, " \t\r\n<>()[],;:\"") &&
		!strings.Contains(domain, "@") && strings.Contains(domain, ".") &&
		!strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".")
}

// message stands in for a missing summary annotation, worded like
// PaletteAI's own ("alice performed CREATE on Workload my-project/my-workload").
func message(actor, action string, r auditpipe.Resource) string {
	if actor == "" {
		actor = "unknown actor"
	}
	target := r.Name
	if r.Namespace != "" && r.Name != "" {
		target = r.Namespace + "/" + r.Name
	}
	parts := []string{actor, "performed", action}
	if r.Type != "" || target != "" {
		parts = append(parts, "on")
	}
	for _, s := range []string{r.Type, target} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, " ")
}
