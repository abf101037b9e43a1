package outputs_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
)

func TestMatch(t *testing.T) {
	// outputstest.Events cycles spacelift/stack.create/success,
	// alertmanager/audit_trail_webhook.update/denied, app/secret_set/failure,
	// k8s/"create pods"/success.
	evs := outputstest.Events(8)
	for _, tc := range []struct {
		name, yaml string
		want       []int
	}{
		{"empty matches all", `[]`, []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{"one rule as a mapping", `{source_types: [app]}`, []int{2, 6}},
		{"OR of rules", "- outcomes: [denied]\n- actions: [\"secret_*\"]", []int{1, 2, 5, 6}},
		{"AND within a rule", `{source_types: [k8s, spacelift], outcomes: [success], actions: ["create *"]}`, []int{3, 7}},
		{"labels", `{labels: {env: ["te*"], cluster: [dev-1]}}`, []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{"missing label matches only empty glob", `{labels: {team: [""]}}`, []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{"missing label", `{labels: {team: ["*x"]}}`, nil},
		{"source names", `{source_names: [k8s-main]}`, []int{3, 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m outputs.Match
			if err := yaml.Unmarshal([]byte(tc.yaml), &m); err != nil {
				t.Fatal(err)
			}
			if err := m.Validate(); err != nil {
				t.Fatal(err)
			}
			var got []int
			for i := range evs {
				if m.Matches(&evs[i]) {
					got = append(got, i)
				}
			}
			if !equalInts(got, tc.want) {
				t.Errorf("matched %v, want %v", got, tc.want)
			}
			if f := m.Filter(evs); len(f) != len(tc.want) {
				t.Errorf("Filter kept %d, want %d", len(f), len(tc.want))
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMatchValidateNamesTheField(t *testing.T) {
	var m outputs.Match
	if err := yaml.Unmarshal([]byte("- {actions: [\"[\"]}\n- {outcomes: [allowed], labels: {x: [\"[\"]}}"), &m); err != nil {
		t.Fatal(err)
	}
	err := m.Validate()
	for _, want := range []string{"match[0].actions[0]", "match[1].outcomes[0]", "match[1].labels.x[0]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want mention of %s", err, want)
		}
	}
}

func TestTemplate(t *testing.T) {
	ev := outputstest.Event(2) // app, 2026-11-21T09:30:02Z
	ev.Source.Format = "app/yoq"
	for _, tc := range []struct{ tmpl, want string }{
		{"audit-{source}-{yyyy.MM.dd}", "audit-app-2026.11.21"},
		{"plain", "plain"},
		{"{source_name}/{format}/{outcome}", "app-main/app-yoq/failure"},
		{"x-{label:env}-{label:none}", "x-test-"},
		{"dt={yyyy-MM-dd}/hour={HH}", "dt=2026-11-21/hour=09"},
	} {
		tm, err := outputs.ParseTemplate(tc.tmpl)
		if err != nil {
			t.Fatalf("%s: %v", tc.tmpl, err)
		}
		if got := tm.Execute(&ev); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.tmpl, got, tc.want)
		}
		if tm.String() != tc.tmpl {
			t.Errorf("String() = %q", tm.String())
		}
	}
	for _, bad := range []string{"{nope}", "a{source", "a}b", "{label:}", "{yyyy.XX}", "{}"} {
		if _, err := outputs.ParseTemplate(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if !outputs.MustParseTemplate("x").IsConstant() || outputs.MustParseTemplate("{source}").IsConstant() {
		t.Error("IsConstant wrong")
	}
}

func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"audit-{source}-{yyyy.MM.dd}", "{label:x}", "a}{", "{yyyy/MM/dd/HH}"} {
		f.Add(s)
	}
	ev := outputstest.Event(0)
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := outputs.ParseTemplate(s)
		if err != nil {
			return
		}
		if tm.IsConstant() && tm.Execute(&ev) != s {
			t.Errorf("constant template %q executed to %q", s, tm.Execute(&ev))
		}
	})
}

func TestClassifyHTTP(t *testing.T) {
	h := http.Header{"Retry-After": {"7"}}
	for _, tc := range []struct {
		code      int
		nilErr    bool
		permanent bool
		after     time.Duration
	}{
		{200, true, false, 0}, {204, true, false, 0},
		{500, false, false, 7 * time.Second}, {503, false, false, 7 * time.Second},
		{429, false, false, 7 * time.Second}, {408, false, false, 7 * time.Second},
		{401, false, false, 0}, {403, false, false, 0},
		{400, false, true, 0}, {404, false, true, 0}, {413, false, true, 0},
	} {
		err := outputs.ClassifyHTTP(tc.code, h, "body")
		if (err == nil) != tc.nilErr || outputs.IsPermanent(err) != tc.permanent {
			t.Errorf("%d: err = %v (permanent %v)", tc.code, err, outputs.IsPermanent(err))
		}
		if d, _ := outputs.RetryAfterOf(err); d != tc.after {
			t.Errorf("%d: retry after %v, want %v", tc.code, d, tc.after)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"": 0, "0": 0, "-3": 0, "120": 2 * time.Minute, "soon": 0,
		"Sat, 21 Nov 2026 10:00:30 GMT": 30 * time.Second,
		"Sat, 21 Nov 2026 09:00:00 GMT": 0,
	} {
		if got := outputs.ParseRetryAfter(in, now); got != want {
			t.Errorf("%q = %v, want %v", in, got, want)
		}
	}
}

func TestTLSConfig(t *testing.T) {
	if c, err := (outputs.TLSConfig{}).Client(nil); c != nil || err != nil {
		t.Errorf("zero config built %v, %v", c, err)
	}
	for _, tc := range []struct {
		c    outputs.TLSConfig
		want string
	}{
		{outputs.TLSConfig{CertFile: "x"}, "tls.cert_file and tls.key_file"},
		{outputs.TLSConfig{MinVersion: "1.1"}, "tls.min_version"},
		{outputs.TLSConfig{CAFile: "/nonexistent"}, "tls.ca_file"},
		{outputs.TLSConfig{CAFile: "match_test.go"}, "tls.ca_file"},
		{outputs.TLSConfig{CertFile: "match_test.go", KeyFile: "match_test.go"}, "tls.cert_file"},
	} {
		if _, err := tc.c.Client(nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want mention of %s", tc.c, err, tc.want)
		}
	}
	cl, err := outputs.TLSConfig{Enabled: true, MinVersion: "1.3", ServerName: "es"}.Client(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := cl.Config(); c.MinVersion != 0x0304 || c.ServerName != "es" || c.RootCAs != nil {
		t.Errorf("built %+v", c)
	}
}
