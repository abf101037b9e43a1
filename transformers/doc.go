// Package transformers defines the contract between auditpipe's front doors
// (sidecar, Fluent Bit plugin, CLI) and the decoders that turn one source
// format into common [auditpipe.Event]s.
//
// A transformer receives an [Input]: the raw payload bytes (HTTP body, file),
// one msgpack value (a Fluent Bit record, decoded straight into the tree, so
// the plugin never re-encodes JSON) or an already-decoded Go value, plus
// request metadata. It appends to a [Result] the caller passes (a front
// door reuses one across a batch; [Run] starts from an empty one): the
// events it made, a typed [*Error] for every item it could not map (one bad
// alert never drops the other forty-nine), and counts of items it
// deliberately skipped. A returned error means the payload as a whole was
// unusable.
//
// Payloads are parsed once into a [Document] (github.com/valyala/fastjson:
// see the README's performance section for why) under configurable [Limits].
// Format packages navigate it with [Node], whose errors carry the JSON path,
// build details with the redacting canonical encoder, and finish each event
// with [Finish].
package transformers
