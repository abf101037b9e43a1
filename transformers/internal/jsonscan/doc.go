// Package jsonscan is the transformers engine's JSON grammar: the one
// pass over a payload's bytes (Scan) that checks it against the limits
// and the strict grammar before any tree is built, and the pieces of
// grammar the tree builder and the canonical encoder share with it
// (strings, escapes, numbers, member-name order). It also locates a
// refused payload's byte offset as a path (PathAt), as no tree exists
// to name it.
package jsonscan

// Fault is the kind of a failure the engine reports; the transformers
// package maps each to its sentinel error.
type Fault uint8

// Kinds of failures.
const (
	NoFault Fault = iota
	Syntax
	InvalidUTF8
	TooLarge
	TooDeep
	TooManyMembers
	StringTooLong
	Type
	Value
)

// Limits are the bounds a scan enforces (transformers.Limits, with
// defaults applied).
type Limits struct {
	MaxDepth        int
	MaxStringLength int
	MaxMembers      int
	MaxValues       int
}

// ParserMaxDepth is the deepest nesting fastjson parses (fastjson.MaxDepth
// counts from 0); deeper JSON text is refused as too deep at any MaxDepth.
const ParserMaxDepth = 300

// Failure is a failure the engine located: its kind, what was expected
// and what was found instead (never a payload value), and the steps of
// the path to it, innermost first, collected while a recursion unwinds
// so that the happy path builds no path at all.
type Failure struct {
	Fault    Fault
	Expected string
	Got      string
	Detail   string
	Steps    []Step
}

func (f *Failure) Error() string {
	msg := "expected " + f.Expected
	if f.Got != "" {
		msg += ", got " + f.Got
	}
	if f.Detail != "" {
		msg += " (" + f.Detail + ")"
	}
	return msg
}

// At adds the step the failure is under.
func (f *Failure) At(s Step) *Failure {
	f.Steps = append(f.Steps, s)
	return f
}
