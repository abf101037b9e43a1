package fanout_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/outputs/fanout"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
	"github.com/auditpipe/auditpipe/outputs/standard"
)

func parse(t *testing.T, src string) []fanout.OutputConfig {
	t.Helper()
	var c struct {
		Outputs []fanout.OutputConfig `yaml:"outputs"`
	}
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	return c.Outputs
}

func TestValidateNamesThePath(t *testing.T) {
	cfgs := parse(t, `
outputs:
  - name: siem
    type: elasticsearch
    elasticsearch: {}
  - name: siem
    type: kafka
    kafka: {brokers: ["k:9092"]}
    webhook: {url: "http://x"}
  - name: "bad name"
    type: carrier-pigeon
  - name: hook
    type: webhook
    retry: {jitter: 2}
    batch: {max_events: -1}
    match: {outcomes: [maybe]}
  - name: f
    type: file
`)
	err := fanout.Validate(standard.Registry(), cfgs)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"outputs[0] (siem): elasticsearch.",
		"outputs[1] (siem): webhook: set, but type is \"kafka\"",
		"outputs[1] (siem): name: \"siem\" already used by outputs[0]",
		"outputs[2] (bad name): name:",
		"outputs[2] (bad name): type: \"carrier-pigeon\" is not one of",
		"outputs[3] (hook): retry.jitter",
		"outputs[3] (hook): batch.max_events",
		"outputs[3] (hook): match[0].outcomes[0]",
		"outputs[3] (hook): webhook: required for type webhook",
		"outputs[4] (f): file: required for type file",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestEveryTypeParsesAndValidates(t *testing.T) {
	cfgs := parse(t, `
outputs:
  - {name: k, type: kafka, kafka: {brokers: ["127.0.0.1:9092"], topic: "audit.{source}"}}
  - {name: e, type: elasticsearch, elasticsearch: {urls: ["http://127.0.0.1:9200"]}}
  - {name: os, type: opensearch, opensearch: {urls: ["http://127.0.0.1:9200"], aws_sigv4: {region: eu-west-1, service: aoss}}}
  - {name: s, type: s3, s3: {bucket: b, region: us-east-1}}
  - {name: w, type: webhook, webhook: {url: "http://127.0.0.1:1/x"}}
  - {name: h, type: splunk_hec, splunk_hec: {url: "http://127.0.0.1:8088", token: t, ack: false, ack_timeout: 30s, fields: [cluster]}}
  - {name: f, type: file, file: {path: /tmp/x.ndjson}}
  - {name: o, type: stdout}
`)
	if err := fanout.Validate(standard.Registry(), cfgs); err != nil {
		t.Fatal(err)
	}
	if types := standard.Registry().Types(); len(cfgs) != len(types) {
		t.Errorf("%d entries for %d types", len(cfgs), len(types))
	}
}

func TestSetRoutesAndCountsUnmatched(t *testing.T) {
	dir := t.TempDir()
	cfgs := parse(t, `
outputs:
  - name: denied
    type: file
    match: {outcomes: [denied]}
    file: {path: `+filepath.Join(dir, "denied.ndjson")+`}
  - name: k8s-and-apps
    type: file
    match: [{source_types: [k8s]}, {source_types: [app], outcomes: [success]}]
    file: {path: `+filepath.Join(dir, "k8s.ndjson")+`}
`)
	set, err := fanout.Build(context.Background(), standard.Registry(), cfgs, fanout.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	// Events cycle spacelift/success, alertmanager/denied, app/failure,
	// k8s/success: spacelift and the failed app events match nothing.
	evs := outputstest.Events(8)
	if err := set.Deliver(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if err := set.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := set.Unmatched(); got != 4 {
		t.Errorf("unmatched = %d, want 4", got)
	}
	check := func(name string, idx ...int) {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		var want bytes.Buffer
		for _, i := range idx {
			want.Write(eventjson.Append(nil, &evs[i]))
			want.WriteByte('\n')
		}
		if !bytes.Equal(b, want.Bytes()) {
			t.Errorf("%s:\n%s\nwant\n%s", name, b, want.Bytes())
		}
	}
	check("denied.ndjson", 1, 5)
	check("k8s.ndjson", 3, 7)
	if r := set.Route("denied"); r == nil || r.Batch.MaxEvents != 500 {
		t.Errorf("Route(denied) = %+v", r)
	}
}

func TestDefaultIsStdout(t *testing.T) {
	var out bytes.Buffer
	set, err := fanout.Build(context.Background(), standard.Registry(), nil, fanout.Deps{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	evs := outputstest.Events(2)
	if err := set.Deliver(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != 2 || set.Routes[0].Name() != "stdout" {
		t.Errorf("stdout got %d lines via %q", n, set.Routes[0].Name())
	}
}

func TestBuildFailureNamesTheOutput(t *testing.T) {
	cfgs := parse(t, `
outputs:
  - {name: ok, type: stdout}
  - {name: broken, type: file, file: {path: /proc/none/x.ndjson}}
`)
	_, err := fanout.Build(context.Background(), standard.Registry(), cfgs, fanout.Deps{})
	if err == nil || !strings.Contains(err.Error(), "outputs[1] (broken)") {
		t.Errorf("err = %v", err)
	}
}
