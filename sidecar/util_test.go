package sidecar_test

import (
	"bytes"
	"io"
)

func ioNopCloser(b *bytes.Buffer) io.ReadCloser { return io.NopCloser(b) }
