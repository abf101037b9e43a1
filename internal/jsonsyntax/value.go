package jsonsyntax

// Skip scans the JSON value at the start of b, of any kind, and returns
// its length. Containers nest at most maxDepth deep (encoding/json allows
// 10000): recursion depth is bounded by input, so the bound is the
// caller's. Whitespace inside containers is skipped; around the value it
// is the caller's.
func Skip(b []byte, maxDepth int) (int, Problem) {
	return skip(b, 0, maxDepth)
}

// Valid reports whether b is one JSON value, whitespace around it aside,
// with containers at most maxDepth deep: json.Valid, but strict about
// UTF-8 and surrogates, and at a fraction of its cost.
func Valid(b []byte, maxDepth int) bool {
	i, p := skip(b, space(b, 0), maxDepth)
	return p == None && space(b, i) == len(b)
}

func space(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skip is Skip from b[i], with depth more levels of nesting allowed; it
// returns an offset into b.
func skip(b []byte, i, depth int) (int, Problem) {
	if i >= len(b) {
		return i, WantValue
	}
	switch c := b[i]; {
	case c == '"':
		n, _, p := String(b[i+1:])
		if p != None {
			return i + 1 + n, p
		}
		return i + n + 2, None
	case c == '{':
		if depth == 0 {
			return i, TooDeep
		}
		return skipObject(b, i+1, depth-1)
	case c == '[':
		if depth == 0 {
			return i, TooDeep
		}
		return skipArray(b, i+1, depth-1)
	case c == 't':
		return literal(b, i, "true", WantTrue)
	case c == 'f':
		return literal(b, i, "false", WantFalse)
	case c == 'n':
		return literal(b, i, "null", WantNull)
	case c == '-' || c >= '0' && c <= '9':
		n, p := Number(b[i:])
		return i + n, p
	}
	return i, WantValue
}

// skipObject is skip after an object's '{'.
func skipObject(b []byte, i, depth int) (int, Problem) {
	if i = space(b, i); i < len(b) && b[i] == '}' {
		return i + 1, None
	}
	for {
		if i = space(b, i); i >= len(b) || b[i] != '"' {
			return i, WantString
		}
		n, _, p := String(b[i+1:])
		if p != None {
			return i + 1 + n, p
		}
		if i = space(b, i+n+2); i >= len(b) || b[i] != ':' {
			return i, WantColon
		}
		if i, p = skip(b, space(b, i+1), depth); p != None {
			return i, p
		}
		if i = space(b, i); i < len(b) {
			switch b[i] {
			case ',':
				i++
				continue
			case '}':
				return i + 1, None
			}
		}
		return i, WantObjectNext
	}
}

// skipArray is skip after an array's '['.
func skipArray(b []byte, i, depth int) (int, Problem) {
	if i = space(b, i); i < len(b) && b[i] == ']' {
		return i + 1, None
	}
	for {
		var p Problem
		if i, p = skip(b, space(b, i), depth); p != None {
			return i, p
		}
		if i = space(b, i); i < len(b) {
			switch b[i] {
			case ',':
				i++
				continue
			case ']':
				return i + 1, None
			}
		}
		return i, WantArrayNext
	}
}

func literal(b []byte, i int, lit string, want Problem) (int, Problem) {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit), None
	}
	return i, want
}
