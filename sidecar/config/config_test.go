package config

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// envOf returns an env function over a fixed map.
func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func mustParse(t *testing.T, doc string, env map[string]string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(doc), envOf(env))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, doc)
	}
	return cfg
}

func parseErr(t *testing.T, doc string, env map[string]string) string {
	t.Helper()
	_, err := Parse([]byte(doc), envOf(env))
	if err == nil {
		t.Fatalf("Parse succeeded, want an error\n%s", doc)
	}
	return err.Error()
}

// errLines splits a joined error into its messages.
func errLines(msg string) []string { return strings.Split(msg, "\n") }

const minimal = `
sources:
  - name: spacelift
    auth: {none: true}
`

func TestDefaults(t *testing.T) {
	cfg := mustParse(t, minimal+`
  - name: yoq
    auth: {hmac: {secrets: ["0123456789abcdef"]}}
    rate_limit: {requests_per_second: 2.5}
    pull: {url: "http://yoq:8080/v1/audit"}
`, nil)
	s := cfg.Server
	checks := []struct {
		key       string
		got, want any
	}{
		{"data_dir", cfg.DataDir, "./data"},
		{"server.listen", s.Listen, "127.0.0.1:8080"},
		{"server.max_body_bytes", s.MaxBodyBytes, int64(8 << 20)},
		{"server.read_header_timeout", s.ReadHeaderTimeout, 5 * time.Second},
		{"server.read_timeout", s.ReadTimeout, 30 * time.Second},
		{"server.write_timeout", s.WriteTimeout, 30 * time.Second},
		{"server.idle_timeout", s.IdleTimeout, 120 * time.Second},
		{"server.shutdown_grace", s.ShutdownGrace, 25 * time.Second},
		{"server.tls.min_version", s.TLS.MinVersion, "1.2"},
		{"server.tls enabled", s.TLS.Enabled(), false},
		{"queue.dir", cfg.Queue.Dir, filepath.Join("data", "queue")},
		{"dead_letter.dir", cfg.DeadLetter.Dir, filepath.Join("data", "dlq")},
		{"pod_labels", *cfg.PodLabels, true},
		{"limits.max_payload_bytes", cfg.Limits.MaxPayloadBytes, 8 << 20},
		{"log.level", cfg.Log.Level, "info"},
		{"log.format", cfg.Log.Format, "json"},
		{"ready.max_lag", cfg.Ready.MaxLag, time.Duration(0)},
		{"ready.max_fill", cfg.Ready.MaxFill, 0.9},
		{"sources[0].format", cfg.Sources[0].Format, "auto"},
		{"sources[0].max_body_bytes", cfg.Sources[0].MaxBodyBytes, int64(8 << 20)},
		{"sources[0].rate_limit.burst", cfg.Sources[0].RateLimit.Burst, 0},
		{"sources[1].auth.hmac.header", cfg.Sources[1].Auth.HMAC.Header, "X-Signature-256"},
		{"sources[1].auth.hmac.allow_sha1", cfg.Sources[1].Auth.HMAC.AllowSHA1, false},
		{"sources[1].rate_limit.burst", cfg.Sources[1].RateLimit.Burst, 3},
		{"sources[1].pull.limit", cfg.Sources[1].Pull.Limit, 100},
		{"sources[1].pull.interval", cfg.Sources[1].Pull.Interval, 10 * time.Second},
		{"sources[1].pull.timeout", cfg.Sources[1].Pull.Timeout, 10 * time.Second},
		{"outputs", len(cfg.Outputs), 0},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.key, c.got, c.want)
		}
	}
}

func TestDerivedDefaults(t *testing.T) {
	cfg := mustParse(t, `
data_dir: /var/lib/auditpipe
limits: {max_payload_bytes: 1048576}
server: {max_body_bytes: 2097152}
queue: {dir: /queue}
sources:
  - {name: a, auth: {none: true}}
  - {name: b, auth: {none: true}, max_body_bytes: 4096, rate_limit: {requests_per_second: 0.2}}
`, nil)
	if cfg.Queue.Dir != "/queue" || cfg.DeadLetter.Dir != "/var/lib/auditpipe/dlq" {
		t.Errorf("queue.dir %q, dead_letter.dir %q", cfg.Queue.Dir, cfg.DeadLetter.Dir)
	}
	if cfg.Sources[0].MaxBodyBytes != 2<<20 || cfg.Sources[1].MaxBodyBytes != 4096 {
		t.Errorf("max_body_bytes %d, %d", cfg.Sources[0].MaxBodyBytes, cfg.Sources[1].MaxBodyBytes)
	}
	if b := cfg.Sources[1].RateLimit.Burst; b != 1 {
		t.Errorf("burst for 0.2/s = %d, want 1", b)
	}
	// server.max_body_bytes follows limits.max_payload_bytes when unset.
	cfg = mustParse(t, "limits: {max_payload_bytes: 1048576}\n"+minimal, nil)
	if cfg.Server.MaxBodyBytes != 1<<20 {
		t.Errorf("server.max_body_bytes %d, want limits.max_payload_bytes", cfg.Server.MaxBodyBytes)
	}
}

func TestWithDefaultsDoesNotModifyItsReceiver(t *testing.T) {
	c := Config{Sources: []Source{{Name: "a", Auth: Auth{HMAC: &HMACAuth{Secrets: []string{"x"}}}, Pull: &Pull{URL: "http://x"}}}}
	d := c.WithDefaults()
	if c.Sources[0].Format != "" || c.Sources[0].Auth.HMAC.Header != "" || c.Sources[0].Pull.Limit != 0 || c.PodLabels != nil {
		t.Fatalf("receiver modified: %+v", c.Sources[0])
	}
	if d.Sources[0].Format != "auto" || d.Sources[0].Auth.HMAC.Header == "" || d.Sources[0].Pull.Limit != 100 {
		t.Fatalf("defaults not applied: %+v", d.Sources[0])
	}
}

func TestEmptyFileNeedsSources(t *testing.T) {
	for _, doc := range []string{"", "# only a comment\n", "---\n"} {
		if msg := parseErr(t, doc, nil); msg != "sources: at least one required" {
			t.Errorf("%q: %s", doc, msg)
		}
	}
}

func TestParseRejectsBadDocuments(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"list at the top", "- a\n- b\n", "line 1: the configuration must be a mapping"},
		{"two documents", minimal + "---\nlog: {level: debug}\n", "a second YAML document"},
		{"syntax error", "sources: [\n", "yaml:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if msg := parseErr(t, tt.doc, nil); !strings.Contains(msg, tt.want) {
				t.Fatalf("%s\nwant %q", msg, tt.want)
			}
		})
	}
}

// TestValidate has one case per validation rule; each wants the exact
// message, key path included, among the errors.
func TestValidate(t *testing.T) {
	const ok = `{name: ok, auth: {none: true}}`
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"source name required", `sources: [{auth: {none: true}}]`,
			`sources[0].name: required`},
		{"source name well-formed", `sources: [{name: Spacelift!, auth: {none: true}}]`,
			`sources[0] (Spacelift!).name: "Spacelift!" must be lowercase letters, digits, '-' or '_', starting with a letter or digit`},
		{"source name leading dash", `sources: [{name: -a, auth: {none: true}}]`,
			`sources[0] (-a).name: "-a" must be lowercase letters, digits, '-' or '_', starting with a letter or digit`},
		{"source names unique", `sources: [` + ok + `, ` + ok + `]`,
			`sources[1] (ok).name: "ok" already used by sources[0]`},
		{"format known", `sources: [{name: a, format: xml, auth: {none: true}}]`,
			`sources[0] (a).format: "xml" is not one of spacelift, alertmanager, app, k8s, auto`},
		{"format external needs a transformer", `sources: [{name: a, format: external, auth: {none: true}}]`,
			`sources[0] (a).transformer: required with format external`},
		{"external transformer validated", `sources: [{name: a, format: external, auth: {none: true}, transformer: {timeout: -1s}}]`,
			`sources[0] (a).transformer.`},
		{"transformer only with external", `sources: [{name: a, format: k8s, auth: {none: true}, transformer: {path: /x}}]`,
			`sources[0] (a).transformer: set, but format is k8s`},
		{"auth required", `sources: [{name: a}]`,
			`sources[0] (a).auth: at least one method required (hmac, bearer, basic), or none: true for no authentication`},
		{"auth none alone", `sources: [{name: a, auth: {none: true, basic: {username: u, password: p}}}]`,
			`sources[0] (a).auth.none: cannot be combined with basic`},
		{"hmac secrets required", `sources: [` + ok + `, {name: b, auth: {none: true}}, {name: spacelift, format: spacelift, auth: {hmac: {}}}]`,
			`sources[2] (spacelift).auth.hmac.secrets: at least one required`},
		{"hmac secret non-empty", `sources: [{name: a, auth: {hmac: {secrets: [""]}}}]`,
			`sources[0] (a).auth.hmac.secrets[0]: empty (an unset variable with a default of ""?)`},
		{"hmac secret 16 bytes", `sources: [{name: a, auth: {hmac: {secrets: ["0123456789abcdef", "0123456789abcde"]}}}]`,
			`sources[0] (a).auth.hmac.secrets[1]: too short: at least 16 bytes required (the value is not shown)`},
		{"hmac header", `sources: [{name: a, auth: {hmac: {secrets: ["0123456789abcdef"], header: "X Sig:"}}}]`,
			`sources[0] (a).auth.hmac.header: "X Sig:" is not a valid header name`},
		{"bearer tokens required", `sources: [{name: a, auth: {bearer: {tokens: []}}}]`,
			`sources[0] (a).auth.bearer.tokens: at least one required`},
		{"bearer token without spaces", `sources: [{name: a, auth: {bearer: {tokens: ["a b"]}}}]`,
			`sources[0] (a).auth.bearer.tokens[0]: contains white space or control characters (the value is not shown)`},
		{"basic username", `sources: [{name: a, auth: {basic: {password: p}}}]`,
			`sources[0] (a).auth.basic.username: required`},
		{"basic username colon", `sources: [{name: a, auth: {basic: {username: "a:b", password: p}}}]`,
			`sources[0] (a).auth.basic.username: must not contain ':' or line breaks`},
		{"basic password", `sources: [{name: a, auth: {basic: {username: u}}}]`,
			`sources[0] (a).auth.basic.password: required`},
		{"source max_body_bytes", `sources: [{name: a, auth: {none: true}, max_body_bytes: -1}]`,
			`sources[0] (a).max_body_bytes: must be positive`},
		{"rate limit finite", `sources: [{name: a, auth: {none: true}, rate_limit: {requests_per_second: .inf}}]`,
			`sources[0] (a).rate_limit.requests_per_second: must be a finite number >= 0 (0: unlimited)`},
		{"rate limit positive", `sources: [{name: a, auth: {none: true}, rate_limit: {requests_per_second: -1}}]`,
			`sources[0] (a).rate_limit.requests_per_second: must be a finite number >= 0 (0: unlimited)`},
		{"burst positive", `sources: [{name: a, auth: {none: true}, rate_limit: {requests_per_second: 1, burst: -1}}]`,
			`sources[0] (a).rate_limit.burst: must not be negative`},
		{"burst needs a rate", `sources: [{name: a, auth: {none: true}, rate_limit: {burst: 5}}]`,
			`sources[0] (a).rate_limit.burst: set, but requests_per_second is 0 (unlimited)`},
		{"source labels", `sources: [{name: a, auth: {none: true}, labels: {1x: y}}]`,
			`sources[0] (a).labels: "1x" is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)`},
		{"section of another format", `sources: [{name: a, format: k8s, auth: {none: true}, alertmanager: {alertname: x}}]`,
			`sources[0] (a).alertmanager: set, but format is k8s (it is read by format alertmanager or auto)`},
		{"alertmanager settings", `sources: [{name: a, format: alertmanager, auth: {none: true}, alertmanager: {alertname: " x"}}]`,
			`sources[0] (a).alertmanager.alertname: must not start or end with white space, got " x"`},
		{"app settings", `sources: [{name: a, auth: {none: true}, app: {flavor: xml}}]`,
			`sources[0] (a).app.flavor: unknown flavor "xml" (want auto, yoq, teabar, cloudevents or generic)`},
		{"k8s settings", `sources: [{name: a, format: k8s, auth: {none: true}, k8s: {stages: [Done]}}]`,
			`sources[0] (a).k8s.stages[0]: unknown stage "Done"`},
		{"pull format", `sources: [{name: a, format: spacelift, auth: {none: true}, pull: {url: "http://yoq/v1/audit"}}]`,
			`sources[0] (a).pull: only with format app or auto (pull sources serve yoq audit entries), not spacelift`},
		{"pull url required", `sources: [{name: a, auth: {none: true}, pull: {limit: 5}}]`,
			`sources[0] (a).pull.url: required`},
		{"pull url http", `sources: [{name: a, format: app, auth: {none: true}, pull: {url: "ftp://yoq/v1/audit"}}]`,
			`sources[0] (a).pull.url: must be an http:// or https:// URL`},
		{"pull url host", `sources: [{name: a, auth: {none: true}, pull: {url: "http:///v1/audit"}}]`,
			`sources[0] (a).pull.url: has no host`},
		{"pull url parse", `sources: [{name: a, auth: {none: true}, pull: {url: "http://[::1/x"}}]`,
			`sources[0] (a).pull.url: not a valid URL`},
		{"pull url limit", `sources: [{name: a, auth: {none: true}, pull: {url: "http://yoq/v1/audit?limit=5"}}]`,
			`sources[0] (a).pull.url: must not set limit (set pull.limit)`},
		{"pull limit max", `sources: [{name: a, auth: {none: true}, pull: {url: "http://yoq/", limit: 10001}}]`,
			`sources[0] (a).pull.limit: must be between 1 and 10000, got 10001`},
		{"pull limit min", `sources: [{name: a, auth: {none: true}, pull: {url: "http://yoq/", limit: -1}}]`,
			`sources[0] (a).pull.limit: must be between 1 and 10000, got -1`},
		{"pull interval", `sources: [{name: a, auth: {none: true}, pull: {url: "http://yoq/", interval: 500ms}}]`,
			`sources[0] (a).pull.interval: must be at least 1s, got 500ms`},
		{"pull timeout", `sources: [{name: a, auth: {none: true}, pull: {url: "http://yoq/", timeout: -1s}}]`,
			`sources[0] (a).pull.timeout: must not be negative`},
		{"pull header name", `sources: [{name: a, auth: {none: true}, pull: {url: "http://yoq/", headers: {"Bad Header": x}}}]`,
			`sources[0] (a).pull.headers: "Bad Header" is not a valid header name`},
		{"pull authorization twice", `sources: [{name: a, auth: {none: true}, pull: {url: "http://yoq/", bearer_token: t, headers: {Authorization: x}}}]`,
			`sources[0] (a).pull.headers.Authorization: set together with pull.bearer_token; use one`},
		{"pull tls", `sources: [{name: a, auth: {none: true}, pull: {url: "https://yoq/", tls: {cert_file: c.pem}}}]`,
			`sources[0] (a).pull.tls.cert_file and tls.key_file: set both or neither`},
		{"server listen", `{server: {listen: nope}, sources: [` + ok + `]}`,
			`server.listen: "nope" is not host:port (127.0.0.1:8080, :8080)`},
		{"server max_body_bytes", `{server: {max_body_bytes: -5}, sources: [` + ok + `]}`,
			`server.max_body_bytes: must be positive`},
		{"server timeouts", `{server: {read_timeout: -1s}, sources: [` + ok + `]}`,
			`server.read_timeout: must not be negative`},
		{"server tls pair", `{server: {tls: {cert_file: c.pem}}, sources: [` + ok + `]}`,
			`server.tls: cert_file and key_file: set both or neither`},
		{"server tls pair (key only)", `{server: {tls: {key_file: k.pem}}, sources: [` + ok + `]}`,
			`server.tls: cert_file and key_file: set both or neither`},
		{"client ca needs cert", `{server: {tls: {client_ca_file: ca.pem}}, sources: [` + ok + `]}`,
			`server.tls.client_ca_file: requires cert_file and key_file (client certificates are checked during a TLS handshake)`},
		{"server tls version", `{server: {tls: {cert_file: c, key_file: k, min_version: "1.1"}}, sources: [` + ok + `]}`,
			`server.tls.min_version: "1.1" is not 1.2 or 1.3`},
		{"log level", `{log: {level: verbose}, sources: [` + ok + `]}`,
			`log.level: "verbose" is not one of debug, info, warn, error`},
		{"log format", `{log: {format: xml}, sources: [` + ok + `]}`,
			`log.format: "xml" is not one of json, text`},
		{"ready max_fill above 1", `{ready: {max_fill: 1.5}, sources: [` + ok + `]}`,
			`ready.max_fill: must be a fraction in (0, 1], got 1.5`},
		{"ready max_fill negative", `{ready: {max_fill: -0.1}, sources: [` + ok + `]}`,
			`ready.max_fill: must be a fraction in (0, 1], got -0.1`},
		{"ready max_lag", `{ready: {max_lag: -1m}, sources: [` + ok + `]}`,
			`ready.max_lag: must not be negative (0 turns the check off)`},
		{"labels", `{labels: {team-name: x}, sources: [` + ok + `]}`,
			`labels: "team-name" is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)`},
		{"queue", `{queue: {max_bytes: -1}, sources: [` + ok + `]}`,
			`queue.max_bytes: must not be negative`},
		{"dead letter", `{dead_letter: {max_file_bytes: -1}, sources: [` + ok + `]}`,
			`dead_letter.max_file_bytes: must not be negative`},
		{"outputs", `{outputs: [{name: siem, type: elasticsearch, elasticsearch: {}}], sources: [` + ok + `]}`,
			`outputs[0] (siem): elasticsearch.urls: set urls or cloud_id`},
		{"outputs type", `{outputs: [{name: siem, type: splunk}], sources: [` + ok + `]}`,
			`outputs[0] (siem): type: "splunk" is not one of [kafka elasticsearch opensearch s3 webhook splunk_hec file stdout]`},
		{"redact", `{redact: {keys: ["--"]}, sources: [` + ok + `]}`,
			`redact.keys[0]: pattern "--" is empty once separators are removed`},
		{"limits", `{limits: {max_depth: 2000}, sources: [` + ok + `]}`,
			`limits.max_depth: must be between 0 (default) and 1000, got 2000`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := parseErr(t, tt.doc, nil)
			if !slices.ContainsFunc(errLines(msg), func(l string) bool { return strings.HasPrefix(l, tt.want) }) {
				t.Fatalf("got:\n%s\nwant a line starting with:\n%s", msg, tt.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	msg := parseErr(t, `
log: {level: loud}
ready: {max_fill: 2}
sources:
  - {name: A, auth: {}}
  - {name: b, format: xml, auth: {bearer: {tokens: []}}}
`, nil)
	want := []string{
		`sources[0] (A).name: "A" must be lowercase`,
		`sources[0] (A).auth: at least one method required`,
		`sources[1] (b).format: "xml" is not one of`,
		`sources[1] (b).auth.bearer.tokens: at least one required`,
		`log.level: "loud" is not one of`,
		`ready.max_fill: must be a fraction in (0, 1], got 2`,
	}
	lines := errLines(msg)
	if len(lines) != len(want) {
		t.Errorf("%d errors, want %d:\n%s", len(lines), len(want), msg)
	}
	for _, w := range want {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, w) }) {
			t.Errorf("missing %q in:\n%s", w, msg)
		}
	}
}

func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"top level", "sourcs: []\n", []string{`line 1: sourcs: unknown key (did you mean "sources"?)`}},
		{"nested, named source", `
sources:
  - name: spacelift
    auth:
      hmac:
        secret: ["0123456789abcdef"]
`, []string{`line 6: sources[0] (spacelift).auth.hmac.secret: unknown key (did you mean "secrets"?)`}},
		{"several, no suggestion", `
server: {listen: ":8080", colour: blue}
sources:
  - {name: a, auth: {none: true}, pull: {url: "http://x/", every: 5s}}
`, []string{`line 2: server.colour: unknown key`, `line 4: sources[0] (a).pull.every: unknown key`}},
		{"inside an output", `
outputs:
  - name: siem
    type: elasticsearch
    elasticsearch: {urlz: ["http://es:9200"]}
sources: [{name: a, auth: {none: true}}]
`, []string{`line 5: outputs[0] (siem).elasticsearch.urlz: unknown key (did you mean "urls"?)`}},
		{"inside a single match rule", `
outputs:
  - name: sec
    type: stdout
    match: {outcome: [denied]}
sources: [{name: a, auth: {none: true}}]
`, []string{`line 5: outputs[0] (sec).match.outcome: unknown key (did you mean "outcomes"?)`}},
		{"inside a list of match rules", `
outputs:
  - name: sec
    type: stdout
    match:
      - outcomes: [denied]
      - action: ["x.*"]
sources: [{name: a, auth: {none: true}}]
`, []string{`line 7: outputs[0] (sec).match[1].action: unknown key (did you mean "actions"?)`}},
		{"through a merge key", `
base: &base {listen: ":8080"}
`, []string{`line 2: base: unknown key`}},
		{"merged from an anchor", `
sources:
  - &src {name: a, auth: {none: true}, colour: red}
  - <<: *src
    name: b
`, []string{`line 3: sources[0] (a).colour: unknown key`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := errLines(parseErr(t, tt.doc, nil))
			if !reflect.DeepEqual(lines, tt.want) {
				t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestUnknownKeysAgreeWithKnownFields checks the node-tree walk against
// yaml.v3's own KnownFields(true) on documents without references (match
// rules excepted: yaml.v3 does not look inside an UnmarshalYAML method).
func TestUnknownKeysAgreeWithKnownFields(t *testing.T) {
	docs := []string{
		"sourcs: []\nserver: {listen: x, tls: {cert: a}}\n",
		"sources: [{name: a, auth: {hmac: {secret: x, header: y}}, pull: {urls: x, tls: {ca: y}}, k8s: {stage: [x]}}]\n",
		"outputs: [{name: s, type: kafka, kafka: {broker: [x]}, retry: {max: 1}, batch: {events: 1}}]\nqueue: {size: 1}\ndead_letter: {path: x}\n",
		"labels: {a: b}\nlimits: {max_payload: 1}\nredact: {key: [x]}\nlog: {lvl: x}\nready: {lag: 1s}\npod_label: true\n",
		"sources: [{name: a, app: {generic: {actions: x}}, alertmanager: {alert_name: x}, rate_limit: {rps: 1}}]\n",
	}
	lineRE := regexp.MustCompile(`^line (\d+): `)
	for _, doc := range docs {
		dec := yaml.NewDecoder(strings.NewReader(doc))
		dec.KnownFields(true)
		var want []string
		var te *yaml.TypeError
		if err := dec.Decode(&Config{}); errors.As(err, &te) {
			for _, e := range te.Errors {
				if strings.Contains(e, "not found in type") {
					want = append(want, lineRE.FindString(e))
				}
			}
		}
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
			t.Fatal(err)
		}
		var got []string
		if err := checkKnownKeys(&n, reflect.TypeFor[Config]()); err != nil {
			for _, e := range errLines(err.Error()) {
				got = append(got, lineRE.FindString(e))
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if len(want) == 0 || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: lines %v, yaml.v3 KnownFields says %v", doc, got, want)
		}
	}
}

func TestTypeErrors(t *testing.T) {
	const secret = "hunter2-very-secret-value"
	tests := []struct {
		name   string
		doc    string
		env    map[string]string
		want   string
		absent []string
	}{
		{"names the key", "server: {max_body_bytes: lots}\n" + minimal,
			nil, "line 1: server.max_body_bytes: !!str `lots` cannot be decoded into int64", nil},
		{"duration needs a unit", "ready: {max_lag: 10}\n" + minimal,
			nil, "line 1: ready.max_lag: !!int `10` cannot be decoded into time.Duration", nil},
		{"wrong shape", "server: [a]\n" + minimal,
			nil, "line 1: server: a list cannot be decoded into config.Server", nil},
		{"expanded value hidden", "server: {max_body_bytes: \"${MAX}\"}\n" + minimal,
			map[string]string{"MAX": secret}, "line 1: server.max_body_bytes: the expanded value (!!str, hidden) cannot be decoded into int64",
			[]string{secret, secret[:7]}},
		{"value under a secret key hidden", "sources:\n  - name: a\n    auth:\n      bearer:\n        tokens: " + secret + "\n",
			nil, "line 5: sources[0] (a).auth.bearer.tokens: the value (!!str, hidden: it may be a secret) cannot be decoded into []string",
			[]string{secret, secret[:7]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := parseErr(t, tt.doc, tt.env)
			if !slices.Contains(errLines(msg), tt.want) {
				t.Fatalf("got:\n%s\nwant the line:\n%s", msg, tt.want)
			}
			for _, a := range tt.absent {
				if strings.Contains(msg, a) {
					t.Fatalf("%q appears in:\n%s", a, msg)
				}
			}
		})
	}
}

func TestExpansion(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A secret that would break the document if it were pasted into the
	// text: ": ", "#", quotes, flow and block indicators, a reference, and
	// a line break.
	nasty := `s3cr3t: #not-a-comment 'single' "double" ${NOT_EXPANDED} $$ {[,]} & * !tag |` + "\n" + `- second: line`
	fileSecret := write("secret", "file-secret-0123456789\n")
	crlfSecret := write("crlf", "crlf-secret-0123456789\r\n")
	twoNewlines := write("two", "two-newlines-0123456789\n\n")
	env := map[string]string{
		"NASTY":    nasty,
		"EMPTY":    "",
		"MAX":      "1024",
		"PODL":     "false",
		"INTERVAL": "30s",
		"NUM":      "123",
		"NULLISH":  "null",
		"LISTEN":   "0.0.0.0:9000",
		"USER":     "alertmanager",
		"KEY":      "expanded_key",
	}
	cfg := mustParse(t, `
server:
  listen: ${UNSET_LISTEN:-127.0.0.1:9999}   # ${UNSET_IN_COMMENT}
  max_body_bytes: ${MAX}
pod_labels: ${PODL}
labels:
  cluster: ${EMPTY:-prod}
  set: ${LISTEN:-unused}
  literal: "pa$$word $${NOT_A_REF} costs $5 $"
  quoted_number: "${NUM}"
  plain_number: ${NUM}
  nullish: ${NULLISH}
  anchored: &anchor "$$${NUM}"
  aliased: *anchor
sources:
  - name: a
    auth:
      hmac:
        secrets:
          - ${NASTY}
          - "${file:`+fileSecret+`}"
          - ${file:`+crlfSecret+`}
          - ${file:`+twoNewlines+`}
          - prefix-${USER}-${EMPTY}-suffix
    pull:
      url: http://yoq/v1/audit
      interval: ${INTERVAL}
      headers:
        X-Tenant: ${EMPTY:-}
  - name: b
    auth: {basic: {username: "${USER}", password: '${NASTY}'}}
`, env)
	if cfg.Server.Listen != "127.0.0.1:9999" {
		t.Errorf("default: listen %q", cfg.Server.Listen)
	}
	if cfg.Server.MaxBodyBytes != 1024 {
		t.Errorf("typed int: max_body_bytes %d", cfg.Server.MaxBodyBytes)
	}
	if *cfg.PodLabels {
		t.Error("typed bool: pod_labels true, want false")
	}
	wantLabels := map[string]string{
		"cluster":       "prod",
		"set":           "0.0.0.0:9000",
		"literal":       "pa$word ${NOT_A_REF} costs $5 $",
		"quoted_number": "123",
		"plain_number":  "123",
		"nullish":       "null",
		"anchored":      "$123",
		"aliased":       "$123",
	}
	if !maps.Equal(cfg.Labels, wantLabels) {
		t.Errorf("labels:\n got %q\nwant %q", cfg.Labels, wantLabels)
	}
	wantSecrets := []string{nasty, "file-secret-0123456789", "crlf-secret-0123456789", "two-newlines-0123456789\n", "prefix-alertmanager--suffix"}
	if got := cfg.Sources[0].Auth.HMAC.Secrets; !slices.Equal(got, wantSecrets) {
		t.Errorf("secrets:\n got %q\nwant %q", got, wantSecrets)
	}
	if p := cfg.Sources[0].Pull; p.Interval != 30*time.Second || p.Headers["X-Tenant"] != "" {
		t.Errorf("pull: %+v", p)
	}
	if b := cfg.Sources[1].Auth.Basic; b.Username != "alertmanager" || b.Password != nasty {
		t.Errorf("basic: %q %q", b.Username, b.Password)
	}
}

func TestExpansionErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		env  map[string]string
		want []string
	}{
		{"unset variable", `
sources:
  - name: a
    auth: {bearer: {tokens: ["${TOKEN}"]}}
`, nil, []string{"line 4: sources[0] (a).auth.bearer.tokens[0]: ${TOKEN}: environment variable TOKEN is not set (use ${TOKEN:-default} for a default)"}},
		{"every unset variable", `
data_dir: ${DATA}
sources:
  - {name: a, auth: {hmac: {secrets: ["${S1}", "${S2}"]}}}
`, nil, []string{
			"line 2: data_dir: ${DATA}: environment variable DATA is not set (use ${DATA:-default} for a default)",
			"line 4: sources[0] (a).auth.hmac.secrets[0]: ${S1}: environment variable S1 is not set (use ${S1:-default} for a default)",
			"line 4: sources[0] (a).auth.hmac.secrets[1]: ${S2}: environment variable S2 is not set (use ${S2:-default} for a default)",
		}},
		{"set but empty is not unset", "data_dir: ${DATA}\n" + minimal, map[string]string{"DATA": ""}, nil},
		{"bad name", "data_dir: ${1DATA:-secret-default}\n" + minimal, nil,
			[]string{"line 1: data_dir: ${1DATA}: not a variable name (want [A-Za-z_][A-Za-z0-9_]*, ${VAR:-default} or ${file:PATH})"}},
		{"empty reference", "data_dir: x${}y\n" + minimal, nil,
			[]string{"line 1: data_dir: ${}: not a variable name (want [A-Za-z_][A-Za-z0-9_]*, ${VAR:-default} or ${file:PATH})"}},
		{"unterminated", "data_dir: ${DATA\n" + minimal, nil,
			[]string{"line 1: data_dir: ${: unterminated reference (no closing '}')"}},
		{"missing file", "data_dir: ${file:/nonexistent/secret}\n" + minimal, nil,
			[]string{"line 1: data_dir: ${file:/nonexistent/secret}: cannot read the file: open /nonexistent/secret: no such file or directory"}},
		{"empty file path", "data_dir: ${file:}\n" + minimal, nil,
			[]string{"line 1: data_dir: ${file:}: empty path"}},
		{"keys are not expanded", "labels: {\"${KEY}\": v}\n" + minimal, map[string]string{"KEY": "k"},
			[]string{`labels: "${KEY}" is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), envOf(tt.env))
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if got := errLines(err.Error()); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestSecretsNeverInErrors puts secrets wherever a mistake can be made
// with them and checks that no error, nor a recognisable piece of one,
// shows them.
func TestSecretsNeverInErrors(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("fileshort9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"SHORT_SECRET":  "shorty42",
		"SPACED_TOKEN":  "tok en-4242-abcd",
		"NEWLINE_TOKEN": "tokennl-4242\n",
		"USER":          "us:er-4242",
		"PULL_TOKEN":    "pull tok-4242",
		"HEADER":        "hdr-4242\r\ninjected",
		"URLPASS":       "urlpass-4242",
		"INTSECRET":     "intsecret-4242",
		"BOOLSECRET":    "boolsecret-4242",
	}
	doc := `
server: {max_body_bytes: "${INTSECRET}"}
pod_labels: ${BOOLSECRET}
sources:
  - name: a
    auth:
      none: true
      hmac: {secrets: ["${SHORT_SECRET}", "${file:` + short + `}", "literalshort"]}
      bearer: {tokens: ["${SPACED_TOKEN}", "${NEWLINE_TOKEN}", "literal tok"]}
      basic: {username: "${USER}", password: ""}
    pull:
      url: "http://user:${URLPASS}@yoq/v1/audit?limit=1"
      bearer_token: "${PULL_TOKEN}"
      headers: {X-Key: "${HEADER}"}
  - name: b
    auth: {bearer: {tokens: literal-token-4242}}
  - name: c
    auth: {basic: {username: u, password: [literal-pass-4242]}}
`
	_, err := Parse([]byte(doc), envOf(env))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	secrets := []string{"literalshort", "literal tok", "fileshort9", "literal-token-4242", "literal-pass-4242"}
	for _, v := range env {
		secrets = append(secrets, v)
	}
	for _, s := range secrets {
		// Any 7-byte piece would be recognisable (yaml.v3 quotes 7).
		for i := 0; i+7 <= len(s); i++ {
			if piece := s[i : i+7]; strings.Contains(msg, piece) {
				t.Errorf("%q (from a secret) appears in the errors", piece)
			}
		}
	}
	if t.Failed() {
		t.Log(msg)
	}
	// Type errors are reported before validation runs; validation's own
	// messages are checked separately, on a document that decodes.
	doc = strings.Replace(strings.Replace(doc, `"${INTSECRET}"`, "1", 1), "${BOOLSECRET}", "true", 1)
	doc = strings.Replace(doc, "tokens: literal-token-4242", "tokens: [literal-token-4242, ' ']", 1)
	doc = strings.Replace(doc, "password: [literal-pass-4242]", "password: ''", 1)
	_, err = Parse([]byte(doc), envOf(env))
	if err == nil {
		t.Fatal("no error")
	}
	msg = err.Error()
	if len(errLines(msg)) < 8 {
		t.Errorf("expected validation errors for every secret, got:\n%s", msg)
	}
	for _, s := range secrets {
		for i := 0; i+7 <= len(s); i++ {
			if piece := s[i : i+7]; strings.Contains(msg, piece) {
				t.Errorf("%q (from a secret) appears in the validation errors:\n%s", piece, msg)
			}
		}
	}
}

func TestStaticLabels(t *testing.T) {
	f := false
	tr := true
	downward := map[string]string{"POD_NAME": "web-0", "POD_NAMESPACE": "shop", "NODE_NAME": "node-3"}
	tests := []struct {
		name      string
		podLabels *bool
		labels    map[string]string
		env       map[string]string
		want      map[string]string
	}{
		{"default on", nil, map[string]string{"cluster": "eu1"}, downward,
			map[string]string{"cluster": "eu1", "pod": "web-0", "namespace": "shop", "node": "node-3"}},
		{"explicitly on", &tr, nil, downward, map[string]string{"pod": "web-0", "namespace": "shop", "node": "node-3"}},
		{"off", &f, map[string]string{"cluster": "eu1"}, downward, map[string]string{"cluster": "eu1"}},
		{"configured labels win", nil, map[string]string{"namespace": "override"}, downward,
			map[string]string{"pod": "web-0", "namespace": "override", "node": "node-3"}},
		{"only what is set and not empty", nil, nil, map[string]string{"POD_NAME": "web-0", "NODE_NAME": ""}, map[string]string{"pod": "web-0"}},
		{"nothing", nil, nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Config{PodLabels: tt.podLabels, Labels: tt.labels}
			before := maps.Clone(tt.labels)
			got := c.StaticLabels(envOf(tt.env))
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			if !maps.Equal(c.Labels, before) {
				t.Fatal("labels modified")
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("log: {level: loud}\n"+minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(good, envOf(nil))
	if err != nil || cfg.Sources[0].Name != "spacelift" {
		t.Fatalf("Load: %v", err)
	}
	if _, err := Load(bad, envOf(nil)); err == nil || !strings.HasPrefix(err.Error(), bad+": log.level: ") {
		t.Fatalf("Load: %v, want an error naming the file and the key", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load: %v, want ErrNotExist", err)
	}
}

// TestExample parses the documented example (README.md embeds it).
func TestExample(t *testing.T) {
	env := map[string]string{
		"SPACELIFT_SECRET":     "spacelift-secret-0123456789",
		"SPACELIFT_SECRET_OLD": "spacelift-secret-old-012345",
		"ALERTMANAGER_TOKEN":   "am-token-0123456789",
		"YOQ_TOKEN":            "yoq-token-0123",
		"ES_API_KEY":           "es-key",
		"POD_NAME":             "web-0",
	}
	data, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	readFile := func(p string) ([]byte, error) {
		if p == "/etc/auditpipe/secrets/k8s-password" {
			return []byte("k8s-password\n"), nil
		}
		return nil, os.ErrNotExist
	}
	cfg, err := parse(data, lookups{env: envOf(env), readFile: readFile})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Sources[2].Auth.Basic.Password != "k8s-password" {
		t.Errorf("file secret %q", cfg.Sources[2].Auth.Basic.Password)
	}
	if len(cfg.Sources) != 4 || len(cfg.Outputs) != 2 || cfg.Sources[0].Auth.HMAC.Secrets[1] != env["SPACELIFT_SECRET_OLD"] {
		t.Fatalf("unexpected: %+v", cfg)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), strings.TrimSpace(string(data))) {
		t.Error("README.md does not embed testdata/example.yaml verbatim")
	}
}

// FuzzParse runs whole documents through expansion, the known-key walk,
// decoding and validation: no panic, and the value of SECRET (only ever
// reachable through a reference) never appears in an error.
func FuzzParse(f *testing.F) {
	for _, s := range []string{minimal, "sources: [{name: a, auth: {bearer: {tokens: [\"${SECRET}\"]}}}]\n",
		"server: {max_body_bytes: \"${SECRET}\"}\n" + minimal, "a: &x [*x]\n", "<<: {b: 1}\n", "sources:\n  - <<: *a\n",
		"pod_labels: ${SECRET}\nready: {max_lag: ${SECRET}}\nlabels: {x: ${SECRET:-}}\n"} {
		f.Add(s)
	}
	const secret = "Zq9-fuzz-secret-value"
	env := envOf(map[string]string{"SECRET": secret, "A": "1"})
	f.Fuzz(func(t *testing.T, doc string) {
		if len(doc) > 1<<14 || strings.Contains(doc, "file:") {
			return
		}
		_, err := Parse([]byte(doc), env)
		if err != nil && !strings.Contains(doc, secret[:7]) && strings.Contains(err.Error(), secret[:7]) {
			t.Fatalf("error shows the secret:\n%v", err)
		}
	})
}
