// Package examples_test checks the deployment examples: every YAML file
// parses, every Kubernetes manifest is an object, every sidecar
// configuration passes the sidecar's own loader (what `auditpipe sidecar
// --check-config` runs), and the pieces that must agree with each other
// (the ConfigMap and the Secret, the Deployment and the Service, the
// Dockerfile and the Deployment, Alertmanager and the sidecar) do.
package examples_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/outputs/fanout"
	fileoutput "github.com/auditpipe/auditpipe/outputs/file"
	"github.com/auditpipe/auditpipe/sidecar/config"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/formats"
)

// The tests run in examples/; the repository root is its parent.
const repoRoot = ".."

// testenvVars are stand-ins for what `go run ./testenv/cmd/testenv`
// prints, for the configurations that forward to its peers.
var testenvVars = map[string]string{
	"KAFKA_BROKERS":         "127.0.0.1:9092",
	"ES_URL":                "http://127.0.0.1:9200",
	"OPENSEARCH_URL":        "http://127.0.0.1:9201",
	"OPENSEARCH_REGION":     "us-east-1",
	"OPENSEARCH_ACCESS_KEY": "AKIATESTENVOPENSEARCH",
	"OPENSEARCH_SECRET_KEY": "testenv-opensearch-secret",
	"S3_ENDPOINT":           "http://127.0.0.1:7070",
	"S3_BUCKET":             "auditpipe",
	"S3_ACCESS_KEY":         "testenv-access-key",
	"S3_SECRET_KEY":         "testenv-secret-key",
	"S3_REGION":             "us-east-1",
	"WEBHOOK_URL":           "http://127.0.0.1:8090/hook",
	"WEBHOOK_SECRET":        "testenv-webhook-secret",
	"WEBHOOK_INSPECT_URL":   "http://127.0.0.1:8090/inspect",
	"SPLUNK_HEC_URL":        "http://127.0.0.1:8088",
	"SPLUNK_HEC_TOKEN":      "11111111-2222-4333-8444-555555555555",
}

// dummySecret stands for the content of every ${file:...} that no
// manifest provides: long enough for an HMAC secret (16 bytes), no spaces
// (a bearer token).
const dummySecret = "dummy-secret-0123456789abcdef"

// yamlFiles returns every *.yaml and *.yml file under examples/, sorted.
func yamlFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if ext := filepath.Ext(p); !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no YAML files under examples/")
	}
	return files
}

// decodeAll decodes every document of a YAML stream.
func decodeAll(data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return docs, err
		}
		docs = append(docs, &n)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestYAMLParses(t *testing.T) {
	for _, f := range yamlFiles(t) {
		t.Run(f, func(t *testing.T) {
			docs, err := decodeAll(readFile(t, f))
			if err != nil {
				t.Fatalf("%s: document %d: %v", f, len(docs)+1, err)
			}
			if len(docs) == 0 {
				t.Fatalf("%s: no YAML document", f)
			}
		})
	}
}

// object is the part of a Kubernetes object these tests read.
type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       yaml.Node         `yaml:"spec"`
}

// manifests decodes every object of every file in examples/kubernetes.
func manifests(t *testing.T) map[string][]object {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in examples/kubernetes (%v)", err)
	}
	out := map[string][]object{}
	for _, f := range files {
		docs, err := decodeAll(readFile(t, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for i, d := range docs {
			var o object
			if err := d.Decode(&o); err != nil {
				t.Fatalf("%s: document %d: %v", f, i+1, err)
			}
			out[f] = append(out[f], o)
		}
	}
	return out
}

func TestKubernetesManifests(t *testing.T) {
	for f, objs := range manifests(t) {
		for i, o := range objs {
			if o.APIVersion == "" || o.Kind == "" {
				t.Errorf("%s: document %d: apiVersion %q and kind %q must both be set", f, i+1, o.APIVersion, o.Kind)
			}
			if o.Metadata.Name == "" {
				t.Errorf("%s: document %d (%s): metadata.name is empty", f, i+1, o.Kind)
			}
		}
	}
}

// sidecarConfig is one example sidecar configuration.
type sidecarConfig struct {
	name string // for messages: the file, and the ConfigMap key when embedded
	text string
	// files maps ${file:PATH} paths to their content; paths it lacks read
	// dummySecret.
	files map[string]string
}

// sidecarConfigs returns examples/sidecar/*.yaml and every YAML document
// embedded in a ConfigMap under examples/kubernetes, the latter with the
// Secret values its pod would mount.
func sidecarConfigs(t *testing.T) []sidecarConfig {
	t.Helper()
	files, err := filepath.Glob("sidecar/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no sidecar configurations in examples/sidecar (%v)", err)
	}
	var out []sidecarConfig
	for _, f := range files {
		out = append(out, sidecarConfig{name: f, text: string(readFile(t, f))})
	}
	k := kube(t)
	for _, cm := range k.configMaps {
		for key, v := range cm.obj.Data {
			if strings.HasSuffix(key, ".yaml") || strings.HasSuffix(key, ".yml") {
				out = append(out, sidecarConfig{name: cm.file + ":" + cm.obj.Metadata.Name + "/" + key, text: v, files: k.mountedSecrets(t)})
			}
		}
	}
	return out
}

var (
	fileRefRE = regexp.MustCompile(`\$\{file:([^}]*)\}`)
	varRefRE  = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)
)

// materialize writes c to a temporary directory with every ${file:PATH}
// pointing at a file there (with the content c.files gives, or
// dummySecret), and returns its path.
func (c sidecarConfig) materialize(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	text := fileRefRE.ReplaceAllStringFunc(c.text, func(ref string) string {
		p := fileRefRE.FindStringSubmatch(ref)[1]
		content, ok := c.files[p]
		if !ok {
			content = dummySecret
		}
		local := filepath.Join(dir, "files", filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(local), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(local, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return "${file:" + local + "}"
	})
	out := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(out, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// env supplies the variables c requires (${VAR} without a default) from
// testenvVars and leaves the others unset, so their defaults are what is
// checked. A required variable testenvVars lacks fails the test.
func (c sidecarConfig) env(t *testing.T) func(string) (string, bool) {
	t.Helper()
	vars := map[string]string{}
	for _, m := range varRefRE.FindAllStringSubmatch(strings.Join(scalars(t, c.text), "\n"), -1) {
		if m[2] != "" {
			continue
		}
		v, ok := testenvVars[m[1]]
		if !ok {
			t.Fatalf("%s: requires ${%s}, which has no stand-in in testenvVars", c.name, m[1])
		}
		vars[m[1]] = v
	}
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

// scalars returns the scalar values of a YAML document (not its keys or
// comments), where the loader expands references.
func scalars(t *testing.T, text string) []string {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(n *yaml.Node, isKey bool)
	walk = func(n *yaml.Node, isKey bool) {
		if n.Kind == yaml.ScalarNode && !isKey {
			out = append(out, n.Value)
		}
		for i, c := range n.Content {
			walk(c, n.Kind == yaml.MappingNode && i%2 == 0)
		}
	}
	walk(&doc, false)
	return out
}

func (c sidecarConfig) load(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load(c.materialize(t), c.env(t))
	if err != nil {
		t.Fatalf("%s does not pass the sidecar's configuration check:\n%v", c.name, err)
	}
	return cfg
}

// TestSidecarConfigsLoad loads every example configuration as `auditpipe
// sidecar --check-config` does: expanded, strictly decoded (an unknown key
// is an error), defaulted and validated.
func TestSidecarConfigsLoad(t *testing.T) {
	for _, c := range sidecarConfigs(t) {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.load(t)
			if len(cfg.Sources) == 0 || len(cfg.Outputs) == 0 {
				t.Errorf("%s: %d sources and %d outputs; an example needs both", c.name, len(cfg.Sources), len(cfg.Outputs))
			}
		})
	}
}

func loadFile(t *testing.T, p string, env map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.Load(p, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return cfg
}

// TestQuickStartContract holds local.yaml and all-outputs.yaml to the names
// the README and `make run` rely on.
func TestQuickStartContract(t *testing.T) {
	wantSources := map[string]string{"spacelift": "spacelift", "alertmanager": "alertmanager", "app": "app", "k8s": "k8s"}
	tests := []struct {
		name       string
		env        map[string]string
		wantListen string
		wantData   string
		wantSecret string
	}{
		{"defaults", nil, "127.0.0.1:8080", "./data", "change-me-spacelift-secret"},
		{"overridden", map[string]string{
			"AUDITPIPE_LISTEN": "0.0.0.0:9999",
			"AUDITPIPE_DATA":   "/var/lib/auditpipe",
			"SPACELIFT_SECRET": "another-secret-of-enough-length",
		}, "0.0.0.0:9999", "/var/lib/auditpipe", "another-secret-of-enough-length"},
	}
	for _, file := range []string{"sidecar/local.yaml", "sidecar/all-outputs.yaml"} {
		for _, tt := range tests {
			t.Run(file+"/"+tt.name, func(t *testing.T) {
				env := map[string]string{}
				for k, v := range testenvVars {
					env[k] = v
				}
				for k, v := range tt.env {
					env[k] = v
				}
				cfg := loadFile(t, file, env)
				if cfg.Server.Listen != tt.wantListen {
					t.Errorf("server.listen = %q, want %q", cfg.Server.Listen, tt.wantListen)
				}
				if cfg.DataDir != tt.wantData {
					t.Errorf("data_dir = %q, want %q", cfg.DataDir, tt.wantData)
				}
				// The queue and the dead letters default to data_dir.
				for key, dir := range map[string]string{"queue.dir": cfg.Queue.Dir, "dead_letter.dir": cfg.DeadLetter.Dir} {
					if filepath.Dir(filepath.Clean(dir)) != filepath.Clean(tt.wantData) {
						t.Errorf("%s = %q, want a directory in %q", key, dir, tt.wantData)
					}
				}
				got := map[string]string{}
				for _, s := range cfg.Sources {
					got[s.Name] = s.Format
					if s.Name == "spacelift" {
						if s.Auth.HMAC == nil || !slices.Equal(s.Auth.HMAC.Secrets, []string{tt.wantSecret}) {
							t.Errorf("sources.spacelift.auth.hmac.secrets is not [SPACELIFT_SECRET or its default]")
						}
					} else if !s.Auth.None {
						t.Errorf("sources.%s.auth: want none: true in the local examples", s.Name)
					}
				}
				if !maps.Equal(got, wantSources) {
					t.Errorf("sources (name: format) = %v, want %v", got, wantSources)
				}
				var file *fanout.OutputConfig
				for i := range cfg.Outputs {
					if cfg.Outputs[i].Type == "file" {
						file = &cfg.Outputs[i]
					}
				}
				if want := path.Join(tt.wantData, "events.ndjson"); file == nil || path.Clean(file.Settings.(*fileoutput.Config).Path) != want {
					t.Errorf("want a file output writing %s", want)
				}
			})
		}
	}
}

// TestAllOutputsRouting runs the seed payloads through the transformers and
// checks which events all-outputs.yaml sends where: every event to the four
// stores and the file, only denied or failed ones and Spacelift's
// audit-trail changes to the security webhook.
func TestAllOutputsRouting(t *testing.T) {
	cfg := loadFile(t, "sidecar/all-outputs.yaml", testenvVars)
	types := map[string]bool{}
	for _, o := range cfg.Outputs {
		types[o.Type] = true
	}
	for _, want := range []string{"kafka", "elasticsearch", "opensearch", "s3", "webhook", "file"} {
		if !types[want] {
			t.Errorf("all-outputs.yaml has no %s output", want)
		}
	}
	reg, err := formats.NewRegistry(formats.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		payload, format string
		webhook         map[string]bool // event action -> sent to the webhook
	}{
		{"spacelift-audit-trail-delete.json", "spacelift", map[string]bool{"audit_trail_webhook.delete": true}},
		{"spacelift-audit-trail-set.json", "spacelift", map[string]bool{"audit_trail_webhook.set": true}},
		{"spacelift-stack-create.json", "spacelift", map[string]bool{"stack.create": false}},
	}
	for _, tt := range tests {
		t.Run(tt.payload, func(t *testing.T) {
			events := transform(t, reg, tt.format, tt.payload)
			for _, ev := range events {
				for _, o := range cfg.Outputs {
					got := o.Match.Matches(&ev)
					want := o.Type != "webhook" || tt.webhook[ev.Action]
					if got != want {
						t.Errorf("event %s (%s): sent to output %s = %v, want %v", ev.Action, ev.Outcome, o.Name, got, want)
					}
				}
			}
		})
	}
	t.Run("alertmanager-audit.json", func(t *testing.T) {
		events := transform(t, reg, "alertmanager", "alertmanager-audit.json")
		var denied int
		for _, ev := range events {
			for _, o := range cfg.Outputs {
				want := o.Type != "webhook" || ev.Outcome == auditpipe.OutcomeDenied || ev.Outcome == auditpipe.OutcomeFailure
				if got := o.Match.Matches(&ev); got != want {
					t.Errorf("event %s (%s): sent to output %s = %v, want %v", ev.ID, ev.Outcome, o.Name, got, want)
				}
			}
			if ev.Outcome == auditpipe.OutcomeDenied {
				denied++
			}
		}
		if denied == 0 {
			t.Error("the seed holds no denied event; the webhook's match is not exercised")
		}
	})
}

func transform(t *testing.T, reg *transformers.Registry, format, payload string) []auditpipe.Event {
	t.Helper()
	tr, err := reg.Get(format)
	if err != nil {
		t.Fatal(err)
	}
	in := transformers.Input{Body: readFile(t, filepath.Join("payloads", payload)), Meta: transformers.Meta{SourceName: format}}
	res, err := transformers.Run(context.Background(), tr, in)
	if err != nil {
		t.Fatalf("%s: %v", payload, err)
	}
	if len(res.Events) == 0 {
		t.Fatalf("%s: no events", payload)
	}
	return res.Events
}

// located is a Kubernetes object and the file it is in.
type located struct {
	file string
	obj  object
}

type kubeObjects struct {
	configMaps, secrets, deployments, services []located
}

func kube(t *testing.T) *kubeObjects {
	t.Helper()
	k := &kubeObjects{}
	for f, objs := range manifests(t) {
		for _, o := range objs {
			l := located{f, o}
			switch o.Kind {
			case "ConfigMap":
				k.configMaps = append(k.configMaps, l)
			case "Secret":
				k.secrets = append(k.secrets, l)
			case "Deployment", "StatefulSet":
				k.deployments = append(k.deployments, l)
			case "Service":
				k.services = append(k.services, l)
			}
		}
	}
	return k
}

func (k *kubeObjects) find(t *testing.T, list []located, kind, name string) object {
	t.Helper()
	for _, l := range list {
		if l.obj.Metadata.Name == name {
			return l.obj
		}
	}
	t.Fatalf("no %s named %q in examples/kubernetes", kind, name)
	return object{}
}

// The parts of a Deployment these tests read.
type (
	workloadSpec struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	}
	podSpec struct {
		TerminationGracePeriodSeconds *int64      `yaml:"terminationGracePeriodSeconds"`
		InitContainers                []container `yaml:"initContainers"`
		Containers                    []container `yaml:"containers"`
		Volumes                       []volume    `yaml:"volumes"`
	}
	container struct {
		Name          string   `yaml:"name"`
		Image         string   `yaml:"image"`
		Args          []string `yaml:"args"`
		RestartPolicy string   `yaml:"restartPolicy"`
		Ports         []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		Env            []envVar `yaml:"env"`
		StartupProbe   *probe   `yaml:"startupProbe"`
		LivenessProbe  *probe   `yaml:"livenessProbe"`
		ReadinessProbe *probe   `yaml:"readinessProbe"`
		Resources      struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		SecurityContext *struct {
			RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
			RunAsUser                *int64 `yaml:"runAsUser"`
			ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
			AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
			Capabilities             struct {
				Drop []string `yaml:"drop"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"volumeMounts"`
	}
	envVar struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	probe struct {
		HTTPGet *struct {
			Path string      `yaml:"path"`
			Port intOrString `yaml:"port"`
		} `yaml:"httpGet"`
	}
	volume struct {
		Name     string `yaml:"name"`
		EmptyDir *struct {
			SizeLimit string `yaml:"sizeLimit"`
		} `yaml:"emptyDir"`
		PersistentVolumeClaim *struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
		ConfigMap *keyToPaths `yaml:"configMap"`
		Secret    *struct {
			SecretName string      `yaml:"secretName"`
			Items      []keyToPath `yaml:"items"`
		} `yaml:"secret"`
		Projected *struct {
			Sources []struct {
				ConfigMap *keyToPaths `yaml:"configMap"`
				Secret    *keyToPaths `yaml:"secret"`
			} `yaml:"sources"`
		} `yaml:"projected"`
	}
	keyToPaths struct {
		Name  string      `yaml:"name"`
		Items []keyToPath `yaml:"items"`
	}
	keyToPath struct {
		Key  string `yaml:"key"`
		Path string `yaml:"path"`
	}
	serviceSpec struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string      `yaml:"name"`
			Port       int         `yaml:"port"`
			TargetPort intOrString `yaml:"targetPort"`
		} `yaml:"ports"`
	}
)

// intOrString is a port given by number or by name.
type intOrString string

func (s *intOrString) UnmarshalYAML(n *yaml.Node) error {
	*s = intOrString(n.Value)
	return nil
}

// workload returns the one Deployment (or StatefulSet) and its auditpipe
// container.
func (k *kubeObjects) workload(t *testing.T) (workloadSpec, container) {
	t.Helper()
	if len(k.deployments) != 1 {
		t.Fatalf("want one Deployment or StatefulSet in examples/kubernetes, found %d", len(k.deployments))
	}
	var w workloadSpec
	if err := k.deployments[0].obj.Spec.Decode(&w); err != nil {
		t.Fatalf("%s: %v", k.deployments[0].file, err)
	}
	for _, c := range w.Template.Spec.InitContainers {
		if c.Name == "auditpipe" {
			if c.RestartPolicy != "Always" {
				t.Errorf("init container auditpipe: restartPolicy %q, want Always (a native sidecar, not a one-shot init container)", c.RestartPolicy)
			}
			return w, c
		}
	}
	for _, c := range w.Template.Spec.Containers {
		if c.Name == "auditpipe" {
			return w, c
		}
	}
	t.Fatal("the workload has no container named auditpipe")
	return w, container{}
}

// volumeFile is where a file of a ConfigMap or Secret volume comes from.
type volumeFile struct{ kind, name, key string }

// volumeFiles maps the path of every file the auditpipe container sees
// in its ConfigMap and Secret volumes to the object and key it comes from.
func (k *kubeObjects) volumeFiles(t *testing.T) map[string]volumeFile {
	t.Helper()
	w, c := k.workload(t)
	files := map[string]volumeFile{}
	add := func(mount, kind, name string, items []keyToPath) {
		if len(items) == 0 {
			var keys map[string]string
			if kind == "ConfigMap" {
				keys = k.find(t, k.configMaps, kind, name).Data
			} else {
				o := k.find(t, k.secrets, kind, name)
				keys = o.StringData
			}
			for key := range keys {
				items = append(items, keyToPath{Key: key, Path: key})
			}
		}
		for _, it := range items {
			files[path.Join(mount, it.Path)] = volumeFile{kind, name, it.Key}
		}
	}
	for _, m := range c.VolumeMounts {
		for _, v := range w.Template.Spec.Volumes {
			if v.Name != m.Name {
				continue
			}
			switch {
			case v.ConfigMap != nil:
				add(m.MountPath, "ConfigMap", v.ConfigMap.Name, v.ConfigMap.Items)
			case v.Secret != nil:
				add(m.MountPath, "Secret", v.Secret.SecretName, v.Secret.Items)
			case v.Projected != nil:
				for _, s := range v.Projected.Sources {
					if s.ConfigMap != nil {
						add(m.MountPath, "ConfigMap", s.ConfigMap.Name, s.ConfigMap.Items)
					}
					if s.Secret != nil {
						add(m.MountPath, "Secret", s.Secret.Name, s.Secret.Items)
					}
				}
			}
		}
	}
	return files
}

// mountedSecrets maps the path of every Secret file the auditpipe
// container sees to its value in secret.yaml.
func (k *kubeObjects) mountedSecrets(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for p, f := range k.volumeFiles(t) {
		if f.kind != "Secret" {
			continue
		}
		v, ok := k.find(t, k.secrets, "Secret", f.name).StringData[f.key]
		if !ok {
			t.Fatalf("the pod mounts key %q of Secret %s at %s, but secret.yaml has no such key", f.key, f.name, p)
		}
		out[p] = v
	}
	return out
}

// podConfig loads the configuration the auditpipe container is started
// with, through the pod's volumes.
func (k *kubeObjects) podConfig(t *testing.T, c container) *config.Config {
	t.Helper()
	i := slices.Index(c.Args, "--config")
	if len(c.Args) < 3 || c.Args[0] != "sidecar" || i < 0 || i+1 >= len(c.Args) {
		t.Fatalf("auditpipe container args %q: want sidecar --config FILE", c.Args)
	}
	cfgPath := c.Args[i+1]
	f, ok := k.volumeFiles(t)[cfgPath]
	if !ok || f.kind != "ConfigMap" {
		t.Fatalf("--config %s is not a file of a mounted ConfigMap", cfgPath)
	}
	text, ok := k.find(t, k.configMaps, "ConfigMap", f.name).Data[f.key]
	if !ok {
		t.Fatalf("--config %s: ConfigMap %s has no key %q", cfgPath, f.name, f.key)
	}
	sc := sidecarConfig{name: cfgPath, text: text, files: k.mountedSecrets(t)}
	for _, m := range fileRefRE.FindAllStringSubmatch(text, -1) {
		if _, ok := sc.files[m[1]]; !ok {
			t.Errorf("the configuration reads ${file:%s}, which no Secret volume of the pod provides", m[1])
		}
	}
	return sc.load(t)
}

func TestKubernetesDeployment(t *testing.T) {
	k := kube(t)
	w, c := k.workload(t)
	cfg := k.podConfig(t, c)
	pod := w.Template.Spec

	for key, want := range w.Selector.MatchLabels {
		if w.Template.Metadata.Labels[key] != want {
			t.Errorf("selector label %s=%s is not on the pod template", key, want)
		}
	}

	_, port, err := net.SplitHostPort(cfg.Server.Listen)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Ports) != 1 || strconv.Itoa(c.Ports[0].ContainerPort) != port {
		t.Fatalf("auditpipe container ports %+v: want one, the configuration's server.listen port %s", c.Ports, port)
	}
	cport := c.Ports[0]
	samePort := func(p intOrString) bool {
		return string(p) == cport.Name || string(p) == strconv.Itoa(cport.ContainerPort)
	}
	for _, p := range []struct {
		name, path string
		probe      *probe
	}{
		{"startupProbe", "/healthz", c.StartupProbe},
		{"livenessProbe", "/healthz", c.LivenessProbe},
		{"readinessProbe", "/readyz", c.ReadinessProbe},
	} {
		switch {
		case p.probe == nil || p.probe.HTTPGet == nil:
			t.Errorf("%s: want an httpGet probe", p.name)
		case p.probe.HTTPGet.Path != p.path || !samePort(p.probe.HTTPGet.Port):
			t.Errorf("%s: GET %s on port %s, want %s on the container's port", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port, p.path)
		}
	}

	fieldRefs := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			fieldRefs[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	for name, field := range map[string]string{"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace", "NODE_NAME": "spec.nodeName"} {
		if fieldRefs[name] != field {
			t.Errorf("env %s: want the downward API's %s, got %q", name, field, fieldRefs[name])
		}
	}

	if got := c.Resources.Limits["memory"]; got != "256Mi" {
		t.Errorf("auditpipe memory limit %q, want 256Mi", got)
	}
	if c.Resources.Requests["memory"] == "" || c.Resources.Requests["cpu"] == "" {
		t.Errorf("auditpipe resource requests %v: want cpu and memory", c.Resources.Requests)
	}

	for _, ct := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		sc := ct.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("container %s: no securityContext", ct.Name)
		case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot,
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem,
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation,
			!slices.Equal(sc.Capabilities.Drop, []string{"ALL"}):
			t.Errorf("container %s: want runAsNonRoot, readOnlyRootFilesystem, allowPrivilegeEscalation false and capabilities drop [ALL]", ct.Name)
		}
		for _, e := range ct.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				r := e.ValueFrom.SecretKeyRef
				if _, ok := k.find(t, k.secrets, "Secret", r.Name).StringData[r.Key]; !ok {
					t.Errorf("container %s: env %s reads key %q of Secret %s, which secret.yaml lacks", ct.Name, e.Name, r.Key, r.Name)
				}
			}
		}
	}

	// The queue and the dead letters are under data_dir, which must be a
	// volume: the root file system is read-only. An emptyDir needs a size
	// limit above queue.max_bytes, or a full queue gets the pod evicted
	// instead of answering 503.
	var dataVolume *volume
	for _, m := range c.VolumeMounts {
		if m.MountPath == cfg.DataDir {
			for i := range pod.Volumes {
				if pod.Volumes[i].Name == m.Name {
					dataVolume = &pod.Volumes[i]
				}
			}
			if m.ReadOnly {
				t.Errorf("the data_dir volume is mounted read-only")
			}
		}
	}
	switch {
	case dataVolume == nil:
		t.Errorf("data_dir %s is not a volume mount of the auditpipe container", cfg.DataDir)
	case dataVolume.EmptyDir != nil:
		limit, err := quantity(dataVolume.EmptyDir.SizeLimit)
		if err != nil {
			t.Errorf("emptyDir %s: sizeLimit: %v", dataVolume.Name, err)
		} else if limit <= cfg.Queue.MaxBytes {
			t.Errorf("emptyDir %s: sizeLimit %s is not above queue.max_bytes %d", dataVolume.Name, dataVolume.EmptyDir.SizeLimit, cfg.Queue.MaxBytes)
		}
	case dataVolume.PersistentVolumeClaim == nil:
		t.Errorf("data_dir volume %s is neither an emptyDir nor a PersistentVolumeClaim", dataVolume.Name)
	}

	// Kubernetes kills the pod terminationGracePeriodSeconds after
	// SIGTERM; the sidecar must be done before.
	if g := pod.TerminationGracePeriodSeconds; g == nil || float64(*g) <= cfg.Server.ShutdownGrace.Seconds() {
		t.Errorf("terminationGracePeriodSeconds must exceed server.shutdown_grace (%s)", cfg.Server.ShutdownGrace)
	}

	if len(k.services) == 0 {
		t.Fatal("no Service in examples/kubernetes")
	}
	for _, l := range k.services {
		var s serviceSpec
		if err := l.obj.Spec.Decode(&s); err != nil {
			t.Fatalf("%s: %v", l.file, err)
		}
		for key, want := range s.Selector {
			if w.Template.Metadata.Labels[key] != want {
				t.Errorf("Service %s selects %s=%s, which the pod template lacks", l.obj.Metadata.Name, key, want)
			}
		}
		if len(s.Ports) == 0 || !samePort(s.Ports[0].TargetPort) {
			t.Errorf("Service %s: targetPort must be the auditpipe container's port %d", l.obj.Metadata.Name, cport.ContainerPort)
		}
	}
}

// quantity parses the Kubernetes quantities the examples use (a number
// with an optional binary or decimal suffix).
func quantity(s string) (int64, error) {
	mult := map[string]int64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
	for suf, m := range mult {
		if n, ok := strings.CutSuffix(s, suf); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			return v * m, err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// dockerfile is what the tests read from the Dockerfile.
type dockerfile struct {
	from            []string
	user, expose    string
	entrypoint, cmd []string
	volumes         []string
	text            string
}

func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	text := string(readFile(t, filepath.Join(repoRoot, "Dockerfile")))
	d := dockerfile{text: text}
	jsonList := func(s string) []string {
		var l []string
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("Dockerfile: %q is not a JSON list (use the exec form): %v", s, err)
		}
		return l
	}
	for _, line := range strings.Split(text, "\n") {
		instr, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
		arg = strings.TrimSpace(arg)
		switch instr {
		case "FROM":
			f := strings.Fields(arg)
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				f = f[1:]
			}
			d.from = append(d.from, f[0])
		case "USER":
			d.user = arg
		case "EXPOSE":
			d.expose = arg
		case "ENTRYPOINT":
			d.entrypoint = jsonList(arg)
		case "CMD":
			d.cmd = jsonList(arg)
		case "VOLUME":
			d.volumes = jsonList(arg)
		}
	}
	return d
}

// TestDockerfile checks the image against what the Kubernetes example
// expects of it.
func TestDockerfile(t *testing.T) {
	d := parseDockerfile(t)
	if len(d.from) < 2 || !strings.HasPrefix(d.from[0], "golang:1.26") || d.from[len(d.from)-1] != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("FROM %v: want a golang:1.26 builder and gcr.io/distroless/static-debian12:nonroot", d.from)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w -X main.version=${VERSION}"`, "./cmd/auditpipe"} {
		if !strings.Contains(d.text, want) {
			t.Errorf("the build step lacks %s", want)
		}
	}
	// -X sets main.version only if the variable exists.
	if !regexp.MustCompile(`(?m)^var version = ""`).Match(readFile(t, filepath.Join(repoRoot, "cmd/auditpipe/version.go"))) {
		t.Error(`cmd/auditpipe has no "var version" for -X main.version`)
	}
	if !slices.Equal(d.entrypoint, []string{"/auditpipe"}) {
		t.Errorf("ENTRYPOINT %q, want [/auditpipe]", d.entrypoint)
	}

	k := kube(t)
	_, c := k.workload(t)
	cfg := k.podConfig(t, c)
	if !slices.Equal(d.cmd, c.Args) {
		t.Errorf("CMD %q and the Deployment's args %q differ: the image and the manifest disagree on where the config is", d.cmd, c.Args)
	}
	if d.expose != strconv.Itoa(c.Ports[0].ContainerPort) {
		t.Errorf("EXPOSE %s, but the container port is %d", d.expose, c.Ports[0].ContainerPort)
	}
	if uid, _, _ := strings.Cut(d.user, ":"); uid != "65532" || c.SecurityContext == nil || c.SecurityContext.RunAsUser == nil || *c.SecurityContext.RunAsUser != 65532 {
		t.Errorf("USER %s: want 65532 (distroless' nonroot), as the Deployment's runAsUser", d.user)
	}
	if !slices.Contains(d.volumes, cfg.DataDir) {
		t.Errorf("VOLUME %q does not hold the data_dir %s", d.volumes, cfg.DataDir)
	}

	ignore := strings.Fields(string(readFile(t, filepath.Join(repoRoot, ".dockerignore"))))
	for _, want := range []string{".git", "build", "data"} {
		if !slices.Contains(ignore, want) && !slices.Contains(ignore, want+"/") {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}

// amConfig is the part of alertmanager.yml the tests read.
type amConfig struct {
	Route struct {
		Routes []struct {
			Matchers       []string `yaml:"matchers"`
			Receiver       string   `yaml:"receiver"`
			GroupBy        []string `yaml:"group_by"`
			RepeatInterval string   `yaml:"repeat_interval"`
			Continue       bool     `yaml:"continue"`
		} `yaml:"routes"`
	} `yaml:"route"`
	Receivers []struct {
		Name           string `yaml:"name"`
		WebhookConfigs []struct {
			URL          string `yaml:"url"`
			SendResolved *bool  `yaml:"send_resolved"`
			MaxAlerts    *int   `yaml:"max_alerts"`
			HTTPConfig   struct {
				BasicAuth *struct {
					Username     string `yaml:"username"`
					PasswordFile string `yaml:"password_file"`
				} `yaml:"basic_auth"`
			} `yaml:"http_config"`
		} `yaml:"webhook_configs"`
	} `yaml:"receivers"`
}

// TestAlertmanagerConfig checks that alertmanager.yml sends audit alerts,
// once each and all of them, to the Kubernetes example's sidecar with the
// credentials it expects; with amtool installed, also that Alertmanager
// accepts the file.
func TestAlertmanagerConfig(t *testing.T) {
	const file = "alertmanager/alertmanager.yml"
	var am amConfig
	if err := yaml.Unmarshal(readFile(t, file), &am); err != nil {
		t.Fatal(err)
	}
	var receiver string
	for _, r := range am.Route.Routes {
		if slices.Contains(r.Matchers, `alertname="audit"`) {
			receiver = r.Receiver
			if !slices.Equal(r.GroupBy, []string{"..."}) || r.Continue {
				t.Errorf("the audit route: want group_by ['...'] (each alert notified once) and continue false")
			}
		}
	}
	if receiver == "" {
		t.Fatal(`no route with matchers ['alertname="audit"']`)
	}
	var found bool
	for _, r := range am.Receivers {
		if r.Name != receiver {
			continue
		}
		found = true
		if len(r.WebhookConfigs) != 1 {
			t.Fatalf("receiver %s: want one webhook config", receiver)
		}
		wc := r.WebhookConfigs[0]
		if wc.SendResolved == nil || *wc.SendResolved {
			t.Error("send_resolved: want an explicit false (resolved alerts are not new events)")
		}
		if wc.MaxAlerts == nil || *wc.MaxAlerts != 0 {
			t.Error("max_alerts: want an explicit 0 (a limit truncates alerts away)")
		}
		u, err := url.Parse(wc.URL)
		if err != nil {
			t.Fatal(err)
		}
		source := strings.TrimPrefix(u.Path, "/v1/sources/")
		if source == u.Path {
			t.Fatalf("url %s: want a sidecar source, /v1/sources/NAME", wc.URL)
		}

		// The URL is the Kubernetes example's Service, and the sidecar
		// behind it has that source with the same basic-auth user.
		k := kube(t)
		svc := k.services[0]
		var spec serviceSpec
		if err := svc.obj.Spec.Decode(&spec); err != nil {
			t.Fatal(err)
		}
		host, _, _ := strings.Cut(u.Hostname(), ".")
		if host != svc.obj.Metadata.Name || u.Port() != strconv.Itoa(spec.Ports[0].Port) {
			t.Errorf("url %s: want the Service %s on port %d", wc.URL, svc.obj.Metadata.Name, spec.Ports[0].Port)
		}
		_, c := k.workload(t)
		cfg := k.podConfig(t, c)
		i := slices.IndexFunc(cfg.Sources, func(s config.Source) bool { return s.Name == source })
		if i < 0 {
			t.Fatalf("url %s: the Kubernetes example's sidecar has no source %q", wc.URL, source)
		}
		src := cfg.Sources[i]
		if src.Format != "alertmanager" {
			t.Errorf("source %s has format %q, want alertmanager", source, src.Format)
		}
		ba := wc.HTTPConfig.BasicAuth
		if ba == nil || src.Auth.Basic == nil || ba.Username != src.Auth.Basic.Username || ba.PasswordFile == "" {
			t.Errorf("http_config.basic_auth must send the user of the sidecar source's auth.basic, with a password_file")
		}
	}
	if !found {
		t.Fatalf("no receiver %q", receiver)
	}

	t.Run("amtool check-config", func(t *testing.T) {
		amtool, err := exec.LookPath("amtool")
		if err != nil {
			t.Skip("amtool not installed (Debian's prometheus-alertmanager); the file's structure is checked above")
		}
		out, err := exec.Command(amtool, "check-config", file).CombinedOutput()
		if err != nil {
			t.Fatalf("amtool check-config %s: %v\n%s", file, err, out)
		}
	})
}

// TestDocumentedPathsExist checks that the files the examples' READMEs and
// comments point at exist: seed payloads in curl commands, the other
// examples, relative links.
func TestDocumentedPathsExist(t *testing.T) {
	repoPath := regexp.MustCompile(`examples/[A-Za-z0-9_./*-]*[A-Za-z0-9_*]`)
	link := regexp.MustCompile(`\]\(([^)#]+)(#[^)]*)?\)`)
	var docs []string
	for _, dir := range []string{"sidecar", "kubernetes", "alertmanager", "spacelift"} {
		files, err := filepath.Glob(filepath.Join(dir, "*"))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, files...)
	}
	for _, f := range docs {
		text := string(readFile(t, f))
		for _, p := range repoPath.FindAllString(text, -1) {
			if m, _ := filepath.Glob(filepath.Join(repoRoot, p)); len(m) == 0 {
				t.Errorf("%s mentions %s, which does not exist", f, p)
			}
		}
		if filepath.Ext(f) != ".md" {
			continue
		}
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			if strings.Contains(m[1], "://") {
				continue
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(f), m[1])); err != nil {
				t.Errorf("%s links to %s, which does not exist", f, m[1])
			}
		}
	}
}
