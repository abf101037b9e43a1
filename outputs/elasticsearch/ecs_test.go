package elasticsearch

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// reference builds the ECS document of ev the slow, obvious way, for
// encoding/json to marshal. It restates the mapping README.md documents,
// independently of AppendECS's byte juggling.
func reference(ev *auditpipe.Event) map[string]any {
	outcome := map[auditpipe.Outcome]string{"success": "success", "failure": "failure", "denied": "failure"}[ev.Outcome]
	if outcome == "" {
		outcome = "unknown"
	}
	typ := map[auditpipe.Operation]string{"create": "creation", "read": "access", "update": "change", "delete": "deletion",
		"login": "start", "logout": "end"}[ev.Operation]
	if typ == "" {
		typ = "info"
	}
	types := []any{typ}
	if ev.Outcome == auditpipe.OutcomeDenied {
		types = append(types, "denied")
	}
	event := map[string]any{
		"kind": "event", "id": ev.ID, "action": ev.Action, "outcome": outcome, "type": types,
		"provider": ev.Source.Type, "dataset": "auditpipe." + ev.Source.Type,
	}
	allowed := strings.Fields("api authentication configuration database driver email file host iam intrusion_detection library malware network package process registry session threat vulnerability web")
	var cats []any
	for _, c := range ev.Category {
		if slices.Contains(allowed, c) && !slices.Contains(cats, any(c)) {
			cats = append(cats, c)
		}
	}
	if cats != nil {
		event["category"] = cats
	}
	if !ev.ObservedTime.IsZero() {
		event["created"] = ev.ObservedTime
	}
	putStr(event, "reason", ev.Reason)
	doc := map[string]any{"@timestamp": ev.Time, "ecs": map[string]any{"version": "8.11.0"}, "event": event}
	putStr(doc, "message", ev.Message)
	user := map[string]any{}
	putStr(user, "id", ev.Actor.ID)
	putStr(user, "name", ev.Actor.Name)
	putStr(user, "email", ev.Actor.Email)
	putStr(user, "domain", ev.Actor.Provider)
	putObj(doc, "user", user)
	goodIP := false
	if ev.Client.IP != "" {
		if _, err := netip.ParseAddr(ev.Client.IP); err == nil {
			goodIP = true
			doc["source"] = map[string]any{"ip": ev.Client.IP}
		}
	}
	if ev.Client.UserAgent != "" {
		doc["user_agent"] = map[string]any{"original": ev.Client.UserAgent}
	}
	if ev.Source.Type == "k8s" || ev.Source.Type == "alertmanager" {
		o := map[string]any{"type": "kubernetes"}
		putStr(o, "namespace", ev.Resource.Namespace)
		putStr(o, "api_version", ev.Resource.APIVersion)
		res := map[string]any{}
		putStr(res, "type", ev.Resource.Type)
		putStr(res, "name", ev.Resource.Name)
		putStr(res, "id", ev.Resource.ID)
		putObj(o, "resource", res)
		doc["orchestrator"] = o
	}
	if ev.Tenant.Account != "" {
		doc["cloud"] = map[string]any{"account": map[string]any{"id": ev.Tenant.Account}}
	}
	if len(ev.Labels) > 0 {
		keys := make([]string, 0, len(ev.Labels))
		for k := range ev.Labels {
			if k != "" {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		labels := map[string]any{}
		// Among keys equal once dedotted, the first in dedotted-then-raw
		// order wins.
		slices.SortStableFunc(keys, func(a, b string) int {
			return strings.Compare(strings.ReplaceAll(a, ".", "_"), strings.ReplaceAll(b, ".", "_"))
		})
		for _, k := range keys {
			d := strings.ReplaceAll(k, ".", "_")
			if _, dup := labels[d]; !dup {
				labels[d] = ev.Labels[k]
			}
		}
		putObj(doc, "labels", labels)
	}
	ap := map[string]any{"schema_version": ev.SchemaVersion, "operation": string(ev.Operation), "outcome": string(ev.Outcome)}
	if len(ev.Category) > 0 {
		ap["category"] = ev.Category
	}
	src := map[string]any{"type": ev.Source.Type}
	putStr(src, "name", ev.Source.Name)
	putStr(src, "format", ev.Source.Format)
	ap["source"] = src
	actor := map[string]any{}
	putStr(actor, "type", string(ev.Actor.Type))
	putStr(actor, "uid", ev.Actor.UID)
	putObj(ap, "actor", actor)
	res := map[string]any{}
	putStr(res, "type", ev.Resource.Type)
	putStr(res, "id", ev.Resource.ID)
	putStr(res, "name", ev.Resource.Name)
	putStr(res, "namespace", ev.Resource.Namespace)
	putStr(res, "api_group", ev.Resource.APIGroup)
	putStr(res, "api_version", ev.Resource.APIVersion)
	putObj(ap, "resource", res)
	ten := map[string]any{}
	putStr(ten, "account", ev.Tenant.Account)
	putStr(ten, "org", ev.Tenant.Org)
	putStr(ten, "project", ev.Tenant.Project)
	putObj(ap, "tenant", ten)
	if ev.Client.IP != "" && !goodIP {
		ap["client"] = map[string]any{"ip": ev.Client.IP}
	}
	if len(ev.Details) > 0 {
		ap["details"] = ev.Details
	}
	putStr(ap, "raw_sha256", ev.RawSHA256)
	if ev.Integrity != nil && len(ev.Labels) > 0 {
		ap["labels"] = ev.Labels
	}
	if in := ev.Integrity; in != nil {
		m := map[string]any{}
		putStr(m, "stream", in.Stream)
		if in.Seq != 0 {
			m["seq"] = in.Seq
		}
		putStr(m, "prev_hash", in.PrevHash)
		putStr(m, "hash", in.Hash)
		putStr(m, "key_id", in.KeyID)
		putStr(m, "signature", in.Signature)
		ap["integrity"] = m
	}
	doc["auditpipe"] = ap
	return doc
}

func putStr(m map[string]any, k, v string) {
	if v != "" {
		m[k] = v
	}
}

func putObj(m map[string]any, k string, v map[string]any) {
	if len(v) > 0 {
		m[k] = v
	}
}

// decode reads JSON with exact numbers, failing on duplicate keys, which
// Elasticsearch rejects and encoding/json would silently merge.
func decode(t testing.TB, b []byte) any {
	t.Helper()
	if err := noDuplicateKeys(b); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("invalid JSON: %v: %s", err, b)
	}
	if _, err := d.Token(); err != io.EOF {
		t.Fatalf("trailing data after the document: %s", b)
	}
	return v
}

func noDuplicateKeys(b []byte) error {
	d := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		keys   map[string]bool
		object bool
		expect bool // the next string token is a key
	}
	var stack []*frame
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expect {
			if k, ok := tok.(string); ok {
				if top.keys[k] {
					return errors.New("duplicate key " + k)
				}
				top.keys[k] = true
				top.expect = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, object: true, expect: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].expect = true
		}
	}
}

func checkAgainstReference(t testing.TB, ev *auditpipe.Event) {
	t.Helper()
	got := AppendECS(nil, ev)
	want, err := json.Marshal(reference(ev))
	if err != nil {
		t.Fatal(err)
	}
	if g, w := decode(t, got), decode(t, want); !reflect.DeepEqual(g, w) {
		t.Errorf("AppendECS differs from the reference:\n got %s\nwant %s", got, want)
	}
}

// edgeEvents are events that take every branch of the encoder.
func edgeEvents() []auditpipe.Event {
	base := outputstest.Event(0)
	var evs []auditpipe.Event
	add := func(f func(*auditpipe.Event)) {
		ev := base
		ev.Labels = map[string]string{"cluster": "dev-1", "env": "test"}
		f(&ev)
		evs = append(evs, ev)
	}
	add(func(ev *auditpipe.Event) {})
	add(func(ev *auditpipe.Event) { ev.Outcome = auditpipe.OutcomeDenied; ev.Reason = "nope" })
	add(func(ev *auditpipe.Event) { ev.Outcome = "weird"; ev.Operation = "weird" })
	for _, op := range auditpipe.Operations() {
		add(func(ev *auditpipe.Event) { ev.Operation = op })
	}
	for _, o := range auditpipe.Outcomes() {
		add(func(ev *auditpipe.Event) { ev.Outcome = o })
	}
	add(func(ev *auditpipe.Event) { ev.Category = []string{"iam", "secrets", "iam", "web", "Configuration"} })
	add(func(ev *auditpipe.Event) { ev.Category = []string{"only-ours"} })
	add(func(ev *auditpipe.Event) { ev.Category = nil })
	add(func(ev *auditpipe.Event) { ev.Client.IP = "not an ip" })
	add(func(ev *auditpipe.Event) { ev.Client.IP = "2001:db8::1" })
	add(func(ev *auditpipe.Event) { ev.Client = auditpipe.Client{} })
	add(func(ev *auditpipe.Event) { ev.Actor = auditpipe.Actor{} })
	add(func(ev *auditpipe.Event) { ev.Actor = auditpipe.Actor{Type: auditpipe.ActorSystem, UID: "u-1"} })
	add(func(ev *auditpipe.Event) { ev.Resource = auditpipe.Resource{} })
	add(func(ev *auditpipe.Event) { ev.Tenant = auditpipe.Tenant{Org: "o", Project: "p"} })
	add(func(ev *auditpipe.Event) {
		ev.Details = nil
		ev.RawSHA256 = ""
		ev.Message = ""
		ev.ObservedTime = time.Time{}
	})
	add(func(ev *auditpipe.Event) {
		ev.Labels = map[string]string{"app": "web", "app.kubernetes.io/name": "web", "app_kubernetes_io/name": "dup", "a.b": "1", "a_b": "2", "": "empty"}
	})
	add(func(ev *auditpipe.Event) { ev.Labels = nil })
	add(func(ev *auditpipe.Event) {
		ev.Labels = map[string]string{}
		for i := range 40 {
			ev.Labels[string(rune('a'+i%26))+strings.Repeat("x", i)] = "v"
		}
	})
	for _, src := range []string{"k8s", "alertmanager"} {
		add(func(ev *auditpipe.Event) {
			ev.Source = auditpipe.Source{Type: src}
			ev.Resource = auditpipe.Resource{Type: "pods", ID: "uid-1", Name: "nginx", Namespace: "default", APIGroup: "", APIVersion: "v1"}
		})
		add(func(ev *auditpipe.Event) { ev.Source = auditpipe.Source{Type: src}; ev.Resource = auditpipe.Resource{} })
	}
	add(func(ev *auditpipe.Event) {
		ev.Integrity = &auditpipe.Integrity{Stream: "s", Seq: 18446744073709551615, PrevHash: "p", Hash: "h", KeyID: "k", Signature: "sig"}
	})
	add(func(ev *auditpipe.Event) { ev.Integrity = &auditpipe.Integrity{} })
	add(func(ev *auditpipe.Event) {
		ev.Action = "quote\" backslash\\ nl\n ctl\x01 html<>& u2028\u2028 bad\xff é"
		ev.Message = ev.Action
		ev.Source.Type = "we\"ird"
		ev.Time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 5*3600+1800))
	})
	return evs
}

func TestAppendECSMatchesReference(t *testing.T) {
	evs := append(outputstest.Events(8), edgeEvents()...)
	for i := range evs {
		checkAgainstReference(t, &evs[i])
	}
}

func TestAppendECSFields(t *testing.T) {
	cases := []struct {
		name  string
		ev    func() auditpipe.Event
		path  string
		want  string // JSON of the value at path; "" for absent
		extra string // another path that must be absent
	}{
		{"denied is a failure", func() auditpipe.Event { return outputstest.Event(1) }, "event.outcome", `"failure"`, ""},
		{"original outcome kept", func() auditpipe.Event { return outputstest.Event(1) }, "auditpipe.outcome", `"denied"`, ""},
		{"denied type", func() auditpipe.Event { return outputstest.Event(1) }, "event.type", `["change","denied"]`, ""},
		{"dataset", func() auditpipe.Event { return outputstest.Event(3) }, "event.dataset", `"auditpipe.k8s"`, ""},
		{"k8s orchestrator", func() auditpipe.Event { return outputstest.Event(3) }, "orchestrator.type", `"kubernetes"`, ""},
		{"no orchestrator for spacelift", func() auditpipe.Event { return outputstest.Event(0) }, "orchestrator", ``, ""},
		{"user domain", func() auditpipe.Event { return outputstest.Event(0) }, "user.domain", `"github"`, ""},
		{"source.ip", func() auditpipe.Event { return outputstest.Event(0) }, "source.ip", `"203.0.113.7"`, "auditpipe.client"},
		{"bad ip moved", func() auditpipe.Event {
			ev := outputstest.Event(0)
			ev.Client.IP = "unknown"
			return ev
		}, "auditpipe.client.ip", `"unknown"`, "source"},
		{"labels dedotted", func() auditpipe.Event {
			ev := outputstest.Event(0)
			ev.Labels = map[string]string{"app.kubernetes.io/name": "x"}
			return ev
		}, "labels", `{"app_kubernetes_io/name":"x"}`, ""},
		{"created", func() auditpipe.Event { return outputstest.Event(0) }, "event.created", `"2026-11-21T09:30:00.373456Z"`, ""},
		{"details kept", func() auditpipe.Event { return outputstest.Event(0) }, "auditpipe.details.n", `0`, ""},
		{"cloud account", func() auditpipe.Event { return outputstest.Event(0) }, "cloud.account.id", `"acme"`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := tc.ev()
			doc := decode(t, AppendECS(nil, &ev))
			got, ok := lookup(doc, tc.path)
			switch {
			case tc.want == "" && ok:
				t.Errorf("%s present: %v", tc.path, got)
			case tc.want != "":
				b, _ := json.Marshal(got)
				if string(b) != tc.want {
					t.Errorf("%s = %s, want %s", tc.path, b, tc.want)
				}
			}
			if tc.extra != "" {
				if v, ok := lookup(doc, tc.extra); ok {
					t.Errorf("%s present: %v", tc.extra, v)
				}
			}
		})
	}
}

func lookup(v any, path string) (any, bool) {
	for p := range strings.SplitSeq(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[p]; !ok {
			return nil, false
		}
	}
	return v, true
}

func TestAppendECSGolden(t *testing.T) {
	var b []byte
	evs := outputstest.Events(8)
	for i := range evs {
		b = AppendECS(b, &evs[i])
		b = append(b, '\n')
	}
	path := filepath.Join("testdata", "ecs.golden")
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestAppendECSGolden -update to create it)", err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("AppendECS output differs from %s (run with -update after checking the change):\n got %s\nwant %s", path, b, want)
	}
}

func TestAppendECSAppends(t *testing.T) {
	ev := outputstest.Event(0)
	prefix := []byte("prefix:")
	out := AppendECS(slices.Clone(prefix), &ev)
	if !bytes.HasPrefix(out, prefix) || !bytes.Equal(out[len(prefix):], AppendECS(nil, &ev)) {
		t.Errorf("AppendECS does not append: %s", out)
	}
}

func TestTemplateMappingCoversDocument(t *testing.T) {
	var tmpl struct {
		Mappings struct {
			Properties map[string]any `json:"properties"`
		} `json:"mappings"`
	}
	if err := json.Unmarshal(templateMapping, &tmpl); err != nil {
		t.Fatal(err)
	}
	// Every field the encoder writes, but labels.* (dynamic keywords) and
	// auditpipe.details.* (flattened), has an explicit mapping.
	var missing []string
	var walk func(prefix string, v any, props map[string]any)
	walk = func(prefix string, v any, props map[string]any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		for k, sub := range m {
			path := prefix + k
			def, ok := props[k].(map[string]any)
			if !ok {
				missing = append(missing, path)
				continue
			}
			if path == "labels" || def["type"] == "flattened" {
				continue
			}
			if inner, ok := def["properties"].(map[string]any); ok {
				walk(path+".", sub, inner)
			}
		}
	}
	evs := append(outputstest.Events(4), edgeEvents()...)
	for i := range evs {
		walk("", decode(t, AppendECS(nil, &evs[i])), tmpl.Mappings.Properties)
	}
	slices.Sort(missing)
	if missing = slices.Compact(missing); len(missing) > 0 {
		t.Errorf("fields without a mapping in index_template.json: %v", missing)
	}
}

func FuzzAppendECS(f *testing.F) {
	f.Add("stack.create", "alice did \"it\"", "alice", "app.kubernetes.io/name", "web", "203.0.113.7", "iam", `{"n":1,"a":[true,null]}`, "k8s", "update", "denied")
	f.Add("", "", "", "", "", "::1", "", "", "spacelift", "", "")
	f.Add("\u2028\x00<", "\xff\xfe", "é", "a.b", "\n", "1.2.3", "web", `{}`, "alertmanager", "login", "success")
	f.Fuzz(func(t *testing.T, action, message, name, labelKey, labelValue, ip, category, details, source, op, outcome string) {
		ev := outputstest.Event(3)
		ev.Action, ev.Message, ev.Actor.Name, ev.Client.IP = action, message, name, ip
		ev.Category = []string{category, "iam"}
		ev.Source.Type = source
		ev.Operation, ev.Outcome = auditpipe.Operation(op), auditpipe.Outcome(outcome)
		// Validate guarantees valid UTF-8 label keys and object details;
		// invalid keys could collide once replaced by U+FFFD.
		if utf8.ValidString(labelKey) {
			ev.Labels = map[string]string{labelKey: labelValue, "app": "x"}
		}
		ev.Details = nil
		if d := []byte(details); json.Valid(d) && bytes.HasPrefix(bytes.TrimSpace(d), []byte("{")) && noDuplicateKeys(d) == nil {
			ev.Details = d
		}
		checkAgainstReference(t, &ev)
	})
}

func BenchmarkEncodeECS(b *testing.B) {
	evs := outputstest.Events(64)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf = AppendECS(buf[:0], &evs[i%len(evs)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.SetBytes(int64(len(buf)))
}
