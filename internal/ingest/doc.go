// Package ingest is the one stage every front door runs a payload
// through, between admitting it and persisting what came of it: the
// sidecar's HTTP sources (and its pull sources' labels) and the Fluent Bit
// plugin's records.
//
// A [Stage] owns what must be the same whichever door a payload came in
// by: it runs the transformer, tells a transformer that could not run
// (retry later: nothing about the payload is wrong) from a malformed
// payload, folds the errors into one line ("first (and N more errors)"),
// refuses a payload that made nothing at all (a sender's bug more often
// than not), counts the items skipped on purpose by reason, and labels the
// events: the configured labels, then those of where the payload came
// from (an [Origin]: a Fluent Bit tag, a record's metadata), then the
// transformer's own, which win. It is shared so that a new label source,
// skip reason or integrity check is written once and both doors get it.
//
// What it does not own is what the doors do differently on purpose: how a
// payload is admitted (auth, limits, content type; a msgpack record's
// shape), where events go (the sidecar's queue, the plugin's outputs),
// and how a refusal is answered and kept (an HTTP answer listing each bad
// item and the whole body dead-lettered, against one dead letter per bad
// record). A [Stage] keeps no state between payloads and is safe for
// concurrent use; the caller owns the [transformers.Result] its events go
// into, so a batching door reuses one allocation for a whole chunk.
package ingest
