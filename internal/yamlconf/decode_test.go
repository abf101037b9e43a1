package yamlconf

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestDecodeSections: a file of some sections (the plugin's Config file,
// the CLI's files) is read as the sidecar reads its whole one.
func TestDecodeSections(t *testing.T) {
	type sections struct {
		Outputs []struct {
			Name string `yaml:"name"`
			Type string `yaml:"type"`
		} `yaml:"outputs"`
		Labels map[string]string `yaml:"labels"`
	}
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"CLUSTER": "prod", "SECRET": "s3cr3t: #x"}[k]
		return v, ok
	}
	var s sections
	err := Decode([]byte("outputs: [{name: o, type: stdout}]\nlabels: {cluster: \"${CLUSTER}\", zone: \"${ZONE:-eu}\"}\n"), Lookups{Env: env}, &s)
	if err != nil || len(s.Outputs) != 1 || s.Labels["cluster"] != "prod" || s.Labels["zone"] != "eu" {
		t.Fatalf("got %+v, %v", s, err)
	}
	for _, tc := range []struct{ doc, want string }{
		{"outputs: []\nsources: []\n", "sources"},
		{"labels: {a: \"${NOPE}\"}\n", "NOPE"},
		{"- a\n", "must be a mapping of keys (outputs, labels)"},
		{"outputs: ${SECRET}\n", "line 1"},
	} {
		err := Decode([]byte(tc.doc), Lookups{Env: env}, &sections{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%q: %v, want an error naming %q and no secret", tc.doc, err, tc.want)
		}
	}
}

// TestDecodeMapping reads a mapping whose keys are known only at run time,
// as strictly as Decode, its problems in document order with Decode's.
func TestDecodeMapping(t *testing.T) {
	type tls struct {
		CAFile string `yaml:"ca_file"`
	}
	type settings struct {
		Port  int    `yaml:"port"`
		Token string `yaml:"token"`
		TLS   tls    `yaml:"tls"`
	}
	type file struct {
		Base    map[string]any `yaml:"base"`
		Entry   map[string]any `yaml:"entry"`
		Trailer string         `yaml:"trailer"`
	}
	env := func(k string) (string, bool) { return map[string]string{"SECRET": "hunter2-secret"}[k], k == "SECRET" }
	doc, err := Parse([]byte(`base: &b {port: 1}
entry:
  name: x
  <<: *b
  a: {port: "${SECRET}", tls: {ca: x}}
  b: ~
  ccc: {port: 2}
  zzzz: {port: 3}
trailer: [1]
`), Lookups{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	var f file
	doc.Decode(&f)
	var a, b, base settings
	fields := []Field{{Key: "name"}, {Key: "port", Into: &base.Port}, {Key: "a", Into: &a}, {Key: "b", Into: &b}, {Key: "cc"}}
	doc.DecodeMapping(doc.Value("entry"), fields)
	doc.DecodeMapping(doc.Value("entry"), fields) // once only
	want := []string{
		"line 5: entry.a.tls.ca: unknown key",
		`line 7: entry.ccc: unknown key (did you mean "cc"?)`,
		`line 8: entry.zzzz: unknown key`,
		// Two values on line 5: the message cannot say which.
		"line 5: the expanded value (!!str, hidden) cannot be decoded into int",
		"line 9: trailer: a list cannot be decoded into string",
	}
	err = doc.Err()
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	if base.Port != 1 {
		t.Errorf("merged port = %d, want 1", base.Port)
	}
	if doc.Value("nope") != nil || doc.Value("entry").Kind != yaml.MappingNode {
		t.Error("Value")
	}
}
