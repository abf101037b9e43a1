package elasticsearch

import (
	"context"

	"github.com/auditpipe/auditpipe/outputs"
)

// Type is the output type's name in configurations.
const Type = "elasticsearch"

// NewFactory returns the factory of elasticsearch outputs, configured by a Config
// whose zero value takes every default.
func NewFactory() outputs.Factory {
	return outputs.NewFactory(Type, func() Config { return Config{} },
		func(ctx context.Context, set outputs.Settings, cfg Config) (*Output, error) {
			return New(ctx, cfg, set.Logger)
		})
}
