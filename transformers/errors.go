package transformers

import (
	"errors"
	"strconv"
	"strings"
)

// Sentinel kinds of transformer errors; test with errors.Is.
var (
	ErrSyntax        = errors.New("malformed JSON")
	ErrInvalidUTF8   = errors.New("invalid UTF-8")
	ErrTooLarge      = errors.New("payload too large")
	ErrTooDeep       = errors.New("nesting too deep")
	ErrTooManyItems  = errors.New("too many items")
	ErrStringTooLong = errors.New("string too long")
	ErrType          = errors.New("wrong type")
	ErrMissing       = errors.New("missing field")
	ErrValue         = errors.New("invalid value")
	ErrUnsupported   = errors.New("unsupported payload")
	ErrUnknownFormat = errors.New("unknown format")
	ErrInvalidEvent  = errors.New("invalid event")
	// ErrUnavailable is not about the payload: the transformer could not
	// run (an external transformer's process died or hung). The payload is
	// fine and should be sent again later: the sidecar answers 503, the
	// Fluent Bit plugin FLB_RETRY.
	ErrUnavailable = errors.New("transformer unavailable")
)

// Error is a transformer failure that names where it happened: the format,
// the JSON path inside the payload and what was expected there. It is what
// the sidecar turns into a 400 body and the CLI prints with file and line.
type Error struct {
	// Format is the decoder that failed (spacelift, alertmanager, ...).
	Format string `json:"format"`
	// Item is the index of the item in a batch (alert, NDJSON line, array
	// element), or -1 when the problem concerns the payload as a whole.
	Item int `json:"item"`
	// Line is the 1-based NDJSON line, 0 when the payload was one document.
	Line int `json:"line,omitempty"`
	// Path is a JSONPath to the offending value ($.alerts[3].labels.gvk).
	Path string `json:"path"`
	// Expected describes the shape that was required there.
	Expected string `json:"expected,omitempty"`
	// Got describes what was found instead (a JSON kind, never the value
	// itself: values may be secrets).
	Got string `json:"got,omitempty"`
	// Kind is one of the sentinel errors above.
	Kind error `json:"-"`
	// Detail is free text, for example the parser's own message.
	Detail string `json:"detail,omitempty"`
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Format)
	b.WriteString(": ")
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	if e.Kind != nil {
		b.WriteString(e.Kind.Error())
	}
	if e.Expected != "" {
		b.WriteString(": expected ")
		b.WriteString(e.Expected)
		if e.Got != "" {
			b.WriteString(", got ")
			b.WriteString(e.Got)
		}
	}
	if e.Detail != "" {
		b.WriteString(" (")
		b.WriteString(e.Detail)
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap lets errors.Is match the sentinel kind.
func (e *Error) Unwrap() error { return e.Kind }

// AsError returns err as an *Error, wrapping foreign errors as ErrValue at
// the payload level so callers always have a path and format to report.
func AsError(format string, err error) *Error {
	var te *Error
	if errors.As(err, &te) {
		return te
	}
	return &Error{Format: format, Item: -1, Path: "$", Kind: ErrValue, Detail: err.Error()}
}

// appendPathKey extends a JSONPath with a member name, using the bracket
// form when the name is not a plain identifier.
func appendPathKey(path, key string) string {
	plain := key != ""
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			plain = false
			break
		}
	}
	if plain {
		return path + "." + key
	}
	return path + "[" + strconv.Quote(key) + "]"
}

// appendStepsReversed appends steps collected innermost first (while an
// error unwinds a recursion) to path.
func appendStepsReversed(path string, steps []pathSeg) string {
	for i := len(steps) - 1; i >= 0; i-- {
		if steps[i].idx >= 0 {
			path = appendPathIndex(path, steps[i].idx)
		} else {
			path = appendPathKey(path, steps[i].key)
		}
	}
	return path
}

func appendPathIndex(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}
