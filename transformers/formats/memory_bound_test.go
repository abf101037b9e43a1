//go:build !auditpipe_safejson

package formats_test

// maxLivePeak is the live-heap peak TestTransformMemory allows, as a
// multiple of the body.
const maxLivePeak = 3.0
