// Package auditpipe is the vocabulary every other package of auditpipe speaks:
// the common audit [Event] (schema_version "1"), its validation, its canonical
// encoding (RFC 8785, JCS) and the rules that give every event a deterministic
// id. Its JSON form is written and read by package eventjson.
//
// Ids are the backbone of delivery: outputs retry, Fluent Bit re-sends whole
// chunks and the sidecar replays its queue after a crash, so the same source
// event is routinely delivered more than once. Because the id depends only on
// the source event (never on arrival time, front door or JSON formatting),
// every destination that dedupes by id (Elasticsearch `create`, S3 keys,
// webhook Idempotency-Key, Kafka compaction) sees it exactly once.
package auditpipe
