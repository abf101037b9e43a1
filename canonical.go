package auditpipe

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"
)

// Canonicalize returns the RFC 8785 (JCS) canonical form of a JSON value:
// members sorted by their UTF-16 code units, numbers as IEEE 754 doubles in
// their ECMAScript form, minimal string escapes, no whitespace. It is the
// reference implementation the transformers' faster tree encoder is tested
// against. Duplicate object names are an error, as JCS requires.
func Canonicalize(raw []byte) ([]byte, error) {
	v := jsontext.Value(append([]byte(nil), raw...))
	if err := v.Canonicalize(); err != nil {
		return nil, fmt.Errorf("canonicalize: %w", err)
	}
	return v, nil
}

// CanonicalJSON is the RFC 8785 encoding of the event itself, the input of
// integrity hashes and signatures.
func (e *Event) CanonicalJSON() ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	return Canonicalize(b)
}

// IDFromCanonical derives an event id from the canonical JSON of a source
// event that carries no id of its own: the lowercase hex SHA-256 of those
// bytes. Because canonical JSON erases key order, whitespace and number
// spelling, the id is the same however the event was encoded and whichever
// front door it came through.
func IDFromCanonical(canonical []byte) string {
	return hexSum(sha256.Sum256(canonical))
}

// hexSum encodes a digest with a single allocation (hex.EncodeToString
// makes two), as ids are made for every event.
func hexSum(sum [sha256.Size]byte) string {
	var buf [2 * sha256.Size]byte
	hex.Encode(buf[:], sum[:])
	return string(buf[:])
}

// NthDuplicateID tells apart identical source events inside one batch (two
// equal yoq entries are two real operations): the first keeps base, the n-th
// repeat (n >= 1) gets the hash of base and its position among equals. The
// rule depends only on the batch content, so a re-sent batch gets the same
// ids again.
func NthDuplicateID(base string, n int) string {
	if n == 0 {
		return base
	}
	h := sha256.New()
	h.Write([]byte(base))
	h.Write([]byte{'#'})
	h.Write(strconv.AppendInt(nil, int64(n), 10))
	return hex.EncodeToString(h.Sum(nil))
}

// IDFromParts derives an id from a source's own identifiers when they are
// only unique together (CloudEvents source + id). Each part is
// length-prefixed so that ("a/b", "c") and ("a", "b/c") never collide.
func IDFromParts(parts ...string) string {
	h := sha256.New()
	var n [20]byte
	for _, p := range parts {
		h.Write(strconv.AppendInt(n[:0], int64(len(p)), 10))
		h.Write([]byte{':'})
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// RawSHA256 is the forensic hash of a payload exactly as received.
func RawSHA256(raw []byte) string {
	return hexSum(sha256.Sum256(raw))
}
