package jsonscan

import "encoding/json"

// Step is one step of a path: a member name, or an index when Idx >= 0.
type Step struct {
	Key string
	Idx int
}

// maxPathLength is transformers.MaxPathLength: a member name longer
// than a few times it is cut before it is unescaped.
const maxPathLength = 64

// PathAt is the JSONPath, as steps from the root, of what is at byte off
// of b: the value or member name that starts at or contains off or, with
// container, the innermost object or array around a value that starts at
// off (a misplaced one); for a byte that starts no value, the innermost
// object or array around it. b is read up to off only, so it need not be valid
// beyond; the steps it keeps are as many as the nesting at off, which the
// prescan bounded.
func PathAt(b []byte, off int, container bool) []Step {
	type frame struct {
		object, afterColon bool
		idx                int
		key                []byte
	}
	var stack []frame
	steps := func(all bool) []Step {
		n := len(stack)
		if !all && n > 0 {
			n--
		}
		out := make([]Step, 0, n)
		for _, f := range stack[:n] {
			if f.object {
				out = append(out, Step{Key: keyText(f.key), Idx: -1})
			} else {
				out = append(out, Step{Idx: f.idx})
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
	raw = raw[:min(len(raw), 4*maxPathLength)]
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
