package alertmanager_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/alertmanager"
	"github.com/auditpipe/auditpipe/transformers/transformertest"
)

func newTransformer(t testing.TB, cfg alertmanager.Config, lim transformers.Limits) *alertmanager.Transformer {
	red, err := transformers.NewRedactor(transformers.RedactConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := alertmanager.New(cfg, transformers.Options{Limits: lim, Redactor: red})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestGolden(t *testing.T) {
	transformertest.Golden(t, newTransformer(t, alertmanager.Config{}, transformers.Limits{}), "testdata")
}

func TestIDsStable(t *testing.T) {
	transformertest.IDsStable(t, newTransformer(t, alertmanager.Config{}, transformers.Limits{}), "testdata")
}

func FuzzTransform(f *testing.F) {
	transformertest.Seed(f, "testdata")
	tr := newTransformer(f, alertmanager.Config{}, transformers.Limits{})
	f.Fuzz(func(t *testing.T, body []byte) { transformertest.Check(t, tr, body) })
}

func TestParseGVK(t *testing.T) {
	tests := []struct {
		in                   string
		group, version, kind string
		ok                   bool
	}{
		{"spectrocloud.com/v1alpha1/Tenant", "spectrocloud.com", "v1alpha1", "Tenant", true},
		{"/v1/Pod", "", "v1", "Pod", true},
		{"v1/Pod", "", "v1", "Pod", true},
		{"apps/v1, Kind=Deployment", "apps", "v1", "Deployment", true},
		{"/v1, Kind=Pod", "", "v1", "Pod", true},
		{"v1, Kind=Pod", "", "v1", "Pod", true},
		{"apps/v1,Kind=Deployment", "apps", "v1", "Deployment", true},
		{"Workload", "", "", "Workload", true},
		{"", "", "", "", false},
		{"not a gvk", "", "", "", false},
		{"apps/v1/Deployment/scale", "", "", "", false},
		{"apps//Deployment", "", "", "", false},
		{"/Pod", "", "", "", false},
		{"apps/v1/", "", "", "", false},
		{".apps/v1/Deployment", "", "", "", false},
		{"apps/v1, Deployment", "", "", "", false},
		{"apps/v1, Kind=", "", "", "", false},
		{"a/b/c, Kind=D", "", "", "", false},
	}
	for _, tt := range tests {
		g, v, k, ok := alertmanager.ParseGVK(tt.in)
		if g != tt.group || v != tt.version || k != tt.kind || ok != tt.ok {
			t.Errorf("ParseGVK(%q) = %q, %q, %q, %v; want %q, %q, %q, %v", tt.in, g, v, k, ok, tt.group, tt.version, tt.kind, tt.ok)
		}
	}
}

func TestParseActor(t *testing.T) {
	tests := []struct {
		name, uid string
		want      auditpipe.Actor
	}{
		{"alice@example.com", "u1", auditpipe.Actor{Type: auditpipe.ActorUser, ID: "alice@example.com", UID: "u1", Name: "alice@example.com", Email: "alice@example.com"}},
		{"alice", "", auditpipe.Actor{Type: auditpipe.ActorUser, ID: "alice", Name: "alice"}},
		{"system:serviceaccount:mural-system:controller", "u2", auditpipe.Actor{Type: auditpipe.ActorService, ID: "system:serviceaccount:mural-system:controller", UID: "u2", Name: "system:serviceaccount:mural-system:controller"}},
		{"system:serviceaccount:ns-only", "", auditpipe.Actor{Type: auditpipe.ActorSystem, ID: "system:serviceaccount:ns-only", Name: "system:serviceaccount:ns-only"}},
		{"system:kube-controller-manager", "", auditpipe.Actor{Type: auditpipe.ActorSystem, ID: "system:kube-controller-manager", Name: "system:kube-controller-manager"}},
		{"", "u3", auditpipe.Actor{Type: auditpipe.ActorUnknown, UID: "u3"}},
		{"oidc:alice@example", "", auditpipe.Actor{Type: auditpipe.ActorUser, ID: "oidc:alice@example", Name: "oidc:alice@example"}},
	}
	for _, tt := range tests {
		if got := alertmanager.ParseActor(tt.name, tt.uid); got != tt.want {
			t.Errorf("ParseActor(%q, %q) = %+v, want %+v", tt.name, tt.uid, got, tt.want)
		}
	}
}

func TestOperationAndOutcome(t *testing.T) {
	ops := map[string]auditpipe.Operation{
		"CREATE": auditpipe.OperationCreate, "UPDATE": auditpipe.OperationUpdate, "DELETE": auditpipe.OperationDelete,
		"CONNECT": auditpipe.OperationExecute, "delete": auditpipe.OperationDelete, "PATCH": auditpipe.OperationOther, "": auditpipe.OperationOther,
	}
	for op, want := range ops {
		if got := alertmanager.Operation(op); got != want {
			t.Errorf("Operation(%q) = %q, want %q", op, got, want)
		}
	}
	outcomes := map[string]auditpipe.Outcome{
		"allowed": auditpipe.OutcomeSuccess, "denied": auditpipe.OutcomeDenied, "": auditpipe.OutcomeUnknown, "dry-run": auditpipe.OutcomeUnknown,
	}
	for s, want := range outcomes {
		if got := alertmanager.Outcome(s); got != want {
			t.Errorf("Outcome(%q) = %q, want %q", s, got, want)
		}
	}
}

func TestVersion(t *testing.T) {
	tr := newTransformer(t, alertmanager.Config{}, transformers.Limits{})
	tests := []struct {
		version string // JSON text of the member, "" to leave it out
		ok      bool
	}{
		{`"4"`, true}, {`"3"`, false}, {``, false}, {`4`, false}, {`""`, false}, {`"4.0"`, false}, {`null`, false},
	}
	for _, tt := range tests {
		body := `{"alerts":[]}`
		if tt.version != "" {
			body = `{"version":` + tt.version + `,"alerts":[]}`
		}
		_, err := transformers.Run(context.Background(), tr, transformers.Input{Body: []byte(body)})
		if tt.ok {
			if err != nil {
				t.Errorf("version %s: %v", tt.version, err)
			}
			continue
		}
		var te *transformers.Error
		if !errors.As(err, &te) || !errors.Is(err, transformers.ErrUnsupported) || te.Path != "$.version" || te.Item != -1 || !strings.Contains(te.Error(), `expected "4"`) {
			t.Errorf("version %s: got %v, want a payload-level unsupported error at $.version naming \"4\"", tt.version, err)
		}
	}
}

func TestConfig(t *testing.T) {
	for _, name := range []string{" audit", "audit\n", "au\x00dit", "\xff"} {
		_, err := alertmanager.New(alertmanager.Config{Alertname: name}, transformers.Options{})
		if err == nil || !strings.HasPrefix(err.Error(), "alertmanager.alertname: ") {
			t.Errorf("Alertname %q: got %v, want an error naming alertmanager.alertname", name, err)
		}
	}
	tr := newTransformer(t, alertmanager.Config{Alertname: "k8s-audit"}, transformers.Limits{})
	body := `{"version":"4","alerts":[
		{"labels":{"alertname":"audit","audit_id":"1","operation":"CREATE"},"startsAt":"2025-01-01T00:00:00Z"},
		{"labels":{"alertname":"k8s-audit","audit_id":"2","operation":"CREATE"},"startsAt":"2025-01-01T00:00:00Z"}]}`
	res, err := transformers.Run(context.Background(), tr, transformers.Input{Body: []byte(body)})
	if err != nil || len(res.Events) != 1 || res.Events[0].ID != "2" || res.Skipped["alertname"] != 1 {
		t.Errorf("configured alertname: got %+v, %v; want event 2 and alert 1 skipped", res, err)
	}
}

func TestMaxItems(t *testing.T) {
	tr := newTransformer(t, alertmanager.Config{}, transformers.Limits{MaxItems: 2})
	line := `{"version":"4","alerts":[{"labels":{"alertname":"other"}},{"labels":{"alertname":"other"}}]}`
	if res, err := transformers.Run(context.Background(), tr, transformers.Input{Body: []byte(line)}); err != nil || res.Skipped["alertname"] != 2 {
		t.Fatalf("2 alerts under a limit of 2: %+v, %v", res, err)
	}
	res, err := transformers.Run(context.Background(), tr, transformers.Input{Body: []byte(line + "\n" + line + "\n")})
	var te *transformers.Error
	if !errors.As(err, &te) || !errors.Is(err, transformers.ErrTooManyItems) || te.Line != 2 || te.Path != "$.alerts" {
		t.Errorf("4 alerts over two NDJSON lines under a limit of 2: got %v, want too many items at line 2 $.alerts", err)
	}
	// The first line was mapped before the second crossed the limit: the
	// payload is refused whole all the same.
	if len(res.Events) != 0 || len(res.Skipped) != 0 || len(res.Errors) != 0 {
		t.Errorf("a refused payload left %d events, skips %v, errors %v", len(res.Events), res.Skipped, res.Errors)
	}
}

func TestDetect(t *testing.T) {
	tr := newTransformer(t, alertmanager.Config{}, transformers.Limits{})
	tests := map[string]string{
		`{"version":"4","alerts":[]}`:   "$.alerts",
		`[{"version":"4","alerts":[]}]`: "$[0].alerts",
		`{"version":"4","alerts":{}}`:   "",
		`{"alerts":[]}`:                 "",
		`{"account":"a","action":"b"}`:  "",
	}
	for body, want := range tests {
		doc, err := transformers.Decode(transformers.Input{Body: []byte(body)}, transformers.Limits{}, "auto")
		if err != nil {
			t.Fatal(err)
		}
		got, ok := tr.Detect(doc.First(), transformers.Meta{})
		if got != want || ok != (want != "") {
			t.Errorf("Detect(%s) = %q, %v; want %q", body, got, ok, want)
		}
		doc.Close()
	}
}

// TestLabelsAndAnnotations: labels and annotations are read in one pass;
// the mapped ones become fields, the others details (sorted, redacted,
// empty ones dropped), and a malformed one fails its alert at its path.
func TestLabelsAndAnnotations(t *testing.T) {
	tr := newTransformer(t, alertmanager.Config{}, transformers.Limits{})
	alert := func(labels, annotations string) string {
		return `{"version":"4","alerts":[{"labels":{"alertname":"audit","audit_id":"a1","operation":"UPDATE"` + labels +
			`},"annotations":{"summary":"s"` + annotations + `},"startsAt":"2025-01-01T00:00:00Z"}]}`
	}
	tests := []struct {
		name, labels, annotations string
		details                   string // want, "" for none
		errPath                   string // want a per-alert error there
		errKind                   error
	}{
		{"mapped only", `,"name":"w","namespace":"ns","admission_status":"denied","empty":""`, `,"reason":"r"`, "", "", nil},
		{"unmapped to details", `,"zeta":"z","alpha":"a","token":"hunter2","null":null`, `,"runbook":"u"`,
			`{"annotations":{"runbook":"u"},"labels":{"alpha":"a","token":"[REDACTED]","zeta":"z"}}`, "", nil},
		{"duplicate label", `,"name":"a","name":"b"`, ``, "", "$.alerts[0].labels.name", transformers.ErrValue},
		{"number label", `,"name":7`, ``, "", "$.alerts[0].labels.name", transformers.ErrType},
		{"object annotation", ``, `,"reason":{}`, "", "$.alerts[0].annotations.reason", transformers.ErrType},
		{"duplicate annotation", ``, `,"summary":"again"`, "", "$.alerts[0].annotations.summary", transformers.ErrValue},
	}
	var many strings.Builder // past the names a scan compares
	for i := range 40 {
		fmt.Fprintf(&many, `,"l%02d":"v"`, i)
	}
	tests = append(tests, struct {
		name, labels, annotations string
		details                   string
		errPath                   string
		errKind                   error
	}{"duplicate among many", many.String() + `,"l05":"again"`, ``, "", "$.alerts[0].labels.l05", transformers.ErrValue})
	for _, tt := range tests {
		res, err := transformers.Run(context.Background(), tr, transformers.Input{Body: []byte(alert(tt.labels, tt.annotations))})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if tt.errPath != "" {
			if len(res.Errors) != 1 || res.Errors[0].Path != tt.errPath || !errors.Is(res.Errors[0], tt.errKind) || len(res.Events) != 0 {
				t.Errorf("%s: got %v, want one %v at %s", tt.name, res.Errors, tt.errKind, tt.errPath)
			}
			continue
		}
		if len(res.Events) != 1 || len(res.Errors) != 0 {
			t.Fatalf("%s: got %+v", tt.name, res)
		}
		ev := res.Events[0]
		if string(ev.Details) != tt.details {
			t.Errorf("%s: details %s, want %s", tt.name, ev.Details, tt.details)
		}
		if ev.ID != "a1" || ev.Message != "s" {
			t.Errorf("%s: event %+v", tt.name, ev)
		}
	}
}

// TestAlertStrings: an alert's optional strings are read in one pass, yet
// each problem is reported (or not) as reading them one by one would: a
// resolved or foreign alert is skipped whatever its other members hold.
func TestAlertStrings(t *testing.T) {
	tr := newTransformer(t, alertmanager.Config{}, transformers.Limits{})
	body := func(noteStatus, alertname, members string) string {
		return `{"version":"4","status":"` + noteStatus + `","alerts":[{"labels":{"alertname":"` + alertname +
			`","audit_id":"a1","operation":"UPDATE"},"startsAt":"2025-01-01T00:00:00Z"` + members + `}]}`
	}
	tests := []struct {
		name, body string
		skipped    string // want the alert skipped for this reason
		errPath    string // want an error there
		details    string // want these details otherwise
	}{
		{"strings to details", body("firing", "audit", `,"fingerprint":"f1","generatorURL":"u"`), "", "",
			`{"fingerprint":"f1","generatorURL":"u"}`},
		{"null is absent", body("firing", "audit", `,"fingerprint":null,"status":null`), "", "", ""},
		{"bad fingerprint", body("firing", "audit", `,"fingerprint":7`), "", "$.alerts[0].fingerprint", ""},
		{"first bad in reading order", body("firing", "audit", `,"generatorURL":[],"fingerprint":7`), "", "$.alerts[0].fingerprint", ""},
		{"bad status", body("firing", "audit", `,"fingerprint":7,"status":7`), "", "$.alerts[0].status", ""},
		{"resolved despite a bad fingerprint", body("firing", "audit", `,"status":"resolved","fingerprint":7`), "resolved", "", ""},
		{"resolved by its notification", body("resolved", "audit", `,"status":null,"fingerprint":7`), "resolved", "", ""},
		{"foreign despite bad labels", `{"version":"4","alerts":[{"labels":{"alertname":"other","x":1,"x":2},"status":7}]}`, "alertname", "", ""},
		{"ours with bad labels", `{"version":"4","alerts":[{"labels":{"alertname":"audit","x":1}}]}`, "", "$.alerts[0].labels.x", ""},
	}
	for _, tt := range tests {
		res, err := transformers.Run(context.Background(), tr, transformers.Input{Body: []byte(tt.body)})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		switch {
		case tt.skipped != "":
			if res.Skipped[tt.skipped] != 1 || len(res.Errors)+len(res.Events) != 0 {
				t.Errorf("%s: got %+v, want skipped as %s", tt.name, res, tt.skipped)
			}
		case tt.errPath != "":
			if len(res.Errors) != 1 || res.Errors[0].Path != tt.errPath || len(res.Events) != 0 {
				t.Errorf("%s: got errors %v and %d events, want one error at %s", tt.name, res.Errors, len(res.Events), tt.errPath)
			}
		default:
			if len(res.Events) != 1 || len(res.Errors) != 0 || string(res.Events[0].Details) != tt.details {
				t.Errorf("%s: got %+v, want one event with details %s", tt.name, res, tt.details)
			}
		}
	}
}
