package sidecar_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/integrity"
	"github.com/auditpipe/auditpipe/sidecar"
	"github.com/auditpipe/auditpipe/sidecar/config"
)

const sealedConfig = `
data_dir: ${DIR}
server: {listen: "127.0.0.1:0"}
integrity: {signing_key_file: "${DIR}/signing.pem", instance: gw-0}
sources:
  - {name: k8s, format: k8s, auth: {none: true}}
  - {name: am, format: alertmanager, auth: {none: true}}
outputs:
  - {name: all, type: file, file: {path: "${DIR}/all.ndjson"}}
  - name: denied
    type: file
    match: {outcomes: [denied]}
    file: {path: "${DIR}/denied.ndjson"}
  - {name: plain, type: file, integrity: false, file: {path: "${DIR}/plain.ndjson"}}
`

// TestIntegritySealsEachOutput: every sealed output has its own chain
// over exactly what it delivers, so a routed output (only denied events)
// verifies completely too; an output with integrity: false is left as it
// was.
func TestIntegritySealsEachOutput(t *testing.T) {
	dir := t.TempDir()
	privPEM, pubPEM, _ := integrity.GenerateKey(nil)
	os.WriteFile(filepath.Join(dir, "signing.pem"), privPEM, 0o600)
	env := func(k string) (string, bool) { return dir, k == "DIR" }
	cfg, err := config.Parse([]byte(sealedConfig), env)
	if err != nil {
		t.Fatal(err)
	}
	url, stop := serve(t, cfg, sidecar.Options{Env: env})
	defer stop()
	body := seed(t, "k8s-audit.log.ndjson")
	got := post(t, url+"/v1/sources/k8s", body, nil)
	if got.code != 200 {
		t.Fatal(got.raw)
	}
	n := int(got.body["accepted"].(float64))
	if got = post(t, url+"/v1/sources/am", seed(t, "alertmanager-audit.json"), nil); got.code != 200 {
		t.Fatal(got.raw)
	}
	n += int(got.body["accepted"].(float64))
	all := events(t, filepath.Join(dir, "all.ndjson"), n)
	plain := events(t, filepath.Join(dir, "plain.ndjson"), n)
	denied := 0
	for _, ev := range all {
		if ev.Outcome == "denied" {
			denied++
		}
	}
	if denied == 0 {
		t.Fatal("the seeds hold no denied event: the routed output is not tested")
	}
	events(t, filepath.Join(dir, "denied.ndjson"), denied)
	for _, ev := range plain {
		if ev.Integrity != nil {
			t.Fatalf("integrity: false output got %+v", ev.Integrity)
		}
	}
	pub, _ := integrity.ParsePublicKey(pubPEM)
	for name, want := range map[string]int{"all": n, "denied": denied} {
		v, _ := integrity.NewVerifier(pub)
		b, _ := os.ReadFile(filepath.Join(dir, name+".ndjson"))
		v.ReadNDJSON(bytes.NewReader(b), name)
		r := v.Report()
		if !r.OK || r.Verified != want || len(r.Streams) != 1 || !strings.HasPrefix(r.Streams[0].Stream, name+"/gw-0/") {
			var sb strings.Builder
			r.WriteText(&sb)
			t.Errorf("%s: want %d verified in one stream %s/gw-0/...:\n%s", name, want, name, sb.String())
		}
	}
}

func TestIntegrityKeyErrorsStopTheStart(t *testing.T) {
	dir := t.TempDir()
	env := func(k string) (string, bool) { return dir, k == "DIR" }
	os.WriteFile(filepath.Join(dir, "signing.pem"), []byte("not a key"), 0o600)
	cfg, err := config.Parse([]byte(sealedConfig), env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sidecar.New(t.Context(), cfg, sidecar.Options{Env: env}); err == nil || !strings.Contains(err.Error(), "integrity.signing_key_file") ||
		strings.Contains(err.Error(), "not a key") {
		t.Fatalf("error %v: want one naming integrity.signing_key_file, without the file's content", err)
	}
	if _, err := config.Parse([]byte(strings.Replace(sealedConfig, "instance: gw-0", "sign: sometimes", 1)), env); err == nil || !strings.Contains(err.Error(), "integrity.sign:") {
		t.Fatalf("error %v: want integrity.sign", err)
	}
}
