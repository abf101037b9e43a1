package s3

import (
	"context"
	"time"

	"github.com/auditpipe/auditpipe/outputs"
)

// Type is the output type's name in configurations.
const Type = "s3"

// NewFactory returns the factory of s3 outputs, configured by a Config
// whose zero value takes every default. Its batches are larger than other
// outputs' (10000 events, 32 MiB or a minute): fewer, larger objects.
func NewFactory() outputs.Factory {
	return outputs.NewFactory(Type, func() Config { return Config{} },
		func(ctx context.Context, set outputs.Settings, cfg Config) (*Output, error) {
			return New(ctx, cfg, set.Logger)
		},
		outputs.WithDefaultBatch(outputs.BatchConfig{MaxEvents: 10000, MaxBytes: 32 << 20, MaxWait: time.Minute}))
}
