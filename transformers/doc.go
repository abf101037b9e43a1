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
// Payloads are parsed once into a [Document] under configurable [Limits].
// Format packages navigate it with [Node], whose errors carry the JSON
// path, build details with the redacting canonical encoder, and finish
// each event with [Finish]. What the tree is made of is the engine's
// business (internal/jsontree; see docs/performance.md for why it is
// what it is): nothing here exposes it.
//
// Memory follows the payload's size, not its shape. One pass over the
// bytes (the prescan) checks the whole payload against the limits and the
// strict grammar before any tree is built, so a payload refused for its
// depth, a string or the members of one object ([Limits].MaxMembers) costs
// its bytes and no more. The tree is then built from the text without
// copying it (strings are views into the payload). An NDJSON stream and a
// batch sent as one JSON array are not built whole: [Document.Each] and
// [Document.Items] build one line's or one element's tree at a time, which
// the next replaces, so what a transform keeps alive is one item's tree
// plus the events made so far. Formats that need a root whole call
// [Document.EachRoot] or [Root.Parse].
//
// Errors name where, never quote what: a message holds the path (cut to
// [MaxPathLength] bytes around an ellipsis, as member names are payload
// bytes), the kind and what was expected, and at most an [Excerpt] of a
// value. The same malformed input gets the same short message at any depth
// or size.
package transformers
