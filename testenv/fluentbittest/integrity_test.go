package fluentbittest_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/integrity"
	"github.com/auditpipe/auditpipe/outputs/dlq"
	fbt "github.com/auditpipe/auditpipe/testenv/fluentbittest"
	"github.com/auditpipe/auditpipe/testenv/webhooktest"
)

// TestSealedRetryVerifies runs the plugin with Integrity_Key_File in a real
// Fluent Bit against a destination that is down, then back: every chunk
// gets FLB_RETRY and is re-sent by Fluent Bit's scheduler, and what the
// destination holds in the end verifies, with no fork and no gap, alone
// and with the dead-letter store (which keeps each failed chunk's sealed
// events once).
func TestSealedRetryVerifies(t *testing.T) {
	t.Parallel()
	e := need(t)
	privPEM, pubPEM, err := integrity.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := e.path("signing.pem")
	if err := os.WriteFile(keyFile, privPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	sink := webhooktest.NewSink(t)
	down(sink)
	port := fbt.FreePort(t)
	fb := e.start(fbt.Config{Format: fbt.Classic, Load: fbt.Flag, Service: retryService(),
		Inputs:  []fbt.Section{httpInput(port)},
		Outputs: []fbt.Section{webhookOutput(e, sink, "Integrity_Key_File", keyFile, "Integrity_Instance", "fb-test")}})
	fb.WaitCount(startup, `msg="instance started"`, 1)
	want := postSeeds(t, port, "sealed.")
	fb.WaitCount(delivery, "failed to flush chunk", 2*len(seeds))
	sink.ClearFaults()
	eventually(t, delivery, "every event at the destination once it is back", func() bool { return len(sink.RawEvents()) >= len(want) })
	fb.WaitCount(delivery, "succeeded at retry", len(seeds))
	fb.Signal(syscall.SIGTERM)
	fb.Wait(startup)

	pub, _ := integrity.ParsePublicKey(pubPEM)
	check := func(withLetters bool) {
		v, _ := integrity.NewVerifier(pub)
		for i, ev := range sink.RawEvents() {
			v.Add(&ev, integrity.Where{Source: "sink", Line: int64(i + 1)})
		}
		if withLetters {
			dlq.Walk(e.path("dlq"), func(l dlq.Entry) error {
				var ev auditpipe.Event
				if eventjson.Decode(l.Event, &ev) == nil {
					v.AddDeadLettered(&ev, integrity.Where{Source: filepath.Base(l.File), Line: int64(l.Line)})
				}
				return nil
			})
		}
		r := v.Report()
		var b strings.Builder
		r.WriteText(&b)
		if !r.OK || r.ForkCount != 0 || r.GapCount != 0 || r.Verified != len(want) || len(r.Streams) != 1 {
			t.Errorf("with dead letters %v: want %d verified in one stream, no fork or gap:\n%s", withLetters, len(want), b.String())
		}
	}
	check(false)
	check(true)
	// Each failed chunk's sealed events were kept once, however many
	// times Fluent Bit retried it.
	if n := dlqCount(t, e.path("dlq")); n != len(want) {
		t.Errorf("%d dead letters, want %d: each failed chunk's sealed events, once", n, len(want))
	}
}
