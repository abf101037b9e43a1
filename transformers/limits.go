package transformers

import (
	"fmt"

	"github.com/auditpipe/auditpipe/transformers/internal/jsonscan"
)

// Limits bound what a payload may cost to decode. They exist so that one
// hostile or broken sender cannot exhaust memory or stack; every breach is a
// typed *Error naming the path.
type Limits struct {
	// MaxPayloadBytes is the largest payload accepted. Default 8 MiB.
	MaxPayloadBytes int `yaml:"max_payload_bytes"`
	// MaxDepth is the deepest nesting of objects and arrays. Default 64.
	// JSON text nested deeper than 300 levels is refused whatever the
	// setting: that is the parser's own bound.
	MaxDepth int `yaml:"max_depth"`
	// MaxItems is the most items in one batch (alerts, array elements of a
	// top-level array, NDJSON lines). Default 10000.
	MaxItems int `yaml:"max_items"`
	// MaxStringLength is the longest string value or member name, in bytes
	// after unescaping. Default 1 MiB.
	MaxStringLength int `yaml:"max_string_length"`
	// MaxMembers is the most members of any one object, or elements of any
	// one array, at any depth. Default 10000. A tree costs about a hundred
	// bytes per member whatever the member's size, so without this bound a
	// payload of small members costs far more memory than its size; it is
	// checked before any tree is built. A batch sent as one JSON array is
	// bounded by this as well as by MaxItems.
	MaxMembers int `yaml:"max_members"`
	// MaxValues is the most values (objects, arrays and the members and
	// elements in them, at any depth) in one tree: the payload, one NDJSON
	// line, or one item of a batch sent as a JSON array. Default 500000.
	// MaxMembers bounds each container, not their sum: 8 MB of nested
	// arrays of small numbers within it cost 400 MB of tree before this
	// bound, about 50 MB at it.
	MaxValues int `yaml:"max_values"`
}

// Default limits.
const (
	DefaultMaxPayloadBytes = 8 << 20
	DefaultMaxDepth        = 64
	DefaultMaxItems        = 10000
	DefaultMaxStringLength = 1 << 20
	DefaultMaxMembers      = 10000
	DefaultMaxValues       = 500000
)

// parserMaxDepth is the deepest nesting the tree parses; deeper JSON
// text is refused as too deep at any MaxDepth.
const parserMaxDepth = jsonscan.ParserMaxDepth

// scan is what the engine enforces of l (defaults applied).
func (l Limits) scan() jsonscan.Limits {
	return jsonscan.Limits{MaxDepth: l.MaxDepth, MaxStringLength: l.MaxStringLength, MaxMembers: l.MaxMembers, MaxValues: l.MaxValues}
}

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
	if l.MaxMembers == 0 {
		l.MaxMembers = DefaultMaxMembers
	}
	if l.MaxValues == 0 {
		l.MaxValues = DefaultMaxValues
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
	case l.MaxMembers < 0:
		return fmt.Errorf("limits.max_members: must not be negative, got %d", l.MaxMembers)
	case l.MaxValues < 0:
		return fmt.Errorf("limits.max_values: must not be negative, got %d", l.MaxValues)
	}
	return nil
}
