package pull_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// The watermark file's format is what a restarted (possibly newer) sidecar
// reads: a change to it must be deliberate.
func TestStateFileGolden(t *testing.T) {
	r := newRig(t)
	r.cfg.Limit = 4
	p := r.poller()
	a := entry(1767312200, "secret_set", "db-password")
	r.y.append(entry(1767312199, "policy_add", "allow-web"), a, a)
	r.poll(p)
	r.y.append(entry(1767312201, "app_apply", "web"), a)
	r.poll(p)
	got, err := os.ReadFile(filepath.Join(r.dir, "yoq.json"))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "state.golden.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("state file differs from %s (run with -update if intended):\n%s", golden, got)
	}
	// No temporary files are left behind.
	names, _ := filepath.Glob(filepath.Join(r.dir, "*"))
	if len(names) != 1 {
		t.Errorf("state directory holds %v", names)
	}
}
