package jsonsyntax

// Problem is why text is not JSON; 0 (None) is no problem. A number
// rather than an error value, so that scanners on hot paths return it
// for free and callers word it as they need.
type Problem uint8

// The problems, each named for what the grammar wanted or refused.
const (
	None          Problem = iota
	Unterminated          // the input ends inside a string
	ControlChar           // a raw control character inside a string
	BadEscape             // a backslash followed by a byte that is no escape
	BadHex                // \u not followed by four hex digits
	LoneSurrogate         // a \u escape of half a surrogate pair, alone
	BadUTF8               // invalid UTF-8 inside a string
	WantNumber            // a number without its integer part
	WantDigit             // a number's fraction or exponent without digits
	WantValue             // no JSON value where one must be
	WantTrue              // a misspelt literal
	WantFalse
	WantNull
	WantString     // an object member without a name
	WantColon      // a member name without ':'
	WantObjectNext // a member followed by neither ',' nor '}'
	WantArrayNext  // an element followed by neither ',' nor ']'
	TooDeep        // containers nested deeper than the limit
)

var problems = [...]string{
	None:           "no problem",
	Unterminated:   "unterminated string",
	ControlChar:    "control character in string",
	BadEscape:      "invalid escape",
	BadHex:         `invalid \u escape`,
	LoneSurrogate:  `lone surrogate in \u escape`,
	BadUTF8:        "invalid UTF-8 in string",
	WantNumber:     "expected a number",
	WantDigit:      "expected a digit",
	WantValue:      "expected a JSON value",
	WantTrue:       "expected true",
	WantFalse:      "expected false",
	WantNull:       "expected null",
	WantString:     "expected a string",
	WantColon:      "expected ':'",
	WantObjectNext: "expected ',' or '}'",
	WantArrayNext:  "expected ',' or ']'",
	TooDeep:        "nested too deep",
}

// String is the problem in the event decoder's words.
func (p Problem) String() string {
	if int(p) < len(problems) {
		return problems[p]
	}
	return "unknown problem"
}
