// Package flb is the Fluent Bit output plugin's engine, kept free of cgo so
// that it can be tested and fuzzed as plain Go: it reads the [OUTPUT]
// section's keys into a Config, decodes Fluent Bit's msgpack chunks
// directly (classic [timestamp, map] and v2 [[timestamp, metadata], map]
// records), runs the same transformers and outputs the sidecar uses, and
// answers each flush with the return code Fluent Bit expects (OK, RETRY or
// ERROR). plugin/main.go only wires Fluent Bit's C entry points to it.
package flb
