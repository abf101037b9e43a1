// Command plugin is auditpipe's Fluent Bit output plugin, built with
// `go build -buildmode=c-shared -o build/out_auditpipe.so ./plugin` and
// named "auditpipe" in Fluent Bit configurations. It only holds the
// Fluent Bit glue (the exported FLBPlugin* entry points and the table of
// instances); the work happens in plugin/flb.
package main
