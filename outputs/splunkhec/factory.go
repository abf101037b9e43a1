package splunkhec

import (
	"context"

	"github.com/auditpipe/auditpipe/outputs"
)

// Type is the output type's name in configurations.
const Type = "splunk_hec"

// NewFactory returns the factory of splunk_hec outputs, configured by a
// Config whose zero value takes every default but url and token.
func NewFactory() outputs.Factory {
	return outputs.NewFactory(Type, func() Config { return Config{} },
		func(ctx context.Context, set outputs.Settings, cfg Config) (*Output, error) {
			if cfg.Version == "" {
				cfg.Version = set.Version
			}
			return New(ctx, cfg, set.Logger)
		})
}
