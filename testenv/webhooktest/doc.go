// Package webhooktest is a webhook receiver for tests and for the demo
// stack: an HTTP sink that checks what a webhook sender must get right and
// records everything it is sent.
//
// It verifies the X-Signature-256 header (sha256=<hex HMAC-SHA256 of the
// raw body>, the GitHub and Spacelift scheme) and an optional bearer token,
// answering 401 as a real receiver would; decodes the events of every body
// the webhook output can send (a single JSON event, NDJSON, a JSON array,
// structured and batched CloudEvents) with encoding/json, independently of
// the sender's hand-written encoders; and keeps both a raw view of every
// event accepted and a de-duplicated one, where a request whose
// Idempotency-Key was already accepted, or an event whose id was, adds
// nothing. GET /_inspect lists what arrived as JSON.
//
// Faults are set at run time and are safe to change while requests are in
// flight: a sequence of statuses to answer next, a Retry-After value, a delay
// before each answer, and rejection of chosen event ids. They are what the
// output's tests drive its retry and dead-letter paths with, over a real
// loopback connection rather than a mock of net/http.
package webhooktest
