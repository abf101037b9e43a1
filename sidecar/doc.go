// Package sidecar is auditpipe's standalone form: an HTTP receiver with
// named, authenticated sources, a durable on-disk queue, and one delivery
// loop per output.
//
// A request goes through four steps (serveSource): admitted (shutdown,
// rate limit, Content-Type, size, in-flight budget, credentials),
// transformed and labelled by the ingest stage it shares with the Fluent
// Bit plugin (internal/ingest), persisted, and answered: its events are
// appended to the queue (sidecar/queue), which fsyncs them, before the
// sender gets its 2xx. Each output then reads the queue through its own
// cursor, in batches, and acknowledges only what it delivered or
// dead-lettered, so a slow output never holds back another and a restart
// resumes where each left off: delivery is at least once, and the
// deterministic event ids make it effectively once wherever the destination
// dedupes.
//
// The answers follow what senders do with them: 400 for a payload that
// will never be accepted (and it is kept in the dead-letter store), 401,
// 413 and 415, and 503 with Retry-After for everything transient (a full
// queue, a rate limit, shutdown) — never 429 or another 4xx, because
// Alertmanager retries only 5xx and drops the rest.
//
// The configuration can be reloaded without a restart (Reload: SIGHUP,
// or POST /-/reload when enabled). The sources and outputs of one loaded
// configuration form a generation, immutable once published: a request
// takes the current one with an atomic load and a reference count, and
// finishes on it whatever reloads happen meanwhile. A reload builds the
// whole next generation first (keeping unchanged sources and outputs as
// they are), so a bad file changes nothing; then it moves the output
// loops over (a changed output keeps its queue cursor and chain head), swaps
// the generation, restarts the loops of changed pull sources (runner)
// and, once the old generation's last request is done, closes the
// transformers no longer used.
package sidecar
