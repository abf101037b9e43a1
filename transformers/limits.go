package transformers

import "fmt"

// Limits bound what a payload may cost to decode. They exist so that one
// hostile or broken sender cannot exhaust memory or stack; every breach is a
// typed *Error naming the path.
type Limits struct {
	// MaxPayloadBytes is the largest payload accepted. Default 8 MiB.
	MaxPayloadBytes int `yaml:"max_payload_bytes"`
	// MaxDepth is the deepest nesting of objects and arrays. Default 64.
	MaxDepth int `yaml:"max_depth"`
	// MaxItems is the most items in one batch (alerts, array elements of a
	// top-level array, NDJSON lines). Default 10000.
	MaxItems int `yaml:"max_items"`
	// MaxStringLength is the longest string value or member name, in bytes
	// after unescaping. Default 1 MiB.
	MaxStringLength int `yaml:"max_string_length"`
}

// Default limits.
const (
	DefaultMaxPayloadBytes = 8 << 20
	DefaultMaxDepth        = 64
	DefaultMaxItems        = 10000
	DefaultMaxStringLength = 1 << 20
)

// WithDefaults fills zero fields with the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxPayloadBytes == 0 {
		l.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if l.MaxDepth == 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxItems == 0 {
		l.MaxItems = DefaultMaxItems
	}
	if l.MaxStringLength == 0 {
		l.MaxStringLength = DefaultMaxStringLength
	}
	return l
}

// Validate reports the first negative or out-of-range limit by its yaml key.
func (l Limits) Validate() error {
	switch {
	case l.MaxPayloadBytes < 0:
		return fmt.Errorf("limits.max_payload_bytes: must not be negative, got %d", l.MaxPayloadBytes)
	case l.MaxDepth < 0 || l.MaxDepth > 1000:
		return fmt.Errorf("limits.max_depth: must be between 0 (default) and 1000, got %d", l.MaxDepth)
	case l.MaxItems < 0:
		return fmt.Errorf("limits.max_items: must not be negative, got %d", l.MaxItems)
	case l.MaxStringLength < 0:
		return fmt.Errorf("limits.max_string_length: must not be negative, got %d", l.MaxStringLength)
	}
	return nil
}
