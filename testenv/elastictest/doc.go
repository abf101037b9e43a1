// Package elastictest is an in-process emulation of the slice of the
// Elasticsearch 8 REST API that the elasticsearch output and its tests use,
// faithful to what github.com/elastic/go-elasticsearch/v8 sees on the wire.
// No real cluster can be installed where the project's tests run, so this is
// the output's peer in tests and in the demo stack (testenv/cmd/testenv).
//
// Emulated:
//   - the X-Elastic-Product: Elasticsearch header on every response (the
//     client refuses a server without it) and GET / with an 8.x info body;
//   - POST|PUT /_bulk and /{index}/_bulk: NDJSON action/document pairs,
//     create, index and delete, per-item results in request order (201
//     created, 200 updated, 404 not_found for a missing delete, 409
//     version_conflict_engine_exception for a create of an existing _id,
//     400 document_parsing_exception for a document that is not a JSON
//     object or whose field conflicts with the index's mapping, 400
//     invalid_index_name_exception), "errors" and "took"; the pipeline and
//     include_source_on_error parameters (pipelines are stored, not run: an
//     unknown pipeline rejects the item, as Elasticsearch does);
//   - a minimal dynamic mapping per index: the first value of a field fixes
//     its kind (object, string, long, double, boolean, or date for strings
//     that look like dates, as date_detection does), a later value of
//     another kind that Elasticsearch could not coerce rejects the document,
//     and the 1000-field limit applies; mappings come first from the
//     matching index template (keyword, text, long, double, boolean, date,
//     ip, object, flattened, and objects with dynamic false or enabled
//     false, under which anything goes);
//   - index templates (PUT/GET/DELETE /_index_template/{name}, highest
//     priority wins), with the built-in "logs" template (logs-*-*,
//     data_stream, priority 100) preinstalled as in a real cluster;
//   - data streams: created by PUT /_data_stream/{name} or automatically by
//     a create into a name whose template has data_stream; only create is
//     accepted, @timestamp is required, documents live in a hidden backing
//     index .ds-{name}-{yyyy.MM.dd}-000001; GET/DELETE /_data_stream/{name};
//   - GET|POST /{target}/_count and /{target}/_search (match_all only, from
//     and size), GET /{index}/_doc/{id}, DELETE /{index}, POST _refresh (a
//     no-op: documents are visible at once), GET /_cluster/health,
//     PUT/GET/DELETE /_ingest/pipeline/{id}; targets are comma-separated
//     names and wildcard patterns over indices, aliases-free, where
//     wildcards skip hidden (dot) indices but match data streams;
//   - sorting on the metadata fields _index, _doc, _score and (with a
//     point in time) _shard_doc, and search_after with each hit's sort
//     values; points in time (POST /{target}/_pit?keep_alive=, searched
//     with "pit" through /_search, closed with DELETE /_pit): a snapshot of
//     the target's documents, with the implicit _shard_doc tiebreaker
//     (shard index << 32 | doc id), one shard per index in name order and
//     doc ids in arrival order, expiring keep_alive after its last use;
//   - basic and ApiKey authentication when configured, answering 401 with
//     a security_exception body and WWW-Authenticate, as Elasticsearch does;
//   - TLS with a generated self-signed certificate.
//
// Fault knobs, safe to change while requests are in flight: RejectNextItems
// (the next n bulk items fail with a status, 429 as
// es_rejected_execution_exception), FailNextRequests (the next n requests
// fail as a whole) and Delay (every answer waits, until the client gives up
// or the server closes).
//
// Not emulated: queries other than match_all, aggregations, sorting on
// document fields, scrolling, aliases, update actions, ingest processors,
// refresh intervals (everything is searchable at once, so tests against a
// real cluster must call _refresh), shards and replicas, versioning
// parameters, and most of the mapping system (analyzers, multi-fields,
// dynamic templates, runtime fields, ignore_above, coercion settings).
// Documents live in memory.
//
// Config.Flavor "opensearch" plays OpenSearch 2.x for the opensearch
// output: no X-Elastic-Product header, OpenSearch's root document
// (version.distribution "opensearch") and flat_object mappings; the API
// is otherwise the same. Config.SigV4 makes the server check every
// request's AWS Signature Version 4 as Amazon OpenSearch Service does:
// the signature is recomputed with aws-sdk-go-v2's signer from the method,
// path, query, host, signed headers and payload hash, and a missing,
// mis-scoped, unknown-key or wrong signature is answered 403 with AWS's
// {"message": ...}. Not emulated there: session tokens, presigned URLs,
// and the data access policies of Serverless.
package elastictest
