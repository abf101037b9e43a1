package outputs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Config is an output type's own settings: what the configuration holds
// under the key named after the type (`kafka: {brokers: [...]}`), decoded
// into a pointer to the type package's Config struct.
//
// Validate reports every invalid field, each error a *keypath.Error whose
// Path names the key from the section down (brokers[0], tls.min_version):
// the configuration puts the section's name in front, and the Fluent Bit
// plugin maps the path to its own key (Kafka_Brokers). Zero fields are
// valid when they have a default.
type Config interface {
	Validate() error
}

// Settings are what an output is given by its host when it is created.
type Settings struct {
	// Name is the output's configured name.
	Name string
	// Logger is labelled with the output's name and type.
	Logger *slog.Logger
	// Version is the program's version (the webhook's User-Agent).
	Version string
	// Stdout is the process's standard output (the stdout output).
	Stdout io.Writer
}

// Factory makes the outputs of one type. A configuration names the type,
// and a Registry finds its Factory by that name.
type Factory interface {
	// Type is the name configurations use: kafka, elasticsearch.
	Type() string
	// DefaultConfig returns a new Config holding the type's defaults, the
	// value its section is decoded into, or nil when the type takes no
	// settings (stdout).
	DefaultConfig() Config
	// DefaultBatch sizes the batches an output of the type is handed when
	// its configuration does not say.
	DefaultBatch() BatchConfig
	// Create builds an output from a Config that DefaultConfig returned
	// (nil for a type without settings), refusing one that does not
	// validate.
	Create(ctx context.Context, set Settings, cfg Config) (Output, error)
}

// DefaultBatch is the batch size of an output type that does not choose
// its own: 500 events, 4 MiB or 200ms.
func DefaultBatch() BatchConfig {
	return BatchConfig{MaxEvents: 500, MaxBytes: 4 << 20, MaxWait: 200 * time.Millisecond}
}

// FactoryOption changes what NewFactory makes.
type FactoryOption func(*factoryOptions)

type factoryOptions struct {
	batch BatchConfig
}

// WithDefaultBatch sets the type's batch defaults instead of DefaultBatch
// (s3 writes fewer, larger objects).
func WithDefaultBatch(b BatchConfig) FactoryOption {
	return func(o *factoryOptions) { o.batch = b }
}

// NewFactory returns the Factory of output type typ, whose settings are a
// C (whose pointer is the Config DefaultConfig returns): defaultConfig returns them before the configuration is decoded into
// them (nil: the type takes no settings, and create is given a zero C),
// and create builds an output from them, validating them first (the
// outputs' New functions do).
func NewFactory[C any, PC configPtr[C], O Output](typ string, defaultConfig func() C, create func(context.Context, Settings, C) (O, error), opts ...FactoryOption) Factory {
	o := factoryOptions{batch: DefaultBatch()}
	for _, opt := range opts {
		opt(&o)
	}
	return &factory[C, PC, O]{typ: typ, defaultConfig: defaultConfig, create: create, opts: o}
}

// configPtr lets a Config's Validate have a value or a pointer receiver.
type configPtr[C any] interface {
	*C
	Config
}

type factory[C any, PC configPtr[C], O Output] struct {
	typ           string
	defaultConfig func() C
	create        func(context.Context, Settings, C) (O, error)
	opts          factoryOptions
}

func (f *factory[C, PC, O]) Type() string              { return f.typ }
func (f *factory[C, PC, O]) DefaultBatch() BatchConfig { return f.opts.batch }

func (f *factory[C, PC, O]) DefaultConfig() Config {
	if f.defaultConfig == nil {
		return nil
	}
	c := f.defaultConfig()
	return PC(&c)
}

func (f *factory[C, PC, O]) Create(ctx context.Context, set Settings, cfg Config) (Output, error) {
	var c C
	switch v := cfg.(type) {
	case PC:
		if v == nil {
			return nil, fmt.Errorf("%s: no settings", f.typ)
		}
		c = *v
	case nil:
		if f.defaultConfig != nil {
			return nil, fmt.Errorf("%s: no settings", f.typ)
		}
	default:
		return nil, fmt.Errorf("%s: settings of type %T, want %T", f.typ, cfg, PC(&c))
	}
	o, err := f.create(ctx, set, c)
	if err != nil {
		// A nil *T in an Output would not compare equal to nil.
		return nil, err
	}
	return o, nil
}
