// Package flb is the Fluent Bit output plugin's engine, kept free of cgo so
// that it can be tested and fuzzed as plain Go: it reads the [OUTPUT]
// section's keys into a Config, decodes Fluent Bit's msgpack chunks
// directly (classic [timestamp, map] and v2 [[timestamp, metadata], map]
// records), runs each record through the ingest stage the sidecar uses
// too (internal/ingest: transformer, labels, errors, skips), delivers to
// the same outputs, and answers each flush with the return code Fluent Bit
// expects (OK, RETRY or ERROR). plugin/main.go only wires Fluent Bit's C
// entry points to it.
//
// With Format external the transformer is a plugin process
// (transformers/external), one per Instance, shared by Fluent Bit's
// workers: a chunk's records go to it in one TransformBatch, whose cost
// is per call, and each result goes through the stage as Ingest's would
// (Stage.Take). A plugin that is unavailable fails the flush as a whole
// (Retry); Close ends the process.
package flb
