package config

import (
	"strings"
	"testing"
)

// TestDecodeSections: a file of some sections (the plugin's Config file,
// the CLI's output files) is read as Load reads the whole one.
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
	err := Decode([]byte("outputs: [{name: o, type: stdout}]\nlabels: {cluster: \"${CLUSTER}\", zone: \"${ZONE:-eu}\"}\n"), env, &s)
	if err != nil || len(s.Outputs) != 1 || s.Labels["cluster"] != "prod" || s.Labels["zone"] != "eu" {
		t.Fatalf("got %+v, %v", s, err)
	}
	for _, tc := range []struct{ doc, want string }{
		{"outputs: []\nsources: []\n", "sources"},
		{"labels: {a: \"${NOPE}\"}\n", "NOPE"},
		{"- a\n", "must be a mapping of keys (outputs, labels)"},
		{"outputs: ${SECRET}\n", "line 1"},
	} {
		err := Decode([]byte(tc.doc), env, &sections{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%q: %v, want an error naming %q and no secret", tc.doc, err, tc.want)
		}
	}
}
