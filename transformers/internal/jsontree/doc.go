// Package jsontree is the transformers engine's decoded value tree, and
// the only package that knows it is made of github.com/valyala/fastjson
// values: it builds trees from JSON text the scan has passed
// (jsonscan.Scan), and from values written one at a time (msgpack
// records, Go values); it reads them for transformers.Node; and it
// encodes them canonically (RFC 8785), redacting on the way.
//
// By default trees are written straight into fastjson's value layout
// (mirror.go), which saves most of what fastjson's parser and Arena cost
// (see mirror.go for figures). That layout is fastjson's private one, so
// go.mod pins fastjson's exact version, and TestTreeMirrorsFastjson holds
// every tree the mirror builds to the one fastjson's own parser builds
// from the same text. Built with the tag auditpipe_safejson, the package
// uses only fastjson's public API (its Parser and Arena) instead
// (arena.go): slower, but no fastjson release can make it write a value
// wrongly.
package jsontree
