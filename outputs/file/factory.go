package file

import (
	"context"

	"github.com/auditpipe/auditpipe/outputs"
)

// Type names in configurations: a file output and the stdout output.
const (
	Type       = "file"
	StdoutType = "stdout"
)

// NewFactory returns the factory of file outputs, configured by a Config
// (path required).
func NewFactory() outputs.Factory {
	return outputs.NewFactory(Type, func() Config { return Config{} },
		func(ctx context.Context, set outputs.Settings, cfg Config) (*Output, error) {
			return New(ctx, cfg, set.Logger)
		})
}

// NewStdoutFactory returns the factory of the stdout output, which takes
// no settings and writes to the host's standard output.
func NewStdoutFactory() outputs.Factory {
	return outputs.NewFactory[Config](StdoutType, nil,
		func(_ context.Context, set outputs.Settings, _ Config) (*Output, error) {
			return NewWriter(set.Stdout), nil
		})
}
