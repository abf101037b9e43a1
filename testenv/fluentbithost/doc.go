// Package fluentbithost loads auditpipe's Fluent Bit output plugin the way
// Fluent Bit does, so that the plugin is tested through its real C ABI
// without a Fluent Bit binary (none is packaged for the Debian release the
// project builds on).
//
// host.c is a small C program following Fluent Bit's Go proxy
// (src/flb_plugin_proxy.c and src/proxy/go/go.c in Fluent Bit 2.x to 4.x):
// it dlopens the c-shared library (and never dlcloses it: a Go runtime
// cannot be unloaded, and one process must never hold two), calls
// FLBPluginRegister with a zeroed struct flb_plugin_proxy_def, FLBPluginInit
// once per configured instance with the plugin struct Fluent Bit shares
// between instances (its api->output_get_property serves the instance's
// keys case-insensitively), FLBPluginFlushCtx (or FLBPluginFlush) with
// msgpack chunks, from several pthreads at once when asked, and
// FLBPluginExitCtx (or FLBPluginExit) per instance. It prints every return
// code. Build compiles it with the system's gcc and Start drives it.
//
// The chunk builders write the record shapes Fluent Bit sends: the classic
// [timestamp, map] and the v2 [[timestamp, metadata], map] of Fluent Bit
// 2.1 and later, with EventTime (msgpack ext type 0) or integer timestamps.
package fluentbithost
