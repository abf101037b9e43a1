package external

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigValidate(t *testing.T) {
	sum := strings.Repeat("0a", 32)
	tests := []struct {
		name string
		cfg  Config
		want string // "" = valid
	}{
		{"minimal", Config{Path: "/bin/plugin"}, ""},
		{"everything", Config{Path: "p", Args: []string{"-v"}, Env: map[string]string{"A": "b"}, Checksum: sum, Timeout: time.Second, MaxBatch: 5}, ""},
		{"no path", Config{}, "path: required"},
		{"short checksum", Config{Path: "p", Checksum: "abc"}, "checksum:"},
		{"non-hex checksum", Config{Path: "p", Checksum: strings.Repeat("zz", 32)}, "checksum:"},
		{"env name with =", Config{Path: "p", Env: map[string]string{"A=B": "c"}}, "env:"},
		{"empty env name", Config{Path: "p", Env: map[string]string{"": "c"}}, "env:"},
		{"handshake cookie in env", Config{Path: "p", Env: map[string]string{MagicCookieKey: "x"}}, "env: " + MagicCookieKey},
		{"go-plugin variable in env", Config{Path: "p", Env: map[string]string{"PLUGIN_MIN_PORT": "1"}}, "env: PLUGIN_MIN_PORT"},
		{"NUL in env", Config{Path: "p", Env: map[string]string{"A": "\x00"}}, "env: A"},
		{"NUL in args", Config{Path: "p", Args: []string{"\x00"}}, "args:"},
		{"negative timeout", Config{Path: "p", Timeout: -time.Second}, "timeout:"},
		{"negative max_batch", Config{Path: "p", MaxBatch: -1}, "max_batch:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
				t.Errorf("Validate() = %v, want an error starting %q", err, tt.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Path: "p"}.WithDefaults()
	if c.Timeout != DefaultTimeout || c.MaxBatch != DefaultMaxBatch || c.AutoMTLS == nil || !*c.AutoMTLS {
		t.Errorf("defaults: %+v", c)
	}
	off := false
	if c := (Config{AutoMTLS: &off, Timeout: time.Second, MaxBatch: 3}).WithDefaults(); *c.AutoMTLS || c.Timeout != time.Second || c.MaxBatch != 3 {
		t.Errorf("set values overridden: %+v", c)
	}
}

// TestConfigYAML: the keys as they sit under a sidecar source.
func TestConfigYAML(t *testing.T) {
	const doc = `
path: build/github-audit-plugin
args: [-v]
env: {GITHUB_ORG: octo-org}
checksum: 0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a
timeout: 2s
auto_mtls: false
max_batch: 50
`
	var c Config
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	if c.Path != "build/github-audit-plugin" || c.Args[0] != "-v" || c.Env["GITHUB_ORG"] != "octo-org" ||
		c.Timeout != 2*time.Second || c.AutoMTLS == nil || *c.AutoMTLS || c.MaxBatch != 50 {
		t.Errorf("decoded %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}
