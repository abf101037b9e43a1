package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"time"

	"encoding/json"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/dlq"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/integrity"
)

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "k.pem"), filepath.Join(dir, "k.pub")
	out, errb, code := runCLI(t, "", "keygen", "--private", priv, "--public", pub)
	if code != exitOK || !strings.Contains(out, "key id ed25519:") {
		t.Fatalf("keygen: %d %q %q", code, out, errb)
	}
	if fi, err := os.Stat(priv); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v %v", fi.Mode(), err)
	}
	before, _ := os.ReadFile(priv)
	_, errb, code = runCLI(t, "", "keygen", "--private", priv, "--public", filepath.Join(dir, "other.pub"))
	if code != exitFailed || !strings.Contains(errb, "refusing to overwrite") {
		t.Fatalf("second keygen: %d %q", code, errb)
	}
	if after, _ := os.ReadFile(priv); !bytes.Equal(before, after) {
		t.Fatal("the private key was overwritten")
	}
	if _, err := os.Stat(filepath.Join(dir, "other.pub")); err == nil {
		t.Error("a public key was written although the private one was refused")
	}
	if _, _, code := runCLI(t, "", "keygen", "--private", priv); code != exitUsage {
		t.Errorf("missing --public: exit %d, want %d", code, exitUsage)
	}
}

// sealedFile normalizes a seed payload, seals its events with the key
// keygen wrote and stores them as the file output would.
func sealedFile(t *testing.T, dir string, gz bool) (file, pub string) {
	t.Helper()
	privFile, pub := filepath.Join(dir, "k.pem"), filepath.Join(dir, "k.pub")
	if _, errb, code := runCLI(t, "", "keygen", "--private", privFile, "--public", pub); code != exitOK {
		t.Fatal(errb)
	}
	out, errb, code := runCLI(t, "", "normalize", "../../examples/payloads/yoq-entries.json")
	if code != exitOK {
		t.Fatal(errb)
	}
	evs := events(t, out)
	pemBytes, _ := os.ReadFile(privFile)
	key, err := integrity.ParsePrivateKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := integrity.NewSealer(integrity.SealerConfig{Stream: "file/test", Key: key})
	if _, err := s.Seal(integrity.State{}, evs); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
	}
	for i := range evs {
		line := append(eventjson.Append(nil, &evs[i]), '\n')
		if zw != nil {
			zw.Write(line)
		} else {
			w.Write(line)
		}
	}
	if zw != nil {
		zw.Close()
	}
	file = filepath.Join(dir, "events.ndjson")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return file, pub
}

func TestVerify(t *testing.T) {
	for _, gz := range []bool{false, true} {
		dir := t.TempDir()
		file, pub := sealedFile(t, dir, gz)
		out, errb, code := runCLI(t, "", "verify", "--public-key", pub, file)
		if code != exitOK || !strings.Contains(out, "Audit log verification: VERIFIED") || !strings.Contains(out, "Chain integrity:  intact") {
			t.Fatalf("gzip %v: exit %d\n%s%s", gz, code, out, errb)
		}
		data, _ := os.ReadFile(file)
		out, _, code = runCLI(t, string(data), "verify", "--json", "--public-key", pub, "-")
		var r integrity.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil || code != exitOK || !r.OK || r.Verified == 0 || r.Verified != r.Entries {
			t.Fatalf("gzip %v, --json from stdin: exit %d, %v\n%s", gz, code, err, out)
		}
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	dir := t.TempDir()
	file, pub := sealedFile(t, dir, false)
	data, _ := os.ReadFile(file)
	lines := bytes.SplitAfter(data, []byte("\n"))
	var ev auditpipe.Event
	if err := json.Unmarshal(lines[0], &ev); err != nil {
		t.Fatal(err)
	}
	ev.Message = "nothing to see here"
	lines[0] = append(eventjson.Append(nil, &ev), '\n')
	os.WriteFile(file, bytes.Join(lines, nil), 0o644)
	out, _, code := runCLI(t, "", "verify", "--public-key", pub, file)
	if code != exitFailed || !strings.Contains(out, "FAILED") || !strings.Contains(out, "Altered events (1)") || !strings.Contains(out, file+":1") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

func TestVerifyUsage(t *testing.T) {
	dir := t.TempDir()
	file, pub := sealedFile(t, dir, false)
	cases := map[string][]string{
		"no key":       {"verify", file},
		"missing key":  {"verify", "--public-key", filepath.Join(dir, "nope"), file},
		"private key":  {"verify", "--public-key", filepath.Join(dir, "k.pem"), file},
		"missing file": {"verify", "--public-key", pub, filepath.Join(dir, "nope.ndjson")},
	}
	for name, args := range cases {
		if _, errb, code := runCLI(t, "", args...); code != exitUsage || errb == "" {
			t.Errorf("%s: exit %d %q, want %d and a message", name, code, errb, exitUsage)
		}
	}
}

// TestVerifyConfigOutput reads a file output's destination as the
// sidecar's configuration names it, and takes the dead-letter store's
// sealed events as the explanation of the gaps they left.
func TestVerifyConfigOutput(t *testing.T) {
	dir := t.TempDir()
	file, pub := sealedFile(t, dir, false)
	data, _ := os.ReadFile(file)
	lines := bytes.SplitAfter(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	if len(lines) < 3 {
		t.Fatalf("%d events: too few to cut one out", len(lines))
	}
	// The second event was rejected for good: it is in the dead-letter
	// store, not in the file.
	os.WriteFile(file, bytes.Join(append(lines[:1:1], lines[2:]...), nil), 0o644)
	store, err := dlq.Open(dlq.Config{Dir: filepath.Join(dir, "dlq")})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.DeadLetter(context.Background(), []outputs.DeadLetter{{Time: time.Now(), Output: "events", Error: "mapping",
		Event: bytes.TrimSpace(lines[1])}}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	conf := filepath.Join(dir, "sidecar.yaml")
	os.WriteFile(conf, []byte(`
data_dir: `+dir+`
sources: [{name: s, format: auto, auth: {none: true}}]
outputs:
  - {name: events, type: file, file: {path: `+file+`}}
`), 0o600)
	out, errb, code := runCLI(t, "", "verify", "--public-key", pub, "--config", conf, "--output", "events")
	if code != exitOK || !strings.Contains(out, "and 1 positions explained by the dead-letter store") {
		t.Fatalf("exit %d\n%s%s", code, out, errb)
	}
	out, _, code = runCLI(t, "", "verify", "--public-key", pub, "--config", conf, "--output", "events", "--dead-letters", filepath.Join(dir, "empty"))
	if code != exitUsage {
		t.Errorf("a missing --dead-letters dir: exit %d\n%s", code, out)
	}
	os.MkdirAll(filepath.Join(dir, "empty"), 0o700)
	out, _, code = runCLI(t, "", "verify", "--public-key", pub, "--config", conf, "--output", "events", "--dead-letters", filepath.Join(dir, "empty"))
	if code != exitFailed || !strings.Contains(out, "Gaps:             1") {
		t.Errorf("without the dead letter: exit %d\n%s", code, out)
	}
	if _, errb, code := runCLI(t, "", "verify", "--public-key", pub, "--config", conf, "--output", "nope"); code != exitUsage || !strings.Contains(errb, `no output named "nope"`) {
		t.Errorf("unknown output: exit %d %s", code, errb)
	}
}
