// Package outputstest holds what the output packages' tests share: a
// deterministic supply of valid events shaped like the ones the built-in
// transformers produce, a dead-letter store that remembers (Letters), and
// helpers to wait for a condition, check that no goroutine leaked and find
// a free port.
package outputstest

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/auditpipe/auditpipe"
)

// Base is the time of the first event Events returns.
var Base = time.Date(2026, 11, 21, 9, 30, 0, 123456000, time.UTC)

// Events returns n valid events with distinct ids. They cycle through the
// four source types, outcomes and a few actions, and carry details, labels
// and a string that needs escaping, so encoders meet every field kind.
func Events(n int) []auditpipe.Event {
	evs := make([]auditpipe.Event, n)
	for i := range evs {
		evs[i] = Event(i)
	}
	return evs
}

var (
	types    = []string{"spacelift", "alertmanager", "app", "k8s"}
	actions  = []string{"stack.create", "audit_trail_webhook.update", "secret_set", "create pods"}
	outcomes = []auditpipe.Outcome{auditpipe.OutcomeSuccess, auditpipe.OutcomeDenied, auditpipe.OutcomeFailure, auditpipe.OutcomeSuccess}
	ops      = []auditpipe.Operation{auditpipe.OperationCreate, auditpipe.OperationUpdate, auditpipe.OperationUpdate, auditpipe.OperationCreate}
)

// Event returns the i-th event of Events.
func Event(i int) auditpipe.Event {
	k := i % len(types)
	t := Base.Add(time.Duration(i) * time.Second)
	ev := auditpipe.Event{
		SchemaVersion: auditpipe.SchemaVersion,
		ID:            auditpipe.IDFromParts("outputstest", fmt.Sprint(i)),
		Time:          t,
		ObservedTime:  t.Add(250 * time.Millisecond),
		Source:        auditpipe.Source{Type: types[k], Name: types[k] + "-main", Format: types[k]},
		Action:        actions[k],
		Operation:     ops[k],
		Category:      []string{"configuration"},
		Outcome:       outcomes[k],
		Message:       fmt.Sprintf("alice performed %s on \"stack-%d\"\t(test)", actions[k], i),
		Actor:         auditpipe.Actor{Type: auditpipe.ActorUser, ID: "alice", Name: "Alice Example", Email: "alice@example.com", Provider: "github"},
		Resource:      auditpipe.Resource{Type: "stack", ID: fmt.Sprintf("stack-%d", i), Name: fmt.Sprintf("stack-%d", i), Namespace: "team-a"},
		Tenant:        auditpipe.Tenant{Account: "acme"},
		Client:        auditpipe.Client{IP: "203.0.113.7", UserAgent: "curl/8.5.0"},
		Details:       json.RawMessage(fmt.Sprintf(`{"n":%d,"stack":{"name":"stack-%d","labels":["prod","é"]},"token":"[REDACTED]"}`, i, i)),
		Labels:        map[string]string{"cluster": "dev-1", "env": "test"},
		RawSHA256:     auditpipe.RawSHA256([]byte(fmt.Sprint(i))),
	}
	if outcomes[k] == auditpipe.OutcomeDenied {
		ev.Reason = "policy forbids it"
	}
	return ev
}

// IDs returns the ids of events, in order.
func IDs(events []auditpipe.Event) []string {
	ids := make([]string, len(events))
	for i := range events {
		ids[i] = events[i].ID
	}
	return ids
}
