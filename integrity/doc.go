// Package integrity is auditpipe's tamper evidence: a hash chain per
// stream over the events an output delivers, signed with Ed25519, and the
// verifier that later proves a destination's copy complete and unaltered.
//
// Each event's hash covers the event as delivered (its RFC 8785 canonical
// JSON without the integrity block), the stream, its position in the
// stream and the previous event's hash, so changing, removing, inserting
// or reordering an event breaks the chain at that point. A signature is
// over a domain-separated message of stream, position and hash: it cannot
// be replayed into another stream or position, and since the hash covers
// everything before it, one signature proves the whole chain up to it.
// That is what makes batch signing (one signature per delivered batch, as
// Certificate Transparency signs tree heads) as strong as signing every
// event, at a fraction of the cost.
//
// A Sealer is deterministic: sealing the same events from the same State
// gives the same hashes, so a batch re-sent after a retry or a crash
// shows up at the destination as a duplicate, never as a fork. Callers
// advance the State only once the batch is acknowledged, and persist it
// with the output's cursor.
//
// What it does not prove: a compromised forwarder holding the signing key
// can write a valid chain of anything, and a copy cut exactly after a
// signed event is indistinguishable from one that ended there (the
// verifier reports the unsigned tail, and the last seq it saw, so that an
// operator can compare it with the forwarder's own).
package integrity
