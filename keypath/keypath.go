package keypath

import (
	"errors"
	"fmt"
	"strconv"
)

// Error is a problem with the value of one key.
type Error struct {
	// Line is the line of the configuration file the key is on, or 0 when
	// the error was found after decoding (by validation).
	Line int
	// Path names the key the way the configuration spells it, dots
	// between keys and brackets for list elements: kafka.tls.ca_file,
	// sources[2] (spacelift).auth.hmac.secrets[0]. Empty when the error
	// concerns the whole document.
	Path string
	// Err says what is wrong. It never holds a secret.
	Err error
}

// Error renders "line N: path: message", leaving out what is unknown.
func (e *Error) Error() string {
	s := e.Err.Error()
	if e.Path != "" {
		s = e.Path + ": " + s
	}
	if e.Line > 0 {
		s = "line " + strconv.Itoa(e.Line) + ": " + s
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error for the key at path, its message formatted as
// fmt.Errorf does (%w wraps).
func Errorf(path, format string, args ...any) error {
	return &Error{Path: path, Err: fmt.Errorf(format, args...)}
}

// Under returns err as found under the key parent: each *Error it holds
// has parent put before its path (Under("kafka", brokers: ...) is
// kafka.brokers: ...), and any other error becomes an *Error at parent.
// Errors joined with errors.Join are handled one by one and stay joined;
// nil stays nil.
func Under(parent string, err error) error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Under(parent, e))
		}
		return errors.Join(out...)
	}
	e, ok := err.(*Error)
	if !ok {
		return &Error{Path: parent, Err: err}
	}
	p := *e
	switch {
	case parent == "":
	case p.Path == "":
		p.Path = parent
	default:
		p.Path = parent + "." + p.Path
	}
	return &p
}
