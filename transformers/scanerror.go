package transformers

import (
	"fmt"

	"github.com/auditpipe/auditpipe/transformers/internal/jsonscan"
)

// scanError is the error of a payload the scan refused (r.OK false) or
// found malformed (r.WellFormed false), located at, under the node at,
// by its JSONPath: no tree exists to name it, so the bytes are read again
// up to the offset (jsonscan.PathAt). Only refused payloads pay for that.
func scanError(b []byte, r *jsonscan.Result, lim Limits, at Node) *Error {
	e := &Error{Format: at.format, Item: int(at.item), Line: int(at.line), Kind: faultKind(r.Fault)}
	off, container := r.Off, false
	switch {
	case r.OK: // well formed it is not
		e.Kind, e.Detail = ErrSyntax, r.MisplacedMsg(b)
		off, container = r.BadOff, true
	case r.Fault == jsonscan.TooDeep:
		e.Expected = fmt.Sprintf("at most %d levels of nesting", min(lim.MaxDepth, parserMaxDepth))
	case r.Fault == jsonscan.TooManyMembers && r.Why == jsonscan.FailValues:
		e.Expected, container = fmt.Sprintf("at most %d values in one document (limits.max_values)", lim.MaxValues), true
	case r.Fault == jsonscan.TooManyMembers:
		e.Expected, container = jsonscan.MembersExpected(lim.MaxMembers, r.Object), true
	case r.Fault == jsonscan.StringTooLong && r.Name:
		e.Expected = fmt.Sprintf("member names of at most %d bytes", lim.MaxStringLength)
	case r.Fault == jsonscan.StringTooLong:
		e.Expected, e.Got = fmt.Sprintf("at most %d bytes", lim.MaxStringLength), fmt.Sprintf("%d bytes", r.N)
	case r.Why == jsonscan.FailControl:
		e.Expected, e.Detail = "a JSON string", "control characters must be escaped"
		if r.Name {
			e.Detail = "control characters in member names must be escaped"
		}
	case r.Why == jsonscan.FailNumber:
		e.Expected, e.Got = "a JSON number", "malformed number"
	default:
		// A bad escape, an unterminated string, a stray character: the
		// message says which, and where.
		e.Detail = fmt.Sprintf("%s at byte offset %d", r.Msg, r.Off)
	}
	e.Path = appendSteps(at.Path(), jsonscan.PathAt(b, off, container))
	return e
}

// appendSteps appends steps, outermost first, to path, and bounds the
// result.
func appendSteps(path string, steps []jsonscan.Step) string {
	for _, s := range steps {
		if s.Idx >= 0 {
			path = appendPathIndex(path, s.Idx)
		} else {
			path = appendPathKey(path, s.Key)
		}
	}
	return boundPath(path)
}
