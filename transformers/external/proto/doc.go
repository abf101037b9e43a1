// Package proto is the generated gRPC code of the external transformer
// protocol (transformer.proto): the messages and service the host and a
// plugin exchange through hashicorp/go-plugin. Plugin authors never use it
// directly; the external package's Serve and New speak it for them.
//
// Regenerate with gen.sh after changing transformer.proto.
package proto
