//go:build auditpipe_safejson

package formats_test

// maxLivePeak is the live-heap peak TestTransformMemory allows, as a
// multiple of the body: the safe tree's parser holds a copy of the text
// (transformers/internal/jsontree/safe.go).
const maxLivePeak = 3.5
