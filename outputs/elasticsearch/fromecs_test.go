package elasticsearch

import (
	"bytes"
	"testing"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/integrity"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
)

// TestFromECSRebuildsTheSealedEvent: what `auditpipe verify` reads back
// from Elasticsearch hashes to the same bytes as the event that was
// sealed, for every event the ECS tests use, dotted labels and invalid
// client IPs included.
func TestFromECSRebuildsTheSealedEvent(t *testing.T) {
	evs := append(outputstest.Events(8), edgeEvents()...)
	for i := range evs {
		ev := evs[i]
		ev.Integrity = &auditpipe.Integrity{Stream: "s", Seq: uint64(i + 1), Hash: "h"}
		ev.Labels = map[string]string{"app": "x", "app.kubernetes.io/name": "web", "": "empty"}
		back, err := FromECS(AppendECS(nil, &ev))
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		want, err1 := integrity.AppendCanonical(nil, &ev)
		got, err2 := integrity.AppendCanonical(nil, &back)
		if err1 != nil || err2 != nil || !bytes.Equal(got, want) {
			t.Errorf("event %d: rebuilt\n%s\nwant\n%s (%v %v)", i, got, want, err1, err2)
		}
		if *back.Integrity != *ev.Integrity {
			t.Errorf("event %d: integrity %+v, want %+v", i, back.Integrity, ev.Integrity)
		}
	}
}
