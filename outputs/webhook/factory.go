package webhook

import (
	"context"

	"github.com/auditpipe/auditpipe/outputs"
)

// Type is the output type's name in configurations.
const Type = "webhook"

// NewFactory returns the factory of webhook outputs, configured by a
// Config whose zero value takes every default. The User-Agent carries the
// host's version unless the Config sets one.
func NewFactory() outputs.Factory {
	return outputs.NewFactory(Type, func() Config { return Config{} },
		func(ctx context.Context, set outputs.Settings, cfg Config) (*Output, error) {
			if cfg.Version == "" {
				cfg.Version = set.Version
			}
			return New(ctx, cfg, set.Logger)
		})
}
