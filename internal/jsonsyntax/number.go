package jsonsyntax

// Number scans the JSON number at the start of b,
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, and returns its length.
// The number is the longest that matches: what follows it is the caller's
// to judge ("01" is the number 0, then a stray 1), as it is for
// encoding/json.
func Number(b []byte) (int, Problem) {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i+1)
	default:
		return i, WantNumber
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return j, WantDigit
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return j, WantDigit
		}
		i = j
	}
	return i, None
}

// ValidNumber reports whether b is one JSON number and nothing else: the
// check for a number token another scanner has already cut out (fastjson
// takes NaN, Inf and 1.2.3 for numbers).
func ValidNumber(b []byte) bool {
	n, p := Number(b)
	return p == None && n == len(b)
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}
