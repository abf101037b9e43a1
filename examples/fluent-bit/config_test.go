// Package fluentbit_test checks the example Fluent Bit configurations: they
// parse, they hold what the README promises, and every auditpipe key they
// use is one the plugin documents.
package fluentbit_test

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type section struct {
	name string
	keys map[string]string // lower-cased keys
}

// parseClassic is a small parser of Fluent Bit's classic format: [SECTION]
// headers, indented "Key Value" lines, # comments.
func parseClassic(t *testing.T, path string) []section {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []section
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			out = append(out, section{name: strings.ToUpper(line[1 : len(line)-1]), keys: map[string]string{}})
		default:
			if len(out) == 0 {
				t.Fatalf("%s:%d: key outside a section", path, n)
			}
			k, v, ok := strings.Cut(line, " ")
			if !ok || strings.TrimSpace(v) == "" {
				t.Fatalf("%s:%d: %q is not 'Key Value'", path, n, line)
			}
			if !strings.HasPrefix(sc.Text(), " ") && !strings.HasPrefix(sc.Text(), "\t") {
				t.Fatalf("%s:%d: keys are indented", path, n)
			}
			out[len(out)-1].keys[strings.ToLower(k)] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Fluent Bit's own keys of an [OUTPUT], not the plugin's.
var fluentBitKeys = map[string]bool{"name": true, "match": true, "match_regex": true, "retry_limit": true,
	"workers": true, "alias": true, "log_level": true, "storage.total_limit_size": true, "tls": true}

var outputTypes = map[string]bool{"kafka": true, "elasticsearch": true, "s3": true, "webhook": true, "file": true, "stdout": true}

// pluginKeys reads the key table of plugin/README.md (lines starting with
// "| `Key`"), lower-cased; <Output>_<Key> keys are matched by prefix.
func pluginKeys(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../../plugin/README.md")
	if err != nil {
		t.Fatalf("plugin/README.md, which documents the keys: %v", err)
	}
	keys := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\|\\s*`([A-Za-z0-9_.<>]+)`").FindAllStringSubmatch(string(b), -1) {
		keys[strings.ToLower(m[1])] = true
	}
	if len(keys) == 0 {
		t.Fatal("plugin/README.md has no key table")
	}
	return keys
}

func checkKeys(t *testing.T, where string, out map[string]string, known map[string]bool) {
	t.Helper()
	for k := range out {
		if fluentBitKeys[k] || known[k] {
			continue
		}
		// <Output>_<Key>: documented per output in the plugin README.
		if prefix, _, ok := strings.Cut(k, "_"); ok && outputTypes[prefix] && (known[prefix+"_<key>"] || known["<output>_<key>"]) {
			continue
		}
		t.Errorf("%s: key %q is not documented by the plugin", where, k)
	}
}

func auditpipeOutputs(t *testing.T, secs []section, where string) []map[string]string {
	t.Helper()
	var outs []map[string]string
	for _, s := range secs {
		if s.name == "OUTPUT" && strings.EqualFold(s.keys["name"], "auditpipe") {
			outs = append(outs, s.keys)
		}
	}
	if len(outs) != 2 {
		t.Fatalf("%s: %d auditpipe outputs, want 2 (kafka and file)", where, len(outs))
	}
	return outs
}

func checkPipeline(t *testing.T, where string, inputs []map[string]string, outs []map[string]string, service map[string]string) {
	t.Helper()
	names := map[string]bool{}
	for _, in := range inputs {
		names[strings.ToLower(in["name"])] = true
		if in["storage.type"] != "filesystem" {
			t.Errorf("%s: input %s without storage.type filesystem", where, in["name"])
		}
	}
	if !names["http"] || !names["tail"] {
		t.Errorf("%s: inputs %v, want http and tail", where, names)
	}
	if service["storage.path"] == "" {
		t.Errorf("%s: no storage.path in the service section", where)
	}
	types := map[string]bool{}
	for _, o := range outs {
		types[strings.ToLower(o["output"])] = true
		if o["retry_limit"] != "no_limits" {
			t.Errorf("%s: output %s has Retry_Limit %q, want no_limits", where, o["output"], o["retry_limit"])
		}
		if o["dlq_dir"] == "" {
			t.Errorf("%s: output %s without DLQ_Dir", where, o["output"])
		}
	}
	if !types["kafka"] || !(types["file"] || types["elasticsearch"]) {
		t.Errorf("%s: outputs %v, want kafka and file or elasticsearch", where, types)
	}
}

func TestClassicConfig(t *testing.T) {
	secs := parseClassic(t, "fluent-bit.conf")
	var inputs []map[string]string
	service := map[string]string{}
	for _, s := range secs {
		switch s.name {
		case "INPUT":
			inputs = append(inputs, s.keys)
		case "SERVICE":
			service = s.keys
		}
	}
	if service["plugins_file"] != "plugins.conf" {
		t.Errorf("Plugins_File = %q", service["plugins_file"])
	}
	plugins := parseClassic(t, "plugins.conf")
	if len(plugins) != 1 || plugins[0].name != "PLUGINS" || !strings.HasSuffix(plugins[0].keys["path"], "out_auditpipe.so") {
		t.Errorf("plugins.conf: %+v", plugins)
	}
	parseClassic(t, "parsers.conf")
	outs := auditpipeOutputs(t, secs, "fluent-bit.conf")
	checkPipeline(t, "fluent-bit.conf", inputs, outs, service)
	known := pluginKeys(t)
	for _, o := range outs {
		checkKeys(t, "fluent-bit.conf", o, known)
	}
}

func TestYAMLConfig(t *testing.T) {
	b, err := os.ReadFile("fluent-bit.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Service  map[string]any `yaml:"service"`
		Plugins  []string       `yaml:"plugins"`
		Pipeline struct {
			Inputs  []map[string]any `yaml:"inputs"`
			Outputs []map[string]any `yaml:"outputs"`
		} `yaml:"pipeline"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Plugins) != 1 || !strings.HasSuffix(doc.Plugins[0], "out_auditpipe.so") {
		t.Errorf("plugins: %v", doc.Plugins)
	}
	str := func(m map[string]any) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			if s, ok := v.(string); ok {
				out[strings.ToLower(k)] = s
			} else {
				out[strings.ToLower(k)] = strings.TrimSpace(strings.ReplaceAll(yamlScalar(t, v), "\n", ""))
			}
		}
		return out
	}
	var inputs []map[string]string
	for _, in := range doc.Pipeline.Inputs {
		inputs = append(inputs, str(in))
	}
	var secs []section
	for _, o := range doc.Pipeline.Outputs {
		secs = append(secs, section{name: "OUTPUT", keys: str(o)})
	}
	outs := auditpipeOutputs(t, secs, "fluent-bit.yaml")
	checkPipeline(t, "fluent-bit.yaml", inputs, outs, str(doc.Service))
	known := pluginKeys(t)
	for _, o := range outs {
		checkKeys(t, "fluent-bit.yaml", o, known)
	}
}

func yamlScalar(t *testing.T, v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
