// Package jsonsyntax is the JSON grammar (RFC 8259) in small pieces, for
// the hand-written scanners that cannot afford encoding/json: the event
// decoder (eventjson) and the transformers' prescan and tree builder. One
// copy of the grammar means one place where a number, a \u escape or a
// string is judged, and one set of fuzz targets holding it to
// encoding/json.
//
// The pieces are strict where encoding/json is lenient: strings must be
// valid UTF-8 and \u escapes must not leave a surrogate unpaired, so that
// a value accepted here decodes to the same thing under any decoder.
//
// Nothing allocates. A scanner returns an offset and a [Problem]: on
// success the offset is how far the piece reached, on failure it is where
// the problem was found, so the caller can locate it in its own message.
package jsonsyntax
