package app

import (
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/transformers"
)

// yoq reads a yoq audit entry: {"recorded_at": <unix seconds>, "actor":
// "...", "action": "secret_set", "target": "..." or null, "outcome":
// "ok"|"failed"}. Members yoq may add later go to details.
func yoq(n transformers.Node, inCE bool) (decoded, *transformers.Error) {
	d := decoded{flavor: FormatYoq}
	var r reader
	d.ev.Time = r.time(n.Get("recorded_at"), time.Second, !inCE)
	d.ev.Action = r.str(n.Get("action"), !inCE)
	d.who = r.str(n.Get("actor"), false)
	d.ev.Resource.Name = r.text(n.Get("target"))
	outcome := r.str(n.Get("outcome"), false)
	if r.err != nil {
		return d, r.err
	}
	d.ev.Actor = YoqActor(d.who)
	d.ev.Outcome = YoqOutcome(outcome)
	unmapped(n, &d.details, "recorded_at", "actor", "action", "target", "outcome")
	return d, nil
}

// YoqActor maps yoq's coarse actor. The api and join tokens are tokens;
// local is the CLI on the node itself (system); unauthenticated is nobody
// known (unknown, id "unauthenticated"); the column is free text, so any
// other value is taken for a named user; no actor is unknown.
func YoqActor(s string) auditpipe.Actor {
	switch s {
	case "":
		return auditpipe.Actor{Type: auditpipe.ActorUnknown}
	case "api-token", "join-token":
		return auditpipe.Actor{Type: auditpipe.ActorToken, ID: s}
	case "local":
		return auditpipe.Actor{Type: auditpipe.ActorSystem, ID: s}
	case "unauthenticated":
		return auditpipe.Actor{Type: auditpipe.ActorUnknown, ID: s}
	}
	return auditpipe.Actor{Type: auditpipe.ActorUser, ID: s, Name: s}
}

// YoqOutcome maps yoq's outcome: ok is success, failed is failure,
// anything else (or none) unknown.
func YoqOutcome(s string) auditpipe.Outcome {
	switch s {
	case "ok":
		return auditpipe.OutcomeSuccess
	case "failed":
		return auditpipe.OutcomeFailure
	}
	return auditpipe.OutcomeUnknown
}
