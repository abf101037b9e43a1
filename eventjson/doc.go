// Package eventjson is the JSON form of an auditpipe event, written and
// read by hand: Append writes exactly what encoding/json would, and Decode
// reads it back, strict where encoding/json is lenient, both several times
// faster than reflection. The outputs write every event with Append; the
// sidecar's queue, external transformer plugins (and their SDK) and
// anything else that passes events as JSON use the pair.
//
// The schema itself (the types, Validate, the id rules) stays in package
// auditpipe; the JSON grammar both halves rely on is internal/jsonsyntax.
package eventjson
