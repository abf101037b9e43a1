package elasticsearch

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/internal/jsonw"
)

// ECSVersion is the version of the Elastic Common Schema the documents
// follow, written to ecs.version.
const ECSVersion = "8.11.0"

// AppendECS appends the ECS document for ev to dst: the fields ECS defines
// where the event has them, and the rest of the event under "auditpipe",
// so that nothing is lost and nothing is forced into an ECS field whose
// meaning differs (README.md has the table). It writes JSON by hand, in
// the same spelling as encoding/json, because it runs for every event.
//
// Values are copied, not checked: ev is expected to pass Validate (in
// particular Details must be a JSON object), except that a client IP that
// does not parse goes to auditpipe.client.ip instead of source.ip, where
// Elasticsearch's ip type would reject the whole document.
func AppendECS(dst []byte, ev *auditpipe.Event) []byte {
	dst = append(dst, `{"@timestamp":`...)
	dst = jsonw.AppendTime(dst, ev.Time)
	dst = append(dst, `,"ecs":{"version":"`+ECSVersion+`"},"event":{"kind":"event","id":`...)
	dst = jsonw.AppendString(dst, ev.ID)
	dst = append(dst, `,"action":`...)
	dst = jsonw.AppendString(dst, ev.Action)
	dst = append(dst, `,"outcome":"`...)
	dst = append(dst, ecsOutcome(ev.Outcome)...)
	dst = append(dst, '"')
	dst = appendCategories(dst, ev.Category)
	dst = append(dst, `,"type":["`...)
	dst = append(dst, ecsType(ev.Operation)...)
	if ev.Outcome == auditpipe.OutcomeDenied {
		dst = append(dst, `","denied`...)
	}
	dst = append(dst, `"],"provider":`...)
	dst = jsonw.AppendString(dst, ev.Source.Type)
	dst = append(dst, `,"dataset":"auditpipe.`...)
	dst = jsonw.AppendEscaped(dst, ev.Source.Type)
	dst = append(dst, '"')
	if !ev.ObservedTime.IsZero() {
		dst = append(dst, `,"created":`...)
		dst = jsonw.AppendTime(dst, ev.ObservedTime)
	}
	dst = appendField(dst, "reason", ev.Reason)
	dst = append(dst, '}')
	dst = appendField(dst, "message", ev.Message)

	a := &ev.Actor
	if a.ID != "" || a.Name != "" || a.Email != "" || a.Provider != "" {
		dst = append(dst, `,"user":{`...)
		n := len(dst)
		dst = appendField(dst, "id", a.ID)
		dst = appendField(dst, "name", a.Name)
		dst = appendField(dst, "email", a.Email)
		dst = appendField(dst, "domain", a.Provider)
		dst = closeObject(dst, n)
	}
	ipOK := ev.Client.IP != "" && validIP(ev.Client.IP)
	if ipOK {
		dst = append(dst, `,"source":{"ip":`...)
		dst = jsonw.AppendString(dst, ev.Client.IP)
		dst = append(dst, '}')
	}
	if ev.Client.UserAgent != "" {
		dst = append(dst, `,"user_agent":{"original":`...)
		dst = jsonw.AppendString(dst, ev.Client.UserAgent)
		dst = append(dst, '}')
	}
	r := &ev.Resource
	if isKubernetes(ev.Source.Type) {
		dst = append(dst, `,"orchestrator":{"type":"kubernetes"`...)
		dst = appendField(dst, "namespace", r.Namespace)
		dst = appendField(dst, "api_version", r.APIVersion)
		if r.Type != "" || r.Name != "" || r.ID != "" {
			dst = append(dst, `,"resource":{`...)
			n := len(dst)
			dst = appendField(dst, "type", r.Type)
			dst = appendField(dst, "name", r.Name)
			dst = appendField(dst, "id", r.ID)
			dst = closeObject(dst, n)
		}
		dst = append(dst, '}')
	}
	if ev.Tenant.Account != "" {
		dst = append(dst, `,"cloud":{"account":{"id":`...)
		dst = jsonw.AppendString(dst, ev.Tenant.Account)
		dst = append(dst, `}}`...)
	}
	dst = appendLabels(dst, ev.Labels)

	dst = append(dst, `,"auditpipe":{"schema_version":`...)
	dst = jsonw.AppendString(dst, ev.SchemaVersion)
	dst = append(dst, `,"operation":`...)
	dst = jsonw.AppendString(dst, string(ev.Operation))
	dst = append(dst, `,"outcome":`...)
	dst = jsonw.AppendString(dst, string(ev.Outcome))
	if len(ev.Category) > 0 {
		dst = append(dst, `,"category":`...)
		dst = jsonw.AppendStrings(dst, ev.Category)
	}
	dst = append(dst, `,"source":{"type":`...)
	dst = jsonw.AppendString(dst, ev.Source.Type)
	dst = appendField(dst, "name", ev.Source.Name)
	dst = appendField(dst, "format", ev.Source.Format)
	dst = append(dst, '}')
	if a.Type != "" || a.UID != "" {
		dst = append(dst, `,"actor":{`...)
		n := len(dst)
		dst = appendField(dst, "type", string(a.Type))
		dst = appendField(dst, "uid", a.UID)
		dst = closeObject(dst, n)
	}
	if *r != (auditpipe.Resource{}) {
		dst = append(dst, `,"resource":{`...)
		n := len(dst)
		dst = appendField(dst, "type", r.Type)
		dst = appendField(dst, "id", r.ID)
		dst = appendField(dst, "name", r.Name)
		dst = appendField(dst, "namespace", r.Namespace)
		dst = appendField(dst, "api_group", r.APIGroup)
		dst = appendField(dst, "api_version", r.APIVersion)
		dst = closeObject(dst, n)
	}
	if ev.Tenant != (auditpipe.Tenant{}) {
		dst = append(dst, `,"tenant":{`...)
		n := len(dst)
		dst = appendField(dst, "account", ev.Tenant.Account)
		dst = appendField(dst, "org", ev.Tenant.Org)
		dst = appendField(dst, "project", ev.Tenant.Project)
		dst = closeObject(dst, n)
	}
	if ev.Client.IP != "" && !ipOK {
		dst = append(dst, `,"client":{"ip":`...)
		dst = jsonw.AppendString(dst, ev.Client.IP)
		dst = append(dst, '}')
	}
	if len(ev.Details) > 0 {
		dst = append(dst, `,"details":`...)
		dst = append(dst, ev.Details...)
	}
	dst = appendField(dst, "raw_sha256", ev.RawSHA256)
	if ev.Integrity != nil && len(ev.Labels) > 0 {
		// The ECS labels are dedotted; `auditpipe verify` needs the
		// labels the hash covers, so a sealed event keeps them verbatim.
		dst = append(dst, `,"labels":`...)
		dst = eventjson.AppendLabels(dst, ev.Labels)
	}
	if ev.Integrity != nil {
		dst = append(dst, `,"integrity":`...)
		dst = eventjson.AppendIntegrity(dst, ev.Integrity)
	}
	return append(dst, `}}`...)
}

// ecsOutcome maps the schema's outcome onto event.outcome, which ECS
// limits to success, failure and unknown: a denial is a failure (the
// original stays in auditpipe.outcome).
func ecsOutcome(o auditpipe.Outcome) string {
	switch o {
	case auditpipe.OutcomeSuccess:
		return "success"
	case auditpipe.OutcomeFailure, auditpipe.OutcomeDenied:
		return "failure"
	}
	return "unknown"
}

// ecsType maps the operation onto one of ECS's event.type values.
func ecsType(op auditpipe.Operation) string {
	switch op {
	case auditpipe.OperationCreate:
		return "creation"
	case auditpipe.OperationRead:
		return "access"
	case auditpipe.OperationUpdate:
		return "change"
	case auditpipe.OperationDelete:
		return "deletion"
	case auditpipe.OperationLogin:
		return "start"
	case auditpipe.OperationLogout:
		return "end"
	}
	return "info"
}

// ecsCategory reports whether c is one of ECS 8.11's event.category
// values; Elastic's security rules and dashboards filter on them, so
// anything else is kept only in auditpipe.category.
func ecsCategory(c string) bool {
	switch c {
	case "api", "authentication", "configuration", "database", "driver", "email", "file", "host", "iam",
		"intrusion_detection", "library", "malware", "network", "package", "process", "registry",
		"session", "threat", "vulnerability", "web":
		return true
	}
	return false
}

func appendCategories(dst []byte, cats []string) []byte {
	first := true
	for i, c := range cats {
		if !ecsCategory(c) || slices.Contains(cats[:i], c) {
			continue
		}
		if first {
			dst = append(dst, `,"category":[`...)
			first = false
		} else {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, c...) // a known value: nothing to escape
		dst = append(dst, '"')
	}
	if !first {
		dst = append(dst, ']')
	}
	return dst
}

// isKubernetes reports whether a source's resources are Kubernetes objects:
// the API server's audit log, and the admission alerts Alertmanager relays.
func isKubernetes(sourceType string) bool {
	return sourceType == "k8s" || sourceType == "alertmanager"
}

func validIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// appendField writes ,"name":"value" unless value is empty.
func appendField(dst []byte, name, value string) []byte {
	if value == "" {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return jsonw.AppendString(dst, value)
}

// closeObject ends an object whose members, from n on, were each written
// with a leading comma: it drops the first one.
func closeObject(dst []byte, n int) []byte {
	if len(dst) > n {
		copy(dst[n:], dst[n+1:])
		dst = dst[:len(dst)-1]
	}
	return append(dst, '}')
}

// appendLabels writes the labels with '.' in their names replaced by '_',
// as Beats' dedot does: Elasticsearch reads a dotted name as a path, so
// "app" and "app.kubernetes.io/name" would need labels.app to be both a
// keyword and an object, and the document would be rejected. Names that
// become equal keep the first in sorted order.
func appendLabels(dst []byte, labels map[string]string) []byte {
	if len(labels) == 0 {
		return dst
	}
	var stack [16]string
	keys := stack[:0]
	for k := range labels {
		if k != "" {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return dst
	}
	slices.SortFunc(keys, compareLabels)
	dst = append(dst, `,"labels":{`...)
	for i, k := range keys {
		if i > 0 {
			if compareDedot(keys[i-1], k) == 0 {
				continue
			}
			dst = append(dst, ',')
		}
		n := len(dst)
		dst = jsonw.AppendString(dst, k)
		if strings.IndexByte(k, '.') >= 0 {
			// '.' is never escaped and never part of a multi-byte
			// sequence, so it can be replaced in the encoded bytes.
			for j := n; j < len(dst); j++ {
				if dst[j] == '.' {
					dst[j] = '_'
				}
			}
		}
		dst = append(dst, ':')
		dst = jsonw.AppendString(dst, labels[k])
	}
	return append(dst, '}')
}

func compareLabels(a, b string) int {
	if c := compareDedot(a, b); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// compareDedot compares a and b as if every '.' were '_'.
func compareDedot(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		x, y := a[i], b[i]
		if x == '.' {
			x = '_'
		}
		if y == '.' {
			y = '_'
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}
