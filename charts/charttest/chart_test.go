package charttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

const (
	release  = "audit"
	fullname = "audit-auditpipe"
	dataDir  = "/var/lib/auditpipe"
)

func ciValues(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("the chart's ci/ values files: %v %v", files, err)
	}
	return files
}

// TestLint runs helm lint --strict with each ci/ values file.
func TestLint(t *testing.T) {
	for _, f := range ciValues(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if out, err := runHelm(t, "lint", "--strict", chartDir, "--values", f); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// TestCIValues renders each ci/ values file, decodes every object
// strictly, checks what a gateway must have, and loads the rendered
// sidecar configuration with `auditpipe sidecar --check-config`.
func TestCIValues(t *testing.T) {
	for _, f := range ciValues(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var values struct {
				Mode string `json:"mode"`
			}
			if b, err := os.ReadFile(f); err != nil || yaml.Unmarshal(b, &values) != nil {
				t.Fatalf("%s: %v", f, err)
			}
			objs := render(t, chartDir, []string{f})
			if values.Mode == "sidecar" {
				// The ConfigMap only: the pod is the application's
				// (TestSidecarInAnApplicationChart).
				if len(objs) != 1 {
					t.Errorf("sidecar mode rendered %v, want only the ConfigMap", keys(objs))
				}
				for k, o := range objs {
					cm, ok := o.(*corev1.ConfigMap)
					if !ok {
						t.Fatalf("%s rendered in sidecar mode", k)
					}
					checkConfig(t, cm.Data["config.yaml"], nil, nil)
				}
				return
			}
			checkGateway(t, objs)
		})
	}
}

func checkGateway(t *testing.T, objs objects) {
	t.Helper()
	sts := get[appsv1.StatefulSet](t, objs, "StatefulSet", fullname)
	cm := get[corev1.ConfigMap](t, objs, "ConfigMap", fullname)
	svc := get[corev1.Service](t, objs, "Service", fullname)
	headless := get[corev1.Service](t, objs, "Service", fullname+"-headless")
	pdb := get[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget", fullname)
	pod := &sts.Spec.Template
	spec := &pod.Spec
	if len(spec.Containers) != 1 || len(spec.InitContainers) != 0 {
		t.Fatalf("want the one auditpipe container, got %d and %d init", len(spec.Containers), len(spec.InitContainers))
	}
	c := &spec.Containers[0]
	var cfg sidecarConfig
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	tlsOn := cfg.Server.TLS.CertFile != ""

	// Services: the headless one governs the StatefulSet; both select its
	// pods on the container's port.
	if sts.Spec.ServiceName != headless.Name || headless.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("serviceName %q, headless Service %q with clusterIP %q", sts.Spec.ServiceName, headless.Name, headless.Spec.ClusterIP)
	}
	for _, s := range []*corev1.Service{svc, headless} {
		if !selects(s.Spec.Selector, pod.Labels) || len(s.Spec.Ports) != 1 || s.Spec.Ports[0].TargetPort.String() != c.Ports[0].Name {
			t.Errorf("Service %s: selector %v ports %+v, pod labels %v", s.Name, s.Spec.Selector, s.Spec.Ports, pod.Labels)
		}
	}
	if !selects(sts.Spec.Selector.MatchLabels, pod.Labels) || !selects(pdb.Spec.Selector.MatchLabels, pod.Labels) {
		t.Errorf("selectors: StatefulSet %v, PDB %v; pod labels %v", sts.Spec.Selector.MatchLabels, pdb.Spec.Selector.MatchLabels, pod.Labels)
	}
	if pdb.Spec.MaxUnavailable == nil && pdb.Spec.MinAvailable == nil {
		t.Error("the PodDisruptionBudget bounds nothing")
	}

	// Security: non-root, read-only root, no capabilities, seccomp.
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault || psc.FSGroup == nil {
		t.Errorf("pod securityContext: %+v", psc)
	}
	sc := c.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container securityContext: %+v", sc)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token it has no use for")
	}
	checkProbes(t, c, tlsOn)
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources: %+v", c.Resources)
	}

	// The queue: a claim per pod, mounted where the config's data_dir is,
	// and kept for the next pod with that ordinal.
	if len(sts.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("volumeClaimTemplates: %d", len(sts.Spec.VolumeClaimTemplates))
	}
	pvc := sts.Spec.VolumeClaimTemplates[0]
	if pvc.Spec.Resources.Requests.Storage().IsZero() || !slices.Contains(pvc.Spec.AccessModes, corev1.ReadWriteOnce) {
		t.Errorf("volumeClaimTemplate: %+v", pvc.Spec)
	}
	if m := mount(c, pvc.Name); m == nil || m.MountPath != cfg.DataDir || cfg.DataDir != dataDir || m.ReadOnly {
		t.Errorf("the claim %s is mounted at %+v, data_dir is %q", pvc.Name, m, cfg.DataDir)
	}
	if r := sts.Spec.PersistentVolumeClaimRetentionPolicy; r == nil || r.WhenScaled != appsv1.RetainPersistentVolumeClaimRetentionPolicyType {
		t.Errorf("persistentVolumeClaimRetentionPolicy: %+v", r)
	}
	for _, v := range spec.Volumes {
		if v.EmptyDir != nil {
			t.Errorf("volume %s is an emptyDir: the queue would die with the pod", v.Name)
		}
	}

	// Shutdown: the drain on preStop, then shutdown_grace, within the
	// grace period.
	drain := checkPreStop(t, c, tlsOn)
	grace, err := time.ParseDuration(cfg.Server.ShutdownGrace)
	if err != nil {
		t.Fatalf("server.shutdown_grace: %v", err)
	}
	need := int64((drain + grace + 10*time.Second + time.Second - 1) / time.Second)
	if g := spec.TerminationGracePeriodSeconds; g == nil || *g < need {
		t.Errorf("terminationGracePeriodSeconds %v, want at least %d (drain %s + shutdown_grace %s + 10s)", g, need, drain, grace)
	}

	// The config rolls the pods, unless hot reload is on.
	reload := slices.Contains(c.Args, "--enable-reload")
	if sum, ok := pod.Annotations["checksum/config"]; reload == ok || (ok && sum != configHash(cm)) {
		t.Errorf("checksum/config %q (reload %v), the ConfigMap's config.yaml hashes to %s", sum, reload, configHash(cm))
	}
	checkConfig(t, cm.Data["config.yaml"], spec, c)

	if np, ok := objs["NetworkPolicy/"+fullname].(*networkingv1.NetworkPolicy); ok {
		if !selects(np.Spec.PodSelector.MatchLabels, pod.Labels) || len(np.Spec.Ingress) != 1 || np.Spec.Ingress[0].Ports[0].Port.String() != c.Ports[0].Name {
			t.Errorf("NetworkPolicy: %+v", np.Spec)
		}
		if len(np.Spec.Egress) > 0 && !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
			t.Errorf("egress rules without the Egress policy type: %+v", np.Spec.PolicyTypes)
		}
	}
	if ing, ok := objs["Ingress/"+fullname].(*networkingv1.Ingress); ok {
		for _, r := range ing.Spec.Rules {
			for _, p := range r.HTTP.Paths {
				if b := p.Backend.Service; b == nil || b.Name != svc.Name || b.Port.Name != svc.Spec.Ports[0].Name {
					t.Errorf("Ingress path %s goes to %+v, not Service %s", p.Path, b, svc.Name)
				}
			}
		}
	}
	if sm, ok := objs["ServiceMonitor/"+fullname].(*serviceMonitor); ok {
		if sm.APIVersion != "monitoring.coreos.com/v1" || !selects(sm.Spec.Selector.MatchLabels, svc.Labels) || len(sm.Spec.Endpoints) != 1 {
			t.Fatalf("ServiceMonitor: %+v", sm)
		}
		e := sm.Spec.Endpoints[0]
		if e.Port != svc.Spec.Ports[0].Name || e.Path != "/metrics" || e.Interval == "" || (e.Scheme == "https") != tlsOn || (e.TLSConfig != nil) != tlsOn {
			t.Errorf("ServiceMonitor endpoint: %+v", e)
		}
	}
}

// sidecarConfig is the part of the sidecar's config the chart owns.
type sidecarConfig struct {
	DataDir string `json:"data_dir"`
	Server  struct {
		Listen        string `json:"listen"`
		ShutdownGrace string `json:"shutdown_grace"`
		TLS           struct {
			CertFile string `json:"cert_file"`
			KeyFile  string `json:"key_file"`
		} `json:"tls"`
	} `json:"server"`
}

func checkProbes(t *testing.T, c *corev1.Container, tlsOn bool) {
	t.Helper()
	scheme := corev1.URISchemeHTTP
	if tlsOn {
		scheme = corev1.URISchemeHTTPS
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"startup", c.StartupProbe, "/healthz"}, {"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != c.Ports[0].Name || p.probe.HTTPGet.Scheme != scheme {
			t.Errorf("%s probe: %+v, want GET %s %s on port %s", p.name, p.probe, scheme, p.path, c.Ports[0].Name)
		}
	}
}

// checkPreStop checks the drain hook and returns its timeout.
func checkPreStop(t *testing.T, c *corev1.Container, tlsOn bool) time.Duration {
	t.Helper()
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Exec == nil {
		t.Fatalf("no preStop exec hook: %+v", c.Lifecycle)
	}
	cmd := c.Lifecycle.PreStop.Exec.Command
	scheme := "http"
	if tlsOn {
		scheme = "https"
	}
	url := flagValue(cmd, "--url")
	want := scheme + "://127.0.0.1:" + strconv.Itoa(int(c.Ports[0].ContainerPort))
	if len(cmd) < 2 || cmd[0] != "/auditpipe" || cmd[1] != "drain" || url != want {
		t.Errorf("preStop: %q, want /auditpipe drain --url %s", cmd, want)
	}
	if tlsOn && flagValue(cmd, "--server-name") == "" {
		t.Errorf("preStop with TLS names no certificate: %q", cmd)
	}
	d, err := time.ParseDuration(flagValue(cmd, "--timeout"))
	if err != nil || d <= 0 {
		t.Errorf("preStop --timeout: %q (%v)", flagValue(cmd, "--timeout"), err)
	}
	return d
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func mount(c *corev1.Container, volume string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].Name == volume {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

// mountedPaths are the paths under /etc/auditpipe the config names:
// ${file:...} secrets, CA and certificate files.
var mountedPaths = regexp.MustCompile(`/etc/auditpipe/[^\s"'}]+`)

// checkConfig loads the rendered config with `auditpipe sidecar
// --check-config`. With the pod, it first checks that every file the
// config names lies in a mounted volume (a listed item of it, for a
// Secret with items); the files are then made, with placeholder content,
// under a temporary root the config's paths are moved to.
func checkConfig(t *testing.T, config string, spec *corev1.PodSpec, c *corev1.Container) {
	t.Helper()
	root := t.TempDir()
	for _, p := range mountedPaths.FindAllString(config, -1) {
		if spec != nil && !inVolume(spec, c, p) {
			t.Errorf("the config names %s, which no volume of the pod provides", p)
		}
		f := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("placeholder-secret-0123456789abcdef\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	moved := strings.NewReplacer("/etc/auditpipe/", root+"/etc/auditpipe/", dataDir, root+dataDir).Replace(config)
	file := filepath.Join(root, "config.yaml")
	if err := os.WriteFile(file, []byte(moved), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(auditpipeBinary(t), "sidecar", "--check-config", "--config", file)
	cmd.Env = append(os.Environ(), "POD_NAME=audit-0", "POD_NAMESPACE=audit", "NODE_NAME=node-1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "valid") {
		t.Errorf("auditpipe sidecar --check-config: %v\n%s\nconfig:\n%s", err, out, config)
	}
}

func inVolume(spec *corev1.PodSpec, c *corev1.Container, path string) bool {
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name != m.Name {
				continue
			}
			switch {
			case v.Secret != nil && len(v.Secret.Items) > 0:
				return slices.ContainsFunc(v.Secret.Items, func(k corev1.KeyToPath) bool { return k.Path == rel })
			case v.Secret != nil, v.ConfigMap != nil:
				return !strings.Contains(rel, "/")
			}
		}
	}
	return false
}

// TestChecksumFollowsConfig: a config change changes checksum/config, so
// the pods roll; with reload.enabled there is none (the pods keep
// running) and the sidecar runs with --enable-reload.
func TestChecksumFollowsConfig(t *testing.T) {
	minimal := []string{filepath.Join(chartDir, "ci", "gateway-minimal-values.yaml")}
	pod := func(sets ...string) (*corev1.PodTemplateSpec, *corev1.ConfigMap) {
		objs := render(t, chartDir, minimal, sets...)
		return &get[appsv1.StatefulSet](t, objs, "StatefulSet", fullname).Spec.Template, get[corev1.ConfigMap](t, objs, "ConfigMap", fullname)
	}
	before, cm := pod()
	after, cm2 := pod("config.labels.team=payments")
	same, _ := pod("replicas=5")
	sum := before.Annotations["checksum/config"]
	if sum == "" || sum != configHash(cm) || after.Annotations["checksum/config"] != configHash(cm2) || sum == after.Annotations["checksum/config"] {
		t.Errorf("checksum/config %q, after a config change %q", sum, after.Annotations["checksum/config"])
	}
	if same.Annotations["checksum/config"] != sum {
		t.Errorf("checksum/config changed with the replicas, not the config")
	}
	if slices.Contains(before.Spec.Containers[0].Args, "--enable-reload") {
		t.Errorf("--enable-reload without reload.enabled: %q", before.Spec.Containers[0].Args)
	}
	reload, _ := pod("reload.enabled=true", "podAnnotations.team=payments")
	if _, ok := reload.Annotations["checksum/config"]; ok || reload.Annotations["team"] != "payments" {
		t.Errorf("annotations with reload.enabled: %v", reload.Annotations)
	}
	if !slices.Contains(reload.Spec.Containers[0].Args, "--enable-reload") {
		t.Errorf("args with reload.enabled: %q", reload.Spec.Containers[0].Args)
	}
}

// TestRenderRefuses: values the chart cannot honour fail the render with
// a message naming the key, instead of a pod that loses events.
func TestRenderRefuses(t *testing.T) {
	minimal := filepath.Join(chartDir, "ci", "gateway-minimal-values.yaml")
	for _, c := range []struct {
		sets []string
		want string
	}{
		{[]string{"terminationGracePeriodSeconds=30"}, "terminationGracePeriodSeconds: 30 is less than drain.timeout + config.server.shutdown_grace + 10s = 95s"},
		{[]string{"drain.timeout=2m", "terminationGracePeriodSeconds=120"}, "= 155s"},
		// values.schema.json catches these before the templates do.
		{[]string{"drain.timeout=soon"}, "/drain/timeout"},
		{[]string{"replica=3"}, "'replica' not allowed"},
		{[]string{"config.server.shutdown_grace=25"}, `config.server.shutdown_grace: "25" is not a duration`},
		{[]string{"config.data_dir=/data"}, "config.data_dir: set by the chart"},
		{[]string{"config.server.listen=:9090"}, "config.server.listen: set by the chart"},
		{[]string{"tls.secretName=x", "config.server.tls.cert_file=/x"}, "config.server.tls: cert_file and key_file are set by the chart"},
		{[]string{"tls.secretName=x", "config.server.tls.client_ca_file=/x"}, "config.server.tls.client_ca_file"},
		{[]string{"config.sources=null"}, "config.sources: list at least one source"},
		{[]string{"mode=daemonset"}, "/mode"},
		{[]string{"ingress.enabled=true"}, "ingress.hosts"},
		{[]string{"secrets[0].name="}, "/secrets/0/name"},
	} {
		out, err := runHelm(t, templateArgs(chartDir, []string{minimal}, c.sets)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--set %q: want an error with %q, got %v\n%.300s", c.sets, c.want, err, out)
		}
	}
	// Without drain the grace is shutdown_grace + 10s; a larger one is kept.
	objs := render(t, chartDir, []string{minimal}, "drain.enabled=false", "config.server.shutdown_grace=1m30s")
	spec := get[appsv1.StatefulSet](t, objs, "StatefulSet", fullname).Spec.Template.Spec
	if g := spec.TerminationGracePeriodSeconds; g == nil || *g != 100 || spec.Containers[0].Lifecycle != nil {
		t.Errorf("without drain: grace %v, lifecycle %+v", g, spec.Containers[0].Lifecycle)
	}
	objs = render(t, chartDir, []string{minimal}, "drain.timeout=1500ms", "config.server.shutdown_grace=0.5s", "terminationGracePeriodSeconds=600")
	if g := get[appsv1.StatefulSet](t, objs, "StatefulSet", fullname).Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g != 600 {
		t.Errorf("an explicit grace period: %v, want 600", g)
	}
	objs = render(t, chartDir, []string{minimal}, "drain.timeout=1500ms", "config.server.shutdown_grace=0.5s")
	if g := get[appsv1.StatefulSet](t, objs, "StatefulSet", fullname).Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g != 13 {
		t.Errorf("grace of 1500ms + 0.5s + 10s, each rounded up: %v, want 13", *g)
	}
}

// TestSidecarInAnApplicationChart renders testdata/app, an application
// chart with this chart as a dependency in sidecar mode, as the chart's
// README shows: a native sidecar with the drain hook, the volumes, and the
// checksum of the ConfigMap the dependency renders.
func TestSidecarInAnApplicationChart(t *testing.T) {
	app := filepath.Join(t.TempDir(), "app")
	if err := os.CopyFS(app, os.DirFS(filepath.Join("testdata", "app"))); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(app, "charts", "auditpipe"), os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	if out, err := runHelm(t, "lint", "--strict", app); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, reload := range []bool{false, true} {
		objs := render(t, app, nil, "auditpipe.reload.enabled="+strconv.FormatBool(reload))
		if len(objs) != 2 {
			t.Errorf("rendered %v, want the Deployment and the sidecar's ConfigMap", keys(objs))
		}
		dep := get[appsv1.Deployment](t, objs, "Deployment", release)
		cm := get[corev1.ConfigMap](t, objs, "ConfigMap", fullname)
		pod := &dep.Spec.Template
		spec := &pod.Spec
		if len(spec.InitContainers) != 1 || len(spec.Containers) != 1 {
			t.Fatalf("init containers %d, containers %d", len(spec.InitContainers), len(spec.Containers))
		}
		c := &spec.InitContainers[0]
		if c.Name != "auditpipe" || c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			t.Errorf("not a native sidecar: %s restartPolicy %v", c.Name, c.RestartPolicy)
		}
		checkProbes(t, c, false)
		drain := checkPreStop(t, c, false)
		if g := spec.TerminationGracePeriodSeconds; g == nil || *g != int64(15+(drain+25*time.Second+10*time.Second)/time.Second) {
			t.Errorf("terminationGracePeriodSeconds %v with a drain of %s", g, drain)
		}
		var cmVolume, data bool
		for _, v := range spec.Volumes {
			cmVolume = cmVolume || (v.ConfigMap != nil && v.ConfigMap.Name == cm.Name && mount(c, v.Name) != nil)
			data = data || (v.EmptyDir != nil && v.Name == "auditpipe-data")
		}
		if m := mount(c, "auditpipe-data"); !cmVolume || !data || m == nil || m.MountPath != dataDir {
			t.Errorf("volumes %+v, mounts %+v", spec.Volumes, c.VolumeMounts)
		}
		sum, ok := pod.Annotations["checksum/config"]
		if reload == ok || (ok && sum != configHash(cm)) || reload != slices.Contains(c.Args, "--enable-reload") {
			t.Errorf("reload %v: checksum/config %q (config.yaml hashes to %s), args %q", reload, sum, configHash(cm), c.Args)
		}
		checkConfig(t, cm.Data["config.yaml"], spec, c)
	}
}
