package sidecar_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/auditpipe/auditpipe/testenv/hectest"
)

// TestKillWhileHECAcksPending: the sidecar sends a batch to Splunk HEC,
// which indexes it but whose acknowledgement never comes; the sidecar is
// killed with -9 while it waits. The batch was never acknowledged, so its
// cursor did not move: the restarted sidecar (with a new channel) sends it
// again, gets its ack, and everything is there, the first copies as
// duplicates, which is what Splunk does with a re-sent batch.
func TestKillWhileHECAcksPending(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	hec := hectest.New(t, hectest.Config{})
	hec.LoseAcks(1000)
	dir := t.TempDir()
	addr := freeAddr(t)
	conf := filepath.Join(dir, "sidecar.yaml")
	os.WriteFile(conf, []byte(`
data_dir: `+dir+`
server: {listen: "`+addr+`"}
log: {level: warn, format: text}
sources:
  - {name: k8s, format: k8s, auth: {none: true}}
outputs:
  - name: splunk
    type: splunk_hec
    splunk_hec: {url: "`+hec.URL()+`", token: "`+hec.Token()+`", ack_timeout: 1m, ack_poll_interval: 20ms}
`), 0o600)
	cmd, _ := runBinary(t, bin, conf, addr)
	const n = 50
	if got := post(t, "http://"+addr+"/v1/sources/k8s", k8sBatch(t, "hec", n), nil); got.code != 200 {
		t.Fatal(got.raw)
	}
	waitFor(t, "the batch indexed, its ack polled for", func() bool {
		st := hec.Stats()
		return st.Indexed >= n && st.AckPolls >= 2
	})
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	hec.LoseAcks(0)
	runBinary(t, bin, conf, addr)
	waitFor(t, "the unacknowledged batch sent again and acknowledged", func() bool {
		return hec.Stats().Duplicates >= n
	})
	if ids := hec.IDs("main"); len(ids) != n {
		t.Fatalf("%d distinct events in the index, want %d", len(ids), n)
	}
	for _, id := range hec.IDs("main") {
		if strings.TrimSpace(id) == "" {
			t.Fatal("an event without an id")
		}
	}
}
