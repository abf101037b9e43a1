// Package external runs transformers that live in their own executables,
// so that a team can add a source format auditpipe does not ship (an
// internal application, a vendor's webhook) without forking it: they write
// one Go function, build a binary with [Serve] as its main, and point a
// source at it (format: external).
//
// The host side, [New], launches the binary through
// github.com/hashicorp/go-plugin and talks gRPC to it over a Unix socket
// (mutual TLS by default). The protocol is versioned by go-plugin's
// handshake: [ProtocolVersion] 1 is the batch protocol of
// transformers/external/proto, where one call carries up to max_batch
// payloads with their headers, source name and receive time, and returns,
// per payload, the events (in the JSON form of eventjson.Append) and
// per-item errors. The RPC cost is paid per batch, not per event.
//
// Failure semantics, which the front doors rely on:
//   - a plugin that crashes, hangs past the per-call timeout or cannot be
//     reached fails the whole call with an error wrapping [ErrUnavailable]
//     and nothing half-returned, so the sidecar answers 503 and the Fluent
//     Bit plugin returns FLB_RETRY; the host restarts the plugin with
//     backoff in the background;
//   - an event that fails Event.Validate (in the plugin's SDK or again on
//     the host) is a per-item error of kind transformers.ErrInvalidEvent,
//     dead-lettered like any other item error;
//   - a panic in the transform function fails only the payload it was
//     given, with kind [ErrPanic].
//
// Plugin binaries can be pinned by SHA-256 (checksum); the process is
// killed on Close and, on Linux, when the host dies.
package external
