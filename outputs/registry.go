package outputs

import (
	"errors"
	"fmt"
)

// Registry is the output types a program offers, each by its Factory.
// Both front doors and the CLI build their outputs from one, so that a new
// type is a new package and one line where the program lists its
// factories (outputs/standard).
type Registry struct {
	factories []Factory
	byType    map[string]Factory
}

// NewRegistry returns a Registry of factories, in the order given (the
// order Types lists them in). Two factories of one type are an error.
func NewRegistry(factories ...Factory) (*Registry, error) {
	r := &Registry{byType: make(map[string]Factory, len(factories))}
	for i, f := range factories {
		switch {
		case f == nil:
			return nil, fmt.Errorf("outputs: factory %d is nil", i)
		case f.Type() == "":
			return nil, fmt.Errorf("outputs: factory %d has no type name", i)
		case r.byType[f.Type()] != nil:
			return nil, fmt.Errorf("outputs: two factories of type %q", f.Type())
		}
		r.byType[f.Type()] = f
		r.factories = append(r.factories, f)
	}
	if len(r.factories) == 0 {
		return nil, errors.New("outputs: no factories")
	}
	return r, nil
}

// Factory returns the factory of type typ.
func (r *Registry) Factory(typ string) (Factory, bool) {
	f, ok := r.byType[typ]
	return f, ok
}

// Types lists the type names in registration order.
func (r *Registry) Types() []string {
	types := make([]string, len(r.factories))
	for i, f := range r.factories {
		types[i] = f.Type()
	}
	return types
}
