// Package webhook is the output that POSTs audit events to an HTTP
// endpoint: a SIEM's HTTP collector, a chat or ticketing bridge, or any
// service of one's own.
//
// It sends one event per request (JSON or a structured CloudEvent) or one
// batch per request (NDJSON, a JSON array or a CloudEvents batch), signs
// each body with X-Signature-256 as GitHub and Spacelift do, so that a
// receiver can reuse the verifier it already has, and sends an
// Idempotency-Key so that a receiver can drop the copy a retry re-sends
// after a lost answer. It makes one attempt per Write and classifies the
// outcome with outputs.ClassifyHTTP; the outputs.Deliverer around it does
// the retrying and dead-lettering.
package webhook
