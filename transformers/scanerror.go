package transformers

import (
	"encoding/json"
	"fmt"
)

// scanError is the error of a payload prescan refused (r.ok false) or
// found malformed (r.wellFormed false), located at, under the node at,
// by its JSONPath: no tree exists to name it, so the bytes are read again
// up to the offset (pathAt). Only refused payloads pay for that.
func scanError(b []byte, r *scanResult, lim Limits, at Node) *Error {
	e := &Error{Format: at.format, Item: int(at.item), Line: int(at.line), Kind: r.kind}
	off, container := r.off, false
	switch {
	case r.ok: // well formed it is not
		e.Kind, e.Detail = ErrSyntax, r.misplacedMsg(b)
		off, container = r.badOff, true
	case r.kind == ErrTooDeep:
		e.Expected = fmt.Sprintf("at most %d levels of nesting", min(lim.MaxDepth, parserMaxDepth))
	case r.kind == ErrTooManyMembers && r.why == failValues:
		e.Expected, container = fmt.Sprintf("at most %d values in one document (limits.max_values)", lim.MaxValues), true
	case r.kind == ErrTooManyMembers:
		e.Expected, container = tooManyMembers(lim.MaxMembers, r.object), true
	case r.kind == ErrStringTooLong && r.name:
		e.Expected = fmt.Sprintf("member names of at most %d bytes", lim.MaxStringLength)
	case r.kind == ErrStringTooLong:
		e.Expected, e.Got = fmt.Sprintf("at most %d bytes", lim.MaxStringLength), fmt.Sprintf("%d bytes", r.n)
	case r.why == failControl:
		e.Expected, e.Detail = "a JSON string", "control characters must be escaped"
		if r.name {
			e.Detail = "control characters in member names must be escaped"
		}
	case r.why == failNumber:
		e.Expected, e.Got = "a JSON number", "malformed number"
	default:
		// A bad escape, an unterminated string, a stray character: the
		// message says which, and where.
		e.Detail = fmt.Sprintf("%s at byte offset %d", r.msg, r.off)
	}
	e.Path = appendSteps(at.Path(), pathAt(b, off, container))
	return e
}

// tooManyMembers is what an ErrTooManyMembers error expected.
func tooManyMembers(limit int, object bool) string {
	if object {
		return fmt.Sprintf("at most %d members in one object", limit)
	}
	return fmt.Sprintf("at most %d elements in one array", limit)
}

// appendSteps appends steps, outermost first, to path, and bounds the
// result.
func appendSteps(path string, steps []pathSeg) string {
	for _, s := range steps {
		if s.idx >= 0 {
			path = appendPathIndex(path, s.idx)
		} else {
			path = appendPathKey(path, s.key)
		}
	}
	return boundPath(path)
}

// pathAt is the JSONPath, as steps from the root, of what is at byte off
// of b: the value or member name that starts at or contains off or, with
// container, the innermost object or array around a value that starts at
// off (a misplaced one); for a byte that starts no value, the innermost
// object or array around it. b is read up to off only, so it need not be valid
// beyond; the steps it keeps are as many as the nesting at off, which the
// prescan bounded.
func pathAt(b []byte, off int, container bool) []pathSeg {
	type frame struct {
		object, afterColon bool
		idx                int
		key                []byte
	}
	var stack []frame
	steps := func(all bool) []pathSeg {
		n := len(stack)
		if !all && n > 0 {
			n--
		}
		out := make([]pathSeg, 0, n)
		for _, f := range stack[:n] {
			if f.object {
				out = append(out, pathSeg{key: keyText(f.key), idx: -1})
			} else {
				out = append(out, pathSeg{idx: f.idx})
			}
		}
		return out
	}
	for i := 0; i < len(b) && i <= off; {
		c := b[i]
		switch scanClass[c] {
		case clsSpace:
			i++
		case clsOpen:
			if i == off {
				return steps(!container)
			}
			stack = append(stack, frame{object: c == '{'})
			i++
		case clsClose:
			if i == off || len(stack) == 0 {
				return steps(false)
			}
			stack = stack[:len(stack)-1]
			i++
		case clsComma:
			if i == off {
				return steps(false)
			}
			if n := len(stack); n > 0 {
				if f := &stack[n-1]; f.object {
					f.key, f.afterColon = nil, false
				} else {
					f.idx++
				}
			}
			i++
		case clsColon:
			if n := len(stack); n > 0 {
				stack[n-1].afterColon = true
			}
			i++
		case clsQuote:
			j := i + 1
			for j < len(b) && b[j] != '"' {
				if b[j] == '\\' {
					j++
				}
				j++
			}
			if n := len(stack); n > 0 && stack[n-1].object && !stack[n-1].afterColon {
				stack[n-1].key = b[i+1 : min(j, len(b))]
			}
			if off <= j {
				return steps(!container || off > i) // the name or value at off
			}
			i = j + 1
		case clsToken:
			j := i + 1
			for j < len(b) && scanClass[b[j]] == clsToken {
				j++
			}
			if off < j {
				return steps(!container)
			}
			i = j
		default:
			return steps(false)
		}
	}
	return steps(false)
}

// keyText is a member name as a path shows it: unescaped when its escapes
// are valid, as sent otherwise; cut to a length a message can show.
func keyText(raw []byte) string {
	raw = raw[:min(len(raw), 4*MaxPathLength)]
	for _, c := range raw {
		if c == '\\' {
			var s string
			if json.Unmarshal([]byte(`"`+string(raw)+`"`), &s) == nil {
				return s
			}
			break
		}
	}
	return string(raw)
}
