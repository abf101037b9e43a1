package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/app"
	"github.com/auditpipe/auditpipe/transformers/transformertest"
)

// genericConfig is the mapping of testdata/generic: every field, numeric
// times in milliseconds, and pointers with ~0 and ~1 escapes and an array
// index.
var genericConfig = app.GenericConfig{
	ID: "/event_id", Time: "/ts", TimeUnit: "ms", Action: "/event/type", Outcome: "/event/result",
	OutcomeMap:   map[string]string{"OK": "success", "DENY": "denied", "ERR": "failure"},
	OperationMap: map[string]string{"user.impersonate": "login"},
	ActorID:      "/who/uid", ActorType: "/who/kind", ActorName: "/who/name", ActorEmail: "/who/mail",
	ResourceType: "/target/kind", ResourceID: "/target/id", ResourceName: "/target/display~1name",
	TenantOrg: "/org", TenantProject: "/scope/proj~0id", ClientIP: "/net/addrs/0", UserAgent: "/net/ua",
	Message: "/msg", Reason: "/why", Details: "/extra",
}

// The testdata directories and the configuration each is read with.
var dirs = map[string]app.Config{
	"testdata":                {},
	"testdata/generic":        {Generic: genericConfig},
	"testdata/generic_forced": {Flavor: "generic", Generic: app.GenericConfig{Action: "/op", Outcome: "/status", ActorID: "/user", ResourceType: "/object/type", ResourceName: "/object/name"}},
}

func newTransformer(t testing.TB, cfg app.Config) *app.Transformer {
	red, err := transformers.NewRedactor(transformers.RedactConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := app.New(cfg, transformers.Options{Redactor: red})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestGolden(t *testing.T) {
	for dir, cfg := range dirs {
		t.Run(dir, func(t *testing.T) { transformertest.Golden(t, newTransformer(t, cfg), dir) })
	}
}

func TestIDsStable(t *testing.T) {
	for dir, cfg := range dirs {
		t.Run(dir, func(t *testing.T) { transformertest.IDsStable(t, newTransformer(t, cfg), dir) })
	}
}

func FuzzTransform(f *testing.F) {
	var trs []*app.Transformer
	for dir, cfg := range dirs {
		transformertest.Seed(f, dir)
		trs = append(trs, newTransformer(f, cfg))
	}
	auto := newTransformer(f, app.Config{})
	binary := http.Header{}
	for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t"} {
		binary.Set(k, v)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, tr := range trs {
			transformertest.Check(t, tr, body)
		}
		// Binary mode: the body is the data of one CloudEvent.
		res, err := transformers.Run(context.Background(), auto, transformers.Input{Body: body, Meta: transformers.Meta{Headers: binary, ReceivedAt: transformertest.ReceivedAt}})
		var te *transformers.Error
		if err != nil && !errors.As(err, &te) {
			t.Fatalf("payload error is not a *transformers.Error: %v", err)
		}
		for i := range res.Events {
			if verr := res.Events[i].Validate(); verr != nil {
				t.Fatalf("event %d invalid: %v", i, verr)
			}
			if _, err := json.Marshal(res.Events[i]); err != nil {
				t.Fatalf("event %d does not encode: %v", i, err)
			}
		}
	})
}

// The same CloudEvent in structured, batched and binary mode gets the same
// id, and a re-sent yoq batch gets the same ids.
func TestCloudEventModesAgree(t *testing.T) {
	tr := newTransformer(t, app.Config{})
	data := `{"recorded_at":1767312000,"actor":"local","action":"backup","target":null,"outcome":"ok"}`
	structured := `{"specversion":"1.0","id":"9","source":"yoq://n1","type":"io.yoq.audit","data":` + data + `}`
	h := http.Header{}
	h.Set("ce-specversion", "1.0")
	h.Set("ce-id", "9")
	h.Set("ce-source", "yoq://n1")
	h.Set("ce-type", "io.yoq.audit")
	batchCT := http.Header{"Content-Type": {app.ContentTypeBatch}}
	var ids []string
	for _, in := range []transformers.Input{
		{Body: []byte(structured)},
		{Body: []byte("[" + structured + "]"), Meta: transformers.Meta{Headers: batchCT}},
		{Body: []byte(data), Meta: transformers.Meta{Headers: h}},
	} {
		out := transformertest.Run(t, tr, in)
		if len(out.Events) != 1 || out.Error != nil {
			t.Fatalf("%s: %+v", in.Body, out)
		}
		ids = append(ids, out.Events[0].ID)
	}
	want := auditpipe.IDFromParts("yoq://n1", "9")
	for _, id := range ids {
		if id != want {
			t.Errorf("ids %v, want all %s", ids, want)
		}
	}
}

func TestYoqDuplicates(t *testing.T) {
	tr := newTransformer(t, app.Config{})
	entry := `{"recorded_at":1767312000,"actor":"api-token","action":"secret_set","target":"k","outcome":"ok"}`
	body := []byte("[" + entry + "," + entry + "," + entry + "]")
	first := transformertest.Run(t, tr, transformers.Input{Body: body})
	again := transformertest.Run(t, tr, transformers.Input{Body: body})
	var ids []string
	for i, ev := range first.Events {
		ids = append(ids, ev.ID)
		if again.Events[i].ID != ev.ID {
			t.Errorf("re-sent batch: event %d id %s, first time %s", i, again.Events[i].ID, ev.ID)
		}
	}
	if len(ids) != 3 || ids[0] == ids[1] || ids[1] == ids[2] || ids[0] == ids[2] {
		t.Fatalf("identical entries must get distinct ids, got %v", ids)
	}
	// The first of the equals has the id a lone entry has.
	single := transformertest.Run(t, tr, transformers.Input{Body: []byte(entry)})
	if single.Events[0].ID != ids[0] || auditpipe.NthDuplicateID(ids[0], 2) != ids[2] {
		t.Errorf("ids %v do not follow NthDuplicateID from %s", ids, single.Events[0].ID)
	}
}

func TestDetect(t *testing.T) {
	generic := app.Config{Generic: app.GenericConfig{Action: "/event/type"}}
	tests := []struct {
		name    string
		cfg     app.Config
		body    string
		headers map[string]string
		want    string // "" for not detected
	}{
		{"yoq", app.Config{}, `{"recorded_at":1,"action":"secret_set"}`, nil, "$.recorded_at"},
		{"yoq array", app.Config{}, `[{"recorded_at":1,"action":"secret_set"}]`, nil, "$[0].recorded_at"},
		{"teabar actor", app.Config{}, `{"timestamp":"x","action":"a.b","actor":{}}`, nil, "$.actor"},
		{"teabar id", app.Config{}, `{"timestamp":"x","action":"a.b","id":"e1"}`, nil, "$.id"},
		{"cloudevent", app.Config{}, `{"specversion":"1.0"}`, nil, "$.specversion"},
		{"binary", app.Config{}, `{}`, map[string]string{"ce-specversion": "1.0"}, "header:ce-specversion"},
		{"content type", app.Config{}, `[]`, map[string]string{"Content-Type": "application/cloudevents-batch+json"}, "header:content-type"},
		{"teabar needs timestamp", app.Config{}, `{"action":"a.b","actor":{}}`, nil, ""},
		{"spacelift is not app", app.Config{}, `{"account":"x","action":"stack.create","actor":"github::a","timestamp":1}`, nil, ""},
		{"generic fallback", generic, `{"event":{"type":"x"}}`, nil, "$.event.type"},
		{"yoq beats generic", generic, `{"recorded_at":1,"event":{"type":"x"}}`, nil, "$.recorded_at"},
		{"forced yoq ignores teabar", app.Config{Flavor: "yoq"}, `{"timestamp":"x","action":"a.b","id":"e1"}`, nil, ""},
		{"forced yoq ignores headers", app.Config{Flavor: "yoq"}, `{}`, map[string]string{"ce-specversion": "1.0"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTransformer(t, tt.cfg)
			h := http.Header{}
			for k, v := range tt.headers {
				h.Set(k, v)
			}
			doc, err := transformers.Decode(transformers.Input{Body: []byte(tt.body)}, transformers.Limits{}, app.Format)
			if err != nil {
				t.Fatal(err)
			}
			defer doc.Close()
			got, ok := tr.Detect(doc.First(), transformers.Meta{Headers: h})
			if ok != (tt.want != "") || got != tt.want {
				t.Errorf("Detect = %q, %v; want %q", got, ok, tt.want)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		cfg  app.Config
		want string
	}{
		{app.Config{Flavor: "spacelift"}, `app.flavor: unknown flavor "spacelift"`},
		{app.Config{Flavor: "generic"}, "app.generic.action: required when app.flavor is generic"},
		{app.Config{Generic: app.GenericConfig{Time: "/ts"}}, "app.generic.action: required"},
		{app.Config{Generic: app.GenericConfig{Action: "/a", Time: "ts"}}, `app.generic.time: invalid JSON pointer "ts": must start with '/'`},
		{app.Config{Generic: app.GenericConfig{Action: "#/a"}}, `app.generic.action: invalid JSON pointer "#/a": must start with '/' (the URI fragment form`},
		{app.Config{Generic: app.GenericConfig{Action: "/a", ActorID: "/a~2b"}}, `app.generic.actor_id: invalid JSON pointer "/a~2b": '~' must be followed by 0 or 1`},
		{app.Config{Generic: app.GenericConfig{Action: "/a", TimeUnit: "h"}}, `app.generic.time_unit: must be s, ms, us or ns, got "h"`},
		{app.Config{Generic: app.GenericConfig{Action: "/a", OutcomeMap: map[string]string{"OK": "success"}}}, "app.generic.outcome_map: needs app.generic.outcome"},
		{app.Config{Generic: app.GenericConfig{Action: "/a", Outcome: "/o", OutcomeMap: map[string]string{"OK": "ok"}}}, `app.generic.outcome_map["OK"]: must be success, failure, denied or unknown, got "ok"`},
		{app.Config{Generic: app.GenericConfig{Action: "/a", OperationMap: map[string]string{"x": "write"}}}, `app.generic.operation_map["x"]: must be one of`},
		{app.Config{Flavor: "yoq", Generic: app.GenericConfig{Action: "/a"}}, "app.generic: set, but app.flavor yoq never uses it"},
		{app.Config{}, ""},
		{app.Config{Flavor: "auto"}, ""},
		{app.Config{Flavor: "cloudevents", Generic: app.GenericConfig{Action: "/a"}}, ""},
	}
	for _, tt := range tests {
		_, err := app.New(tt.cfg, transformers.Options{})
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("New(%+v) = %v, want no error", tt.cfg, err)
		case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
			t.Errorf("New(%+v) = %v, want %q...", tt.cfg, err, tt.want)
		}
	}
}

func TestPointer(t *testing.T) {
	doc, err := transformers.Decode(transformers.Input{Body: []byte(
		`{"a":{"b":[10,{"c":"deep"}]},"x/y":1,"m~n":2,"":3,"01":4,"arr":["zero"],"sp ace":5}`)}, transformers.Limits{}, app.Format)
	if err != nil {
		t.Fatal(err)
	}
	defer doc.Close()
	root := doc.Roots[0].Node
	tests := []struct {
		ptr, want, path string // want "" for missing
	}{
		{"", `{"":3,"01":4,"a":{"b":[10,{"c":"deep"}]},"arr":["zero"],"m~n":2,"sp ace":5,"x/y":1}`, "$"}, // canonical
		{"/a/b/0", "10", "$.a.b[0]"},
		{"/a/b/1/c", `"deep"`, "$.a.b[1].c"},
		{"/x~1y", "1", `$["x/y"]`},
		{"/m~0n", "2", `$["m~n"]`},
		{"/", "3", `$[""]`},
		{"/01", "4", `$["01"]`},
		{"/arr/0", `"zero"`, "$.arr[0]"},
		{"/sp ace", "5", `$["sp ace"]`},
		{"/arr/01", "", `$.arr["01"]`},
		{"/arr/-", "", `$.arr["-"]`},
		{"/arr/1", "", "$.arr[1]"},
		{"/arr/99999999999", "", `$.arr["99999999999"]`},
		{"/a/b/0/c", "", "$.a.b[0].c"},
		{"/nope/deeper", "", "$.nope.deeper"},
	}
	for _, tt := range tests {
		p, err := app.ParsePointer(tt.ptr)
		if err != nil {
			t.Fatalf("ParsePointer(%q): %v", tt.ptr, err)
		}
		n := p.Resolve(root)
		got := ""
		if n.Exists() {
			b, err := transformers.AppendCanonical(nil, n, nil)
			if err != nil {
				t.Fatal(err)
			}
			got = string(b)
		}
		if got != tt.want || n.Path() != tt.path {
			t.Errorf("%q resolves to %s at %s, want %s at %s", tt.ptr, got, n.Path(), tt.want, tt.path)
		}
	}
	for _, bad := range []string{"a", "#/a", "/a~", "/a~2", "/~x/b"} {
		if _, err := app.ParsePointer(bad); err == nil {
			t.Errorf("ParsePointer(%q) accepted", bad)
		}
	}
	if p, _ := app.ParsePointer("/~01"); p.Resolve(root).Exists() || p.String() != "/~01" {
		t.Errorf(`"/~01" must mean the member "~1", not "/"`)
	}
}

func TestOperation(t *testing.T) {
	tests := map[string]auditpipe.Operation{
		// yoq verbs
		"secret_set": "update", "secret_delete": "delete", "secret_list": "read", "policy_add": "create",
		"policy_delete": "delete", "app_apply": "update", "app_rollback": "update", "agent_register": "create",
		"agent_drain": "execute", "backup": "execute", "restore": "update", "secret_rotate": "update",
		// Teabar actions
		"member.invited": "create", "member.joined": "create", "environment.created": "create",
		"member.role_changed": "update", "organization.settings_updated": "update", "blueprint.published": "update",
		"member.removed": "delete", "project.deleted": "delete", "auth.token_revoked": "delete",
		"auth.token_created": "create", "environment.checkpoint_created": "create",
		"auth.login": "login", "auth.logout": "logout", "auth.login_failed": "login",
		"environment.started": "execute", "environment.stopped": "execute",
		"dev.teabar.audit.member.invited": "create",
		// oddities
		"": "other", "frobnicate": "other", "Member.INVITED": "create", "failed": "other",
	}
	for action, want := range tests {
		if got := app.Operation(action); got != want {
			t.Errorf("Operation(%q) = %q, want %q", action, got, want)
		}
	}
}

func TestCategory(t *testing.T) {
	tests := map[string][]string{
		"auth.login": {"authentication"}, "auth.login_failed": {"authentication"}, "auth.logout": {"authentication"},
		"auth.token_created": {"iam"}, "auth.token_revoked": {"iam"}, "member.invited": {"iam"},
		"member.role_changed": {"iam"}, "environment.started": {"configuration"},
		"environment.checkpoint_created": {"configuration"}, "project.deleted": {"configuration"},
		"organization.settings_updated": {"configuration"}, "blueprint.published": {"configuration"},
		"secret_set": {"iam", "configuration"}, "policy_add": {"iam", "configuration"}, "app_apply": {"configuration"},
		"agent_register": {"host"}, "backup": {"database"}, "restore": {"database"},
		"dev.teabar.audit.member.invited": {"iam"}, "login": {"authentication"},
		"frobnicate": nil, "": nil,
	}
	for action, want := range tests {
		if got := app.Category(action); !slices.Equal(got, want) {
			t.Errorf("Category(%q) = %q, want %q", action, got, want)
		}
	}
	// Results are copies: an output appending to one must not change the table.
	c := app.Category("secret_set")
	c[0] = "changed"
	if app.Category("secret_set")[0] != "iam" {
		t.Error("Category returns the table itself")
	}
}

func TestActionOutcome(t *testing.T) {
	tests := map[string]auditpipe.Outcome{
		"auth.login_failed": "failure", "job.failed": "failure", "environment.delete_denied": "denied",
		"auth.login": "success", "member.invited": "success", "user.login.succeeded": "success",
	}
	for action, want := range tests {
		if got := app.ActionOutcome(action, auditpipe.OutcomeSuccess); got != want {
			t.Errorf("ActionOutcome(%q) = %q, want %q", action, got, want)
		}
	}
	if got := app.ActionOutcome("member.invited", auditpipe.OutcomeUnknown); got != auditpipe.OutcomeUnknown {
		t.Errorf("without an outcome word the default applies, got %q", got)
	}
}

func TestYoqActor(t *testing.T) {
	tests := []struct {
		in   string
		want auditpipe.Actor
	}{
		{"api-token", auditpipe.Actor{Type: auditpipe.ActorToken, ID: "api-token"}},
		{"join-token", auditpipe.Actor{Type: auditpipe.ActorToken, ID: "join-token"}},
		{"local", auditpipe.Actor{Type: auditpipe.ActorSystem, ID: "local"}},
		{"unauthenticated", auditpipe.Actor{Type: auditpipe.ActorUnknown, ID: "unauthenticated"}},
		{"alice", auditpipe.Actor{Type: auditpipe.ActorUser, ID: "alice", Name: "alice"}},
		{"", auditpipe.Actor{Type: auditpipe.ActorUnknown}},
	}
	for _, tt := range tests {
		if got := app.YoqActor(tt.in); got != tt.want {
			t.Errorf("YoqActor(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	for in, want := range map[string]auditpipe.Outcome{"ok": "success", "failed": "failure", "": "unknown", "OK": "unknown", "pending": "unknown"} {
		if got := app.YoqOutcome(in); got != want {
			t.Errorf("YoqOutcome(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestActorType(t *testing.T) {
	tests := map[string]auditpipe.ActorType{
		"user": "user", "User": "user", "human": "user", "service": "service", "service_account": "service",
		"bot": "service", "api_key": "token", "API-Key": "token", "apikey": "token", "token": "token",
		"system": "system", "robot": "unknown", "": "unknown",
	}
	for in, want := range tests {
		if got := app.ActorType(in); got != want {
			t.Errorf("ActorType(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOutcomeValue(t *testing.T) {
	tests := map[string]auditpipe.Outcome{
		"ok": "success", "Success": "success", "true": "success", "failed": "failure", "ERROR": "failure",
		"false": "failure", "denied": "denied", "Forbidden": "denied", "maybe": "unknown", "": "unknown",
	}
	for in, want := range tests {
		if got := app.OutcomeValue(in); got != want {
			t.Errorf("OutcomeValue(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDeepCloudEventData: nesting beyond the limit in a CloudEvent's data,
// as JSON or as data_base64, alone or in a batch, is ErrTooDeep with a
// short message, at any depth.
func TestDeepCloudEventData(t *testing.T) {
	tr := newTransformer(t, app.Config{})
	batch := http.Header{}
	batch.Set("Content-Type", app.ContentTypeBatch)
	for _, depth := range []int{65, 1000, 100000, 1000000} {
		deep := strings.Repeat(`{"a":[`, (depth+1)/2) + "1" + strings.Repeat("]}", (depth+1)/2)
		envelope := `{"specversion":"1.0","id":"1","source":"s","type":"t","time":"2024-01-01T00:00:00Z",`
		for _, c := range []struct {
			name   string
			body   string
			header http.Header
		}{
			{"data", envelope + `"data":` + deep + `}`, nil},
			{"data in a batch", `[` + envelope + `"data":{"ok":1}},` + envelope + `"data":` + deep + `}]`, batch},
			{"data_base64", envelope + `"data_base64":"` + base64.StdEncoding.EncodeToString([]byte(deep)) + `"}`, nil},
		} {
			if c.name == "data_base64" && depth > 100000 {
				continue // its base64 is longer than a string may be
			}
			res, err := transformers.Run(context.Background(), tr, transformers.Input{Body: []byte(c.body), Meta: transformers.Meta{Headers: c.header}})
			if err == nil && len(res.Errors) == 1 {
				err = res.Errors[0]
			}
			var te *transformers.Error
			if !errors.As(err, &te) || !errors.Is(err, transformers.ErrTooDeep) {
				t.Errorf("%s, depth %d: %v, want ErrTooDeep", c.name, depth, err)
				continue
			}
			if msg := te.Error(); len(msg) >= 200 || !strings.Contains(msg, "nesting too deep: expected at most 64 levels of nesting") {
				t.Errorf("%s, depth %d: message of %d bytes, want under 200 and clean: %.300s", c.name, depth, len(msg), msg)
			}
		}
	}
}
