#!/bin/sh
# Regenerates the Go code of transformer.proto (the files are committed, so
# only a change to the .proto needs this). protoc comes from Debian's
# protobuf-compiler (installed with apt when missing, which needs root or
# sudo); the two Go plugins are installed at pinned versions under
# build/tools, never globally.
set -eu

root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"
tools="$root/build/tools"
GO=${GO:-go}

# protoc-gen-go must match google.golang.org/protobuf in go.mod;
# protoc-gen-go-grpc v1.6 emits code for grpc >= 1.64 (go.mod has 1.85).
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

if ! command -v protoc >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq protobuf-compiler >/dev/null
fi

mkdir -p "$tools"
if ! "$tools/protoc-gen-go" --version 2>/dev/null | grep -q "$PROTOC_GEN_GO_VERSION"; then
	GOBIN="$tools" $GO install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
fi
if ! "$tools/protoc-gen-go-grpc" --version 2>/dev/null | grep -q "${PROTOC_GEN_GO_GRPC_VERSION#v}"; then
	GOBIN="$tools" $GO install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
fi

PATH="$tools:$PATH" protoc \
	--proto_path=. \
	--go_out=. --go_opt=paths=source_relative \
	--go-grpc_out=. --go-grpc_opt=paths=source_relative \
	transformers/external/proto/transformer.proto
echo "generated transformers/external/proto/transformer.pb.go and transformer_grpc.pb.go"
