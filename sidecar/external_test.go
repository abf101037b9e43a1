package sidecar_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExternalTransformerSource is the example plugin's README, end to
// end: build the plugin, name it in a source with format external, post a
// GitHub audit-log page, and see its events at the output.
func TestExternalTransformerSource(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example plugin")
	}
	plugin := filepath.Join(t.TempDir(), "github-audit-plugin")
	if out, err := exec.Command("go", "build", "-o", plugin, "../examples/transformer-plugin").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	r := start(t, `
data_dir: ${DIR}
server: {listen: "127.0.0.1:0"}
sources:
  - name: github
    format: external
    transformer: {path: "${PLUGIN}"}
    auth: {none: true}
outputs:
  - {name: events, type: file, file: {path: "${DIR}/events.ndjson"}}
`, map[string]string{"PLUGIN": plugin})
	page, err := os.ReadFile("../examples/transformer-plugin/githubaudit/testdata/audit_log_page.json")
	if err != nil {
		t.Fatal(err)
	}
	got := post(t, r.url+"/v1/sources/github", page, nil)
	if got.code != 200 {
		t.Fatalf("%d %s", got.code, got.raw)
	}
	n := int(got.body["accepted"].(float64))
	evs := events(t, filepath.Join(r.dir, "events.ndjson"), n)
	for _, ev := range evs {
		if ev.Source.Name != "github" || ev.Validate() != nil || !strings.Contains(ev.Action, ".") {
			t.Errorf("event %+v: %v", ev, ev.Validate())
		}
	}
	if bad := post(t, r.url+"/v1/sources/github", []byte("not json"), nil); bad.code != 400 {
		t.Errorf("not JSON through the plugin: %d %s", bad.code, bad.raw)
	}
}
