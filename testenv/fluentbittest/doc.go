// Package fluentbittest runs a real Fluent Bit as a child process, with
// auditpipe's output plugin loaded, so that what a user relies on (the
// plugin loaded by -e or by a plugins file, classic and YAML
// configurations, retries, filesystem storage, Workers, signals and hot
// reload) is shown in the process a user runs, not only in the C host of
// testenv/fluentbithost, which stays for what only it can do (fault
// injection at the ABI).
//
// The binary comes from FLB_BIN (.ci/run unpacks ../shared/tools/fluent-bit.xz
// into build/tools and sets it). Without FLB_BIN the tests skip, even under
// CI=true, so that `make test` passes on a machine without Fluent Bit; with
// it, nothing skips: every missing piece is a failure.
//
// A Config is one pipeline (service keys, inputs, outputs, parsers),
// written as Fluent Bit's classic format or as its YAML format, with the
// plugin loaded in any of the ways Fluent Bit offers (Load). Start runs it;
// a Process collects the log (Fluent Bit's and the plugin's, which share
// stderr), waits for lines in it, signals, kills and reloads. The tests of
// the package (the _test.go files) hold what Fluent Bit 5.1.1 was found to
// do; plugin/README.md states it for users.
package fluentbittest
