package k8s_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/k8s"
	"github.com/auditpipe/auditpipe/transformers/transformertest"
)

// objectsDir holds the cases run with every stage kept and objects
// included.
const objectsDir = "testdata/include_objects"

var objectsConfig = k8s.Config{
	Stages:         []string{k8s.StageRequestReceived, k8s.StageResponseStarted, k8s.StageResponseComplete, k8s.StagePanic},
	IncludeObjects: true,
}

func newTransformer(t testing.TB, cfg k8s.Config, lim transformers.Limits) *k8s.Transformer {
	red, err := transformers.NewRedactor(transformers.RedactConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := k8s.New(cfg, transformers.Options{Limits: lim, Redactor: red})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestGolden(t *testing.T) {
	transformertest.Golden(t, newTransformer(t, k8s.Config{}, transformers.Limits{}), "testdata")
}

func TestGoldenIncludeObjects(t *testing.T) {
	transformertest.Golden(t, newTransformer(t, objectsConfig, transformers.Limits{}), objectsDir)
}

func TestIDsStable(t *testing.T) {
	transformertest.IDsStable(t, newTransformer(t, k8s.Config{}, transformers.Limits{}), "testdata")
	transformertest.IDsStable(t, newTransformer(t, objectsConfig, transformers.Limits{}), objectsDir)
}

func FuzzTransform(f *testing.F) {
	transformertest.Seed(f, "testdata")
	transformertest.Seed(f, objectsDir)
	def := newTransformer(f, k8s.Config{}, transformers.Limits{})
	objects := newTransformer(f, objectsConfig, transformers.Limits{})
	f.Fuzz(func(t *testing.T, body []byte) {
		transformertest.Check(t, def, body)
		transformertest.Check(t, objects, body)
	})
}

// The log backend writes each event with its envelope, the webhook backend
// lists them without one: the same request must get the same id from both.
func TestSameIDFromLogAndWebhook(t *testing.T) {
	const event = `"level":"Metadata","auditID":"5f1d2f3c","stage":"ResponseComplete","verb":"get",` +
		`"requestReceivedTimestamp":"2025-11-04T13:37:21.512394Z","stageTimestamp":"2025-11-04T13:37:21.530118Z"`
	tr := newTransformer(t, k8s.Config{}, transformers.Limits{})
	log := run(t, tr, `{"kind":"Event","apiVersion":"audit.k8s.io/v1",`+event+"}\n")
	hook := run(t, tr, `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[{`+event+`}]}`)
	if len(log.Events) != 1 || len(hook.Events) != 1 || log.Events[0].ID != hook.Events[0].ID {
		t.Fatalf("log %+v and webhook %+v should give one event with the same id", log.Events, hook.Events)
	}
}

func TestMaxItems(t *testing.T) {
	tr := newTransformer(t, k8s.Config{}, transformers.Limits{MaxItems: 2})
	item := `{"auditID":"a","stage":"ResponseComplete","verb":"get","requestReceivedTimestamp":"2025-11-04T13:37:21Z"}`
	res, err := transformers.Run(context.Background(), tr, transformers.Input{
		Body: []byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[` + item + "," + item + "," + item + `]}`)})
	if !errors.Is(err, transformers.ErrTooManyItems) || len(res.Events) != 0 {
		t.Fatalf("got %d events, error %v; want none and ErrTooManyItems", len(res.Events), err)
	}
	if te := transformers.AsError(k8s.Format, err); te.Path != "$.items" {
		t.Errorf("path %q, want $.items", te.Path)
	}
	// A log whose second line crosses the limit, after the first was
	// mapped: refused whole all the same, and the total counted.
	list := `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[` + item + "," + item + `]}`
	held := transformers.Result{Events: []auditpipe.Event{{ID: "held"}}, Skipped: map[string]int{"stage": 1}}
	err = tr.Transform(context.Background(), transformers.Input{Body: []byte(item + "\n" + list + "\n")}, &held)
	var te *transformers.Error
	if !errors.As(err, &te) || !errors.Is(err, transformers.ErrTooManyItems) || te.Line != 2 || te.Got != "3" {
		t.Errorf("NDJSON over the limit: %v, want too many items at line 2, got 3", err)
	}
	if len(held.Events) != 1 || held.Events[0].ID != "held" || held.Skipped["stage"] != 1 || len(held.Skipped) != 1 {
		t.Errorf("a refused payload changed the result: %+v", held)
	}
}

func TestNew(t *testing.T) {
	_, err := k8s.New(k8s.Config{Stages: []string{"ResponseComplete", "responsecomplete"}}, transformers.Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "k8s.stages[1]: ") {
		t.Errorf("error %v, want one naming k8s.stages[1]", err)
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		body, want string
	}{
		{`{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a"}`, "$.apiVersion"},
		{`{"kind":"EventList","apiVersion":"audit.k8s.io/v1beta1","items":[]}`, "$.apiVersion"},
		{`{"auditID":"a","stage":"ResponseComplete","verb":"get"}`, "$.auditID"},
		{`{"kind":"Event","apiVersion":"v1","reason":"Pulled"}`, ""},
		{`{"auditID":"a","verb":"get"}`, ""},
		{`[{"auditID":"a","stage":"ResponseComplete","verb":"get"}]`, ""},
	}
	tr := newTransformer(t, k8s.Config{}, transformers.Limits{})
	for _, tt := range tests {
		doc, err := transformers.Decode(transformers.Input{Body: []byte(tt.body)}, transformers.Limits{}, k8s.Format)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := tr.Detect(doc.First(), transformers.Meta{})
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("Detect(%s) = %q, %v; want %q", tt.body, got, ok, tt.want)
		}
		doc.Close()
	}
}

func TestOperation(t *testing.T) {
	tests := []struct {
		verb, subresource string
		want              auditpipe.Operation
	}{
		{"create", "", auditpipe.OperationCreate},
		{"get", "", auditpipe.OperationRead},
		{"list", "", auditpipe.OperationRead},
		{"watch", "", auditpipe.OperationRead},
		{"update", "", auditpipe.OperationUpdate},
		{"patch", "status", auditpipe.OperationUpdate},
		{"delete", "", auditpipe.OperationDelete},
		{"deletecollection", "", auditpipe.OperationDelete},
		{"impersonate", "", auditpipe.OperationExecute},
		{"bind", "", auditpipe.OperationExecute},
		{"escalate", "", auditpipe.OperationExecute},
		{"approve", "", auditpipe.OperationExecute},
		{"create", "exec", auditpipe.OperationExecute},
		{"get", "exec", auditpipe.OperationExecute}, // WebSocket clients
		{"create", "attach", auditpipe.OperationExecute},
		{"create", "portforward", auditpipe.OperationExecute},
		{"create", "proxy", auditpipe.OperationExecute},
		{"get", "proxy", auditpipe.OperationRead},
		{"create", "binding", auditpipe.OperationCreate},
		{"post", "", auditpipe.OperationOther}, // non-resource requests use the HTTP method
		{"Create", "", auditpipe.OperationOther},
		{"", "", auditpipe.OperationOther},
	}
	for _, tt := range tests {
		if got := k8s.Operation(tt.verb, tt.subresource); got != tt.want {
			t.Errorf("Operation(%q, %q) = %q, want %q", tt.verb, tt.subresource, got, tt.want)
		}
	}
}

func TestOutcome(t *testing.T) {
	tests := []struct {
		stage            string
		code             int64
		status, decision string
		want             auditpipe.Outcome
	}{
		{k8s.StageResponseComplete, 200, "", "allow", auditpipe.OutcomeSuccess},
		{k8s.StageResponseComplete, 201, "Success", "", auditpipe.OutcomeSuccess},
		{k8s.StageResponseStarted, 101, "", "allow", auditpipe.OutcomeSuccess},
		{k8s.StageResponseComplete, 403, "Failure", "forbid", auditpipe.OutcomeDenied},
		{k8s.StageResponseComplete, 403, "Failure", "allow", auditpipe.OutcomeDenied}, // admission webhook refusal
		{k8s.StageResponseComplete, 0, "", "forbid", auditpipe.OutcomeDenied},
		{k8s.StageResponseComplete, 401, "Failure", "", auditpipe.OutcomeFailure},
		{k8s.StageResponseComplete, 404, "Failure", "allow", auditpipe.OutcomeFailure},
		{k8s.StageResponseComplete, 409, "Failure", "allow", auditpipe.OutcomeFailure},
		{k8s.StagePanic, 500, "Failure", "allow", auditpipe.OutcomeFailure},
		{k8s.StagePanic, 0, "", "allow", auditpipe.OutcomeFailure},
		{k8s.StageResponseComplete, 0, "Failure", "", auditpipe.OutcomeFailure},
		{k8s.StageResponseComplete, 0, "Success", "", auditpipe.OutcomeSuccess},
		{k8s.StageRequestReceived, 0, "", "", auditpipe.OutcomeUnknown},
		{k8s.StageResponseComplete, 0, "", "allow", auditpipe.OutcomeUnknown},
	}
	for _, tt := range tests {
		if got := k8s.Outcome(tt.stage, tt.code, tt.status, tt.decision); got != tt.want {
			t.Errorf("Outcome(%q, %d, %q, %q) = %q, want %q", tt.stage, tt.code, tt.status, tt.decision, got, tt.want)
		}
	}
}

func TestParseUser(t *testing.T) {
	tests := []struct {
		username string
		want     auditpipe.ActorType
	}{
		{"alice", auditpipe.ActorUser},
		{"alice@example.com", auditpipe.ActorUser},
		{"oidc:alice", auditpipe.ActorUser},
		{"system:serviceaccount:argocd:argocd-server", auditpipe.ActorService},
		{"system:node:ip-10-0-3-17.ec2.internal", auditpipe.ActorSystem},
		{"system:kube-scheduler", auditpipe.ActorSystem},
		{"system:kube-controller-manager", auditpipe.ActorSystem},
		{"system:apiserver", auditpipe.ActorSystem},
		{"system:bootstrap:abcdef", auditpipe.ActorToken},
		{"system:anonymous", auditpipe.ActorUnknown},
		{"", auditpipe.ActorUnknown},
	}
	for _, tt := range tests {
		want := auditpipe.Actor{Type: tt.want, ID: tt.username, UID: "u1", Name: tt.username}
		if got := k8s.ParseUser(tt.username, "u1"); got != want {
			t.Errorf("ParseUser(%q) = %+v, want %+v", tt.username, got, want)
		}
	}
}

func TestCategory(t *testing.T) {
	tests := []struct {
		verb, group, resource, subresource string
		want                               []string
	}{
		{"create", "apps", "deployments", "", []string{"configuration"}},
		{"patch", "", "configmaps", "", []string{"configuration"}},
		{"create", "", "pods", "binding", []string{"configuration"}},
		{"get", "apps", "deployments", "", nil},
		{"list", "", "secrets", "", nil},
		{"update", "rbac.authorization.k8s.io", "clusterrolebindings", "", []string{"iam"}},
		{"get", "rbac.authorization.k8s.io", "roles", "", []string{"iam"}},
		{"create", "", "serviceaccounts", "token", []string{"iam"}},
		{"impersonate", "", "users", "", []string{"iam"}},
		{"create", "authentication.k8s.io", "tokenreviews", "", []string{"authentication"}},
		{"update", "certificates.k8s.io", "certificatesigningrequests", "approval", []string{"authentication"}},
		{"create", "authorization.k8s.io", "subjectaccessreviews", "", nil},
		{"patch", "", "pods", "status", nil},
		{"create", "", "pods", "exec", nil},
		{"update", "coordination.k8s.io", "leases", "", nil},
		{"create", "", "events", "", nil},
		{"create", "events.k8s.io", "events", "", nil},
	}
	for _, tt := range tests {
		if got := k8s.Category(tt.verb, tt.group, tt.resource, tt.subresource); !slices.Equal(got, tt.want) {
			t.Errorf("Category(%q, %q, %q, %q) = %v, want %v", tt.verb, tt.group, tt.resource, tt.subresource, got, tt.want)
		}
	}
}

func run(t *testing.T, tr transformers.Transformer, body string) transformers.Result {
	t.Helper()
	res, err := transformers.Run(context.Background(), tr, transformers.Input{Body: []byte(body)})
	if err != nil || len(res.Errors) > 0 {
		t.Fatalf("transform: %v %v", err, res.Errors)
	}
	return res
}
