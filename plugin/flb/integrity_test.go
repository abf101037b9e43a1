package flb

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/integrity"
	"github.com/auditpipe/auditpipe/outputs/dlq"
)

// TestIntegrityRetryLeavesNoFork is the case that rules out the simple
// designs: chunk A reaches the destination but its answer is a failure,
// so Fluent Bit retries it later; chunk B is flushed in between. A chain
// that advanced only on FLB_OK would give B the positions A already
// used (a fork); a chain that advanced per attempt would leave gaps. With
// reservations, A's retry is sealed exactly as before: the destination
// holds A twice (harmless duplicates) and B after it, and a restart
// continues the same stream.
func TestIntegrityRetryLeavesNoFork(t *testing.T) {
	var (
		mu       sync.Mutex
		received bytes.Buffer
		failNext atomic.Bool
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		received.Write(b)
		mu.Unlock()
		if failNext.Swap(false) {
			// Stored, but the answer says otherwise (a lost answer).
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	privPEM, pubPEM, _ := integrity.GenerateKey(nil)
	keyFile := filepath.Join(dir, "signing.pem")
	os.WriteFile(keyFile, privPEM, 0o600)
	open := func() *Instance {
		cfg, err := ParseConfig(keys("Output", "webhook", "Webhook_URL", srv.URL, "DLQ_Dir", filepath.Join(dir, "dlq"),
			"Retry_Max_Elapsed", "1ms", "Integrity_Key_File", keyFile, "Integrity_Instance", "fb-0"))
		if err != nil {
			t.Fatal(err)
		}
		in, err := New(context.Background(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	in := open()
	chunkA := appendRecord(t, nil, classic, eventTime, nil, payload(t, "alertmanager-audit.json"))
	chunkB := appendRecord(t, nil, classic, eventTime, nil, payload(t, "k8s-audit-event.json"))
	failNext.Store(true)
	if c := in.Flush(context.Background(), "a", chunkA); c != Retry {
		t.Fatalf("A with a lost answer: %v, want FLB_RETRY", c)
	}
	if c := in.Flush(context.Background(), "b", chunkB); c != OK {
		t.Fatalf("B: %v", c)
	}
	if c := in.Flush(context.Background(), "a", chunkA); c != OK {
		t.Fatalf("A again: %v", c)
	}
	in.Close(context.Background())
	in = open() // a restart continues the chain from the state file
	chunkC := appendRecord(t, nil, classic, eventTime, nil, payload(t, "teabar-event.json"))
	if c := in.Flush(context.Background(), "c", chunkC); c != OK {
		t.Fatalf("C after a restart: %v", c)
	}
	in.Close(context.Background())

	pub, _ := integrity.ParsePublicKey(pubPEM)
	v, _ := integrity.NewVerifier(pub)
	mu.Lock()
	v.ReadNDJSON(bytes.NewReader(received.Bytes()), "sink")
	mu.Unlock()
	r := v.Report()
	var sb strings.Builder
	r.WriteText(&sb)
	if !r.OK || r.ForkCount != 0 || r.GapCount != 0 || r.Duplicates != 6 || r.Verified != 8 || len(r.Streams) != 1 ||
		!strings.HasPrefix(r.Streams[0].Stream, "webhook/fb-0/") {
		t.Fatalf("want 8 events verified in one stream, A's 6 twice, no fork or gap:\n%s", sb.String())
	}
	// A's first failure kept its sealed events, once, for the case where
	// Fluent Bit drops the chunk.
	var sealed int
	dlq.Walk(filepath.Join(dir, "dlq"), func(e dlq.Entry) error {
		var ev auditpipe.Event
		if len(e.Event) > 0 && eventjson.Decode(e.Event, &ev) == nil && ev.Integrity != nil {
			sealed++
		}
		return nil
	})
	if sealed != 6 {
		t.Errorf("%d sealed events in the dead-letter store, want A's 6 (kept once)", sealed)
	}
}

func TestIntegrityKeysNameTheirErrors(t *testing.T) {
	dir := t.TempDir()
	base := []string{"Output", "file", "File_Path", filepath.Join(dir, "o"), "DLQ_Dir", dir}
	for _, c := range []struct {
		kv   []string
		want string
	}{
		{[]string{"Integrity_Key_File", "k", "Integrity_Sign", "sometimes"}, "Integrity_Sign:"},
		{[]string{"Integrity_Key_File", "k", "Integrity_Sign_Every", "many"}, "Integrity_Sign_Every:"},
		{[]string{"Integrity_Sign", "batch"}, "Integrity_Key_File:"},
	} {
		if _, err := ParseConfig(keys(append(base, c.kv...)...)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one naming %s", c.kv, err, c.want)
		}
	}
	cfg, err := ParseConfig(keys(append(base, "Integrity_Key_File", filepath.Join(dir, "missing.pem"))...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "Integrity_Key_File") {
		t.Errorf("a missing key file: %v", err)
	}
}
