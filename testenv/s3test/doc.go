// Package s3test runs a real S3-compatible server for tests and for the
// testenv stack: versitygw with its posix backend on a temporary directory,
// as a child process, over plain HTTP or over TLS with a CA made at start.
//
// A real server rather than an in-process fake because the S3 wire format
// is where the bugs are: over TLS the AWS SDK sends aws-chunked bodies with
// trailing checksums, and an in-process fake we tried stored that framing
// as the object's content. versitygw decodes it as AWS does, checks
// signatures and checksums, and keeps objects as plain files.
//
// The binary is found through $AUDITPIPE_VERSITYGW, then
// build/tools/versitygw under the module root, then $PATH. Tests call
// Require first: it skips when the binary is missing, except under CI=true,
// where a missing peer is a failure, not a skip.
package s3test
