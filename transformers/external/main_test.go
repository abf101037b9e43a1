package external

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/auditpipe/auditpipe"
)

// The plugins the tests drive, built on first use (fuzzing and -run
// subsets that need none build none): the example GitHub audit-log plugin
// and the test plugin with its failure modes.
var (
	pluginDir   string
	buildOnce   sync.Once
	buildErr    error
	examplePath string
	testPath    string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "external-plugins-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	pluginDir = dir
	return m.Run()
}

// Plugins returns the paths of the example GitHub audit-log plugin and of
// the test plugin, building them the first time.
func Plugins(t testing.TB) (example, test string) {
	t.Helper()
	buildOnce.Do(func() {
		examplePath = filepath.Join(pluginDir, "github-audit-plugin")
		testPath = filepath.Join(pluginDir, "testplugin")
		if buildErr = goBuild(examplePath, "github.com/auditpipe/auditpipe/examples/transformer-plugin"); buildErr != nil {
			return
		}
		buildErr = goBuild(testPath, "github.com/auditpipe/auditpipe/transformers/external/internal/testplugin")
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return examplePath, testPath
}

// goBuild builds pkg into out with the go command that runs the tests
// (go test puts its GOROOT/bin first in PATH).
func goBuild(out, pkg string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("no go command to build the plugins: %w", err)
	}
	cmd := exec.Command(gobin, "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// Finish is the SDK's finishing step, for tests that compare the plugin's
// events with the function's.
func Finish(ev *auditpipe.Event, in Payload) { finish(ev, in) }

// Validate is the SDK's validation of the events a function returns.
func Validate(ev *auditpipe.Event) error { return ev.Validate() }

// Flatten lists the leaves of a joined error.
func Flatten(err error) []error { return flatten(nil, err) }

// PID is the plugin process the transformer talks to now, 0 while it is
// being restarted.
func (t *Transformer) PID() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur == nil {
		return 0
	}
	return t.cur.pid
}

// Exited reports whether go-plugin has seen the current process exit.
func (t *Transformer) Exited() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cur == nil || t.cur.client.Exited()
}
