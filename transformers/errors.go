package transformers

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/auditpipe/auditpipe/transformers/internal/jsonscan"
)

// Sentinel kinds of transformer errors; test with errors.Is.
var (
	ErrSyntax       = errors.New("malformed JSON")
	ErrInvalidUTF8  = errors.New("invalid UTF-8")
	ErrTooLarge     = errors.New("payload too large")
	ErrTooDeep      = errors.New("nesting too deep")
	ErrTooManyItems = errors.New("too many items")
	// ErrTooManyMembers: an object or array holds more than
	// Limits.MaxMembers members or elements. It wraps ErrTooManyItems:
	// both say the payload holds more than a limit allows, and the
	// external transformers' protocol, which has no kind of its own for
	// it, carries it as that.
	ErrTooManyMembers error = membersKind{}
	ErrStringTooLong        = errors.New("string too long")
	ErrType                 = errors.New("wrong type")
	ErrMissing              = errors.New("missing field")
	ErrValue                = errors.New("invalid value")
	ErrUnsupported          = errors.New("unsupported payload")
	ErrUnknownFormat        = errors.New("unknown format")
	ErrInvalidEvent         = errors.New("invalid event")
	// ErrUnavailable is not about the payload: the transformer could not
	// run (an external transformer's process died or hung). The payload is
	// fine and should be sent again later: the sidecar answers 503, the
	// Fluent Bit plugin FLB_RETRY.
	ErrUnavailable = errors.New("transformer unavailable")
)

// faultKind is the sentinel of a failure the engine reports.
func faultKind(f jsonscan.Fault) error {
	switch f {
	case jsonscan.Syntax:
		return ErrSyntax
	case jsonscan.InvalidUTF8:
		return ErrInvalidUTF8
	case jsonscan.TooLarge:
		return ErrTooLarge
	case jsonscan.TooDeep:
		return ErrTooDeep
	case jsonscan.TooManyMembers:
		return ErrTooManyMembers
	case jsonscan.StringTooLong:
		return ErrStringTooLong
	case jsonscan.Type:
		return ErrType
	case jsonscan.NoFault:
		return nil
	}
	return ErrValue
}

type membersKind struct{}

func (membersKind) Error() string { return "too many members" }
func (membersKind) Unwrap() error { return ErrTooManyItems }

// Error is a transformer failure that names where it happened: the format,
// the JSON path inside the payload and what was expected there. It is what
// the sidecar turns into a 400 body and the CLI prints with file and line.
//
// Node's accessors, Finish, CanonicalID and the format packages' mapping
// steps return a concrete *Error rather than error, because their callers
// append it to Result.Errors as it is, once per bad item, without a type
// assertion. The rule that keeps Go's typed-nil trap away: a *Error is
// compared with nil as a *Error, and becomes an error only where it is
// known to be non-nil (or through AsError). Never return a *Error variable
// from a function whose result type is error, and never assign one to an
// error variable before the nil check: a nil *Error in an error interface
// is not == nil.
type Error struct {
	// Format is the decoder that failed (spacelift, alertmanager, ...).
	Format string `json:"format"`
	// Item is the index of the item in a batch (alert, NDJSON line, array
	// element), or -1 when the problem concerns the payload as a whole.
	Item int `json:"item"`
	// Line is the 1-based NDJSON line, 0 when the payload was one document.
	Line int `json:"line,omitempty"`
	// Path is a JSONPath to the offending value ($.alerts[3].labels.gvk).
	// A path longer than MaxPathLength keeps its start and end around an
	// ellipsis (…): member names are payload bytes, and a message must
	// not grow with the payload.
	Path string `json:"path"`
	// Expected describes the shape that was required there.
	Expected string `json:"expected,omitempty"`
	// Got describes what was found instead (a JSON kind, never the value
	// itself: values may be secrets).
	Got string `json:"got,omitempty"`
	// Kind is one of the sentinel errors above.
	Kind error `json:"-"`
	// Detail is free text, for example where the JSON text went wrong.
	// Whatever it quotes of the payload is cut to an Excerpt.
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
// A foreign error's text is cut to maxDetail bytes: it may quote anything.
func AsError(format string, err error) *Error {
	var te *Error
	if errors.As(err, &te) {
		return te
	}
	return &Error{Format: format, Item: -1, Path: "$", Kind: ErrValue, Detail: cut(err.Error(), maxDetail)}
}

// Bounds of what an error message may hold of a payload.
const (
	// MaxExcerpt is the most bytes of a payload value an error quotes.
	MaxExcerpt = 64
	// MaxPathLength is the longest Error.Path: deep or long-named paths
	// keep their start and end.
	MaxPathLength = 64
	// maxDetail bounds a detail made of text this package does not control
	// (a foreign error, a validation message that quotes fields).
	maxDetail = 256
)

// Excerpt is s cut to MaxExcerpt bytes, at a character boundary, with an
// ellipsis when cut: what an error message may quote of a payload value.
func Excerpt(s string) string { return cut(s, MaxExcerpt) }

// cut is s cut to at most n bytes, at a character boundary, ending in an
// ellipsis when anything was cut (the ellipsis included in n).
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ell = "…"
	s = s[:n-len(ell)]
	for len(s) > 0 && !utf8.RuneStart(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	if len(s) > 0 {
		if r, size := utf8.DecodeLastRuneInString(s); r == utf8.RuneError && size <= 1 {
			s = s[:len(s)-1] // a character cut short
		}
	}
	return s + ell
}

// boundPath shortens a path longer than MaxPathLength to its start and
// end around an ellipsis, cut where a step begins when one is near, so
// that the root and the innermost steps stay readable.
func boundPath(p string) string {
	if len(p) <= MaxPathLength {
		return p
	}
	const ell = "…"
	headMax := MaxPathLength / 3
	tailMax := MaxPathLength - headMax - len(ell)
	head := p[:headMax]
	// End the head before a step, when one starts past its first half.
	if i := strings.LastIndexAny(head, ".["); i > headMax/2 {
		head = head[:i]
	}
	for len(head) > 0 && !utf8.RuneStart(p[len(head)]) {
		head = head[:len(head)-1]
	}
	tail := p[len(p)-tailMax:]
	// Start the tail at a step, when one starts in its first half.
	if i := strings.IndexAny(tail, ".["); i > 0 && i < tailMax/2 {
		tail = tail[i:]
	}
	for len(tail) > 0 && !utf8.RuneStart(tail[0]) {
		tail = tail[1:]
	}
	return head + ell + tail
}

// appendPathKey extends a JSONPath with a member name, using the bracket
// form when the name is not a plain identifier. A long name is cut: the
// path would be shortened around it anyway (boundPath).
func appendPathKey(path, key string) string {
	key = cut(key, MaxPathLength)
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

// pathSeg is one step of a path: a member name, or an index when idx >= 0.
type pathSeg struct {
	key string
	idx int
}

// appendStepsReversed appends steps collected innermost first (while an
// error unwinds a recursion) to path, and bounds the result.
func appendStepsReversed(path string, steps []jsonscan.Step) string {
	for i := len(steps) - 1; i >= 0; i-- {
		if steps[i].Idx >= 0 {
			path = appendPathIndex(path, steps[i].Idx)
		} else {
			path = appendPathKey(path, steps[i].Key)
		}
	}
	return boundPath(path)
}

func appendPathIndex(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}
