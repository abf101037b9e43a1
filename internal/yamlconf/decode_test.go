package yamlconf

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

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
