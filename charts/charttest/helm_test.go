package charttest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// EnvHelm names the environment variable that points at the helm binary,
// ahead of build/tools/helm and $PATH.
const EnvHelm = "HELM_BIN"

var chartDir = filepath.Join("..", "auditpipe")

// moduleRoot is the directory holding go.mod, above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// helmBinary returns $HELM_BIN, else build/tools/helm under the module
// root, else helm on $PATH.
func helmBinary() (string, error) {
	if p := os.Getenv(EnvHelm); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvHelm, p, err)
		}
		return p, nil
	}
	if root, err := moduleRoot(); err == nil {
		p := filepath.Join(root, "build", "tools", "helm")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("helm")
	if err != nil {
		return "", fmt.Errorf("helm not found (set %s, or `make build/tools/helm`): %w", EnvHelm, err)
	}
	return p, nil
}

// requireHelm returns helm's path. Without one it skips the test, or,
// under CI=true, fails it: CI installs helm (`make testdeps`).
func requireHelm(t *testing.T) string {
	t.Helper()
	p, err := helmBinary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("helm required under CI=true: %v", err)
		}
		t.Skip(err)
	}
	return p
}

func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(requireHelm(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// render runs helm template on chart (namespace "audit", release
// "audit") with the values files and --set flags, and decodes every
// object strictly.
func render(t *testing.T, chart string, valueFiles []string, sets ...string) objects {
	t.Helper()
	out, err := runHelm(t, templateArgs(chart, valueFiles, sets)...)
	if err != nil {
		t.Fatal(err)
	}
	return decodeAll(t, out)
}

func templateArgs(chart string, valueFiles []string, sets []string) []string {
	args := []string{"template", "audit", chart, "--namespace", "audit"}
	for _, f := range valueFiles {
		args = append(args, "--values", f)
	}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	return args
}

// objects are rendered objects by "Kind/name".
type objects map[string]any

func get[T any](t *testing.T, objs objects, kind, name string) *T {
	t.Helper()
	o, ok := objs[kind+"/"+name]
	if !ok {
		t.Fatalf("no %s %q rendered; have %v", kind, name, keys(objs))
	}
	return o.(*T)
}

func keys(objs objects) []string {
	var ks []string
	for k := range objs {
		ks = append(ks, k)
	}
	return ks
}

// serviceMonitor is monitoring.coreos.com/v1 ServiceMonitor, the fields
// the chart renders (k8s.io/api has no type for it; prometheus-operator's
// module is far larger than this test needs).
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Scheme        string `json:"scheme"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
			TLSConfig     *struct {
				ServerName string `json:"serverName"`
				CA         struct {
					Secret corev1.SecretKeySelector `json:"secret"`
				} `json:"ca"`
			} `json:"tlsConfig,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// kinds are the types rendered objects decode into, by apiVersion/kind.
// Anything else the chart renders fails the test.
var kinds = map[string]func() any{
	"v1/ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                       func() any { return &corev1.ServiceAccount{} },
	"apps/v1/StatefulSet":                     func() any { return &appsv1.StatefulSet{} },
	"apps/v1/Deployment":                      func() any { return &appsv1.Deployment{} },
	"policy/v1/PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/Ingress":            func() any { return &networkingv1.Ingress{} },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return &networkingv1.NetworkPolicy{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &serviceMonitor{} },
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeAll decodes helm template's output strictly: duplicate keys in
// the YAML, and fields the API types do not have, fail the test, as a
// server-side field validation of Strict would.
func decodeAll(t *testing.T, out string) objects {
	t.Helper()
	objs := objects{}
	for _, doc := range docSep.Split(out, -1) {
		j, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, doc)
		}
		if string(j) == "null" {
			continue // comments only
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(j, &meta); err != nil {
			t.Fatalf("rendered object: %v\n%s", err, doc)
		}
		newObj, ok := kinds[meta.APIVersion+"/"+meta.Kind]
		if !ok {
			t.Fatalf("rendered %s/%s, which the test does not know\n%s", meta.APIVersion, meta.Kind, doc)
		}
		if meta.Metadata.Name == "" {
			t.Fatalf("%s without a name\n%s", meta.Kind, doc)
		}
		obj := newObj()
		strict, err := sigsjson.UnmarshalStrict(j, obj, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", meta.Kind, meta.Metadata.Name, err, doc)
		}
		if len(strict) > 0 {
			t.Fatalf("%s %s does not decode strictly: %v\n%s", meta.Kind, meta.Metadata.Name, strict, doc)
		}
		key := meta.Kind + "/" + meta.Metadata.Name
		if _, dup := objs[key]; dup {
			t.Fatalf("%s rendered twice", key)
		}
		objs[key] = obj
	}
	return objs
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// EnvAuditpipe names the environment variable that points at an
// auditpipe binary to use instead of building one.
const EnvAuditpipe = "AUDITPIPE_BIN"

// auditpipeBinary returns $AUDITPIPE_BIN, or builds cmd/auditpipe once
// for the package's tests.
func auditpipeBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(EnvAuditpipe); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "charttest-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "auditpipe")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/auditpipe/auditpipe/cmd/auditpipe").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// TestMain removes the binary auditpipeBinary built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// configHash is what checksum/config must be: the SHA-256 of config.yaml
// as the ConfigMap holds it, less the block scalar's final newline.
func configHash(cm *corev1.ConfigMap) string {
	sum := sha256.Sum256([]byte(strings.TrimSuffix(cm.Data["config.yaml"], "\n")))
	return hex.EncodeToString(sum[:])
}
