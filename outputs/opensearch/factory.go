package opensearch

import (
	"context"

	"github.com/auditpipe/auditpipe/outputs"
)

// Type is the output type's name in configurations.
const Type = "opensearch"

// NewFactory returns the factory of opensearch outputs, configured by a
// Config that needs at least urls.
func NewFactory() outputs.Factory {
	return outputs.NewFactory(Type, func() Config { return Config{} },
		func(ctx context.Context, set outputs.Settings, cfg Config) (*Output, error) {
			return New(ctx, cfg, set.Logger)
		})
}
