package jsonscan

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"strings"

	"github.com/auditpipe/auditpipe/internal/jsonsyntax"
	"github.com/auditpipe/auditpipe/transformers/internal/redact"
)

// Result is what Scan learned about a payload.
type Result struct {
	// OK is false when the scan refused the payload: at byte Off, for a
	// Fault, which Msg says in words.
	OK    bool
	Off   int
	Fault Fault
	Msg   string
	// Why refines a failure (FailControl...), for the message built from
	// it.
	Why Why
	// Name: the failure is in a member name rather than a value; Object:
	// the container with too many members is an object.
	Name, Object bool
	// N is the length, unescaped, of a string too long.
	N int

	// Canonical reports that the payload, whitespace aside, is already in
	// RFC 8785 form: keys sorted, no escapes, integers only. Go services
	// (json.Marshal of maps, MarshalIndent) and many SDKs send exactly
	// that; then the payload's own bytes, with the whitespace outside
	// strings removed (compact), are its canonical encoding and nothing
	// needs encoding for the id. Conservative: false only costs the
	// encoding.
	Canonical bool
	// Spaced reports whitespace outside strings before end: the canonical
	// form is then a compacted copy rather than the payload itself.
	Spaced bool
	// Escaped reports a string with an escape: without one, a string
	// ends at the next quote, which spares the tree builder a search.
	Escaped bool
	// WellFormed reports that the structure (braces, brackets, commas,
	// colons) is valid JSON too, so the payload is valid JSON as a whole.
	// When it is not, the first misplaced byte is at BadOff (len(b) for a
	// payload that ends too soon), where the grammar expected badWant.
	WellFormed bool
	BadOff     int
	badWant    uint8
	// End is the length of the payload without its trailing whitespace.
	End int
	// Top is the number of members or elements of a top-level object or
	// array.
	Top int
	// Members are the top-level object members of a canonical payload
	// (none when it has more than fit), in payload coordinates.
	Members  [maxMemberSpans]MemberSpan
	NMembers int
	Red      *redact.Matcher // the redactor the dirty flags were computed for
}

// Why refines a scan failure (Result.Why).
type Why uint8

// Refinements of a scan failure.
const (
	FailOther   Why = iota
	FailControl     // a raw control character in a string
	FailNumber      // a malformed number (or NaN, Inf): what fastjson reads as one
	FailValues      // more values in one tree than Limits.MaxValues
)

const maxMemberSpans = 16

// MemberSpan locates one top-level member's value in a canonical payload,
// and whether a member name inside it is one the redactor acts on.
type MemberSpan struct {
	KeyStart, KeyEnd int32 // the name, without its quotes
	ValStart, ValEnd int32 // the value; ValStart may precede whitespace
	Dirty            bool
}

// maxCanonicalDepth bounds the key-order tracking; deeper payloads are
// simply not treated as canonical.
const maxCanonicalDepth = 16

// Byte classes of the prescan dispatch.
const (
	clsOther = iota
	clsSpace
	clsComma
	clsColon
	clsQuote
	clsOpen
	clsClose
	clsToken
)

var scanClass = func() (t [256]uint8) {
	for _, c := range []byte(" \t\r\n") {
		t[c] = clsSpace
	}
	t[','], t[':'], t['"'] = clsComma, clsColon, clsQuote
	t['{'], t['['], t['}'], t[']'] = clsOpen, clsOpen, clsClose, clsClose
	for c := range 256 {
		if isTokenByte(byte(c)) {
			t[c] = clsToken
		}
	}
	return t
}()

// What the grammar expects next (prescan's structural check).
const (
	wantValue        = iota // a value
	wantValueOrClose        // a value or ']' (after '[')
	wantKeyOrClose          // a member name or '}' (after '{')
	wantKey                 // a member name (after ',' in an object)
	wantColon               // ':' (after a member name)
	wantCommaOrClose        // ',' or the container's close (after a value)
	wantEnd                 // nothing (after the top-level value)
)

// prescan enforces, in one pass over the raw bytes and before any tree is
// built, the depth, string-length and member limits and the strict JSON
// grammar, including what fastjson, whose trees the formats read, is
// lenient about (escapes, raw control characters, unpaired surrogates,
// numbers such as NaN, +1, .5 or 1.2.3): the tree builder relies on it.
// In the same pass it checks the structure (wellFormed), counts the
// top-level members, finds out whether the payload is already canonical,
// and, with red, which top-level members hold names to redact. It is on
// every payload's path, so string contents, the bulk of any audit event,
// are skipped eight bytes at a time. What it refuses costs no tree: a
// payload of many small members would cost a hundred bytes of tree per
// member before any other check saw it.
//
// With a non-nil compact, it also copies the payload without its
// whitespace outside strings into *compact as it goes (one copy per run
// between whitespace), which is the canonical form when the payload turns
// out canonical but spaced; member spans are recorded in the coordinates
// of that copy (equal to the payload's when there is no whitespace).
func Scan(b []byte, lim Limits, red *redact.Matcher, r *Result, compact *[]byte) {
	*r = Result{Canonical: true, Red: red}
	fail := func(off int, kind Fault, msg string) {
		r.OK, r.Off, r.Fault, r.Msg = false, off, kind, msg
	}
	r.End = len(b)
	for r.End > 0 && IsSpace(b[r.End-1]) {
		r.End--
	}
	var prevKey [maxCanonicalDepth][2]int32 // per depth: last member name seen
	var objects [1024 / 64]uint64           // per depth: is the container an object
	// cur.commas are those of the open container, which has one member
	// more when it is not empty; outer[d] holds those of the container at
	// depth d-1 while one at depth d is open (past the inline part, it
	// grows). The count is held to the limit when the container closes,
	// which keeps a comma's own step to an increment: a container over
	// the limit costs its bytes to scan, never a tree. The count is kept
	// in memory on purpose: the loop has no register to spare, and taking
	// one for it costs more than an increment in memory.
	var cur struct{ commas int32 }
	c0 := &cur
	var outerInline [32]int32
	outer := outerInline[:]
	nm := 0
	maxStr, maxDepth := lim.MaxStringLength, min(lim.MaxDepth, ParserMaxDepth)
	maxCommas := int32(min(lim.MaxMembers, 1<<31-1) - 1)
	// values counts the containers and commas of the tree being scanned,
	// which bound its values to within the nesting depth; a batch sent as
	// a JSON array is built an item at a time, so each of its items
	// starts the count again.
	values, maxValues := 0, lim.MaxValues
	rootArray := r.End > 0 && bytes.TrimLeft(b[:r.End], " \t\r\n")[0] == '['

	want := wantValue
	afterValue := func(depth int) int {
		if depth == 0 {
			return wantEnd
		}
		return wantCommaOrClose
	}
	var out []byte
	if compact != nil {
		out = (*compact)[:0]
	}
	runStart := 0 // start of the current run of payload bytes not yet copied
	// at is the offset raw position p will have in the compacted copy.
	at := func(p int) int32 { return int32(len(out) + p - runStart) }
	depth := 0
	for i := 0; i < len(b); {
		c := b[i]
		switch scanClass[c] {
		case clsSpace:
			if i < r.End && i > 0 {
				r.Spaced = true
			} else if i == 0 {
				r.Canonical = false // leading whitespace: keep it simple
			}
			if compact != nil && r.Canonical {
				out = append(out, b[runStart:i]...)
			}
			// Pretty-printed payloads are a third indentation: skip runs
			// of spaces eight at a time.
			i++
			for i+8 <= len(b) && binary.LittleEndian.Uint64(b[i:]) == lsb*' ' {
				i += 8
			}
			for i < len(b) && IsSpace(b[i]) {
				i++
			}
			runStart = i
		case clsComma:
			switch {
			case want != wantCommaOrClose:
				r.misplaced(i, want)
				return
			case objects[depth/64]&(1<<(depth%64)) != 0:
				want = wantKey
			default:
				want = wantValue
			}
			c0.commas++
			if values++; depth == 1 && rootArray {
				values = 0
			} else if values > maxValues {
				fail(i, TooManyMembers, "too many values")
				r.Why = FailValues
				return
			}
			if depth == 1 && nm > 0 && nm <= maxMemberSpans && r.Members[nm-1].ValEnd == 0 {
				r.Members[nm-1].ValEnd = at(i)
			}
			i++
		case clsColon:
			if want != wantColon {
				r.misplaced(i, want)
				return
			}
			want = wantValue
			if depth == 1 && nm > 0 && nm <= maxMemberSpans {
				r.Members[nm-1].ValStart = at(i + 1)
			}
			i++
		case clsQuote:
			j := i + 1
			escapes := false
			for {
				k := IndexSpecial(b[j:])
				if k < 0 {
					fail(i, Syntax, "unterminated string")
					return
				}
				j += k
				if b[j] == '"' {
					break
				}
				if b[j] < 0x20 {
					fail(j, Syntax, fmt.Sprintf("control character 0x%02x in a string must be escaped", b[j]))
					r.Why = FailControl
					r.Name = want == wantKeyOrClose || want == wantKey
					return
				}
				n := jsonsyntax.EscapeLen(b[j:])
				if m := CheckRawString(b[j : j+n]); m != "" {
					fail(j, Syntax, m)
					return
				}
				escapes = true
				j += n
			}
			if j-i-1 > maxStr {
				if n := j - i - 1; !escapes || jsonsyntax.UnescapedLen(b[i+1:j]) > maxStr {
					if escapes {
						n = jsonsyntax.UnescapedLen(b[i+1 : j])
					}
					fail(i, StringTooLong, fmt.Sprintf("a string longer than %d bytes", maxStr))
					r.Name, r.N = want == wantKeyOrClose || want == wantKey, n
					return
				}
			}
			if escapes {
				r.Canonical = false // minimal escaping is not worth verifying
				r.Escaped = true
			}
			switch want {
			case wantValue, wantValueOrClose:
				want = afterValue(depth)
			case wantKeyOrClose, wantKey:
				want = wantColon
				if !r.Canonical {
					break
				}
				// A member name: names must strictly increase (which
				// also rules out duplicates).
				key := b[i+1 : j]
				if depth >= maxCanonicalDepth {
					r.Canonical = false
					break
				}
				if p := prevKey[depth]; p[1] > 0 && !keyLess(b[p[0]:p[1]], key) {
					r.Canonical = false
				}
				prevKey[depth] = [2]int32{int32(i + 1), int32(j)}
				switch {
				case depth == 1:
					if nm < maxMemberSpans {
						r.Members[nm] = MemberSpan{KeyStart: at(i + 1), KeyEnd: at(j)}
					}
					nm++
				case nm > 0 && nm <= maxMemberSpans && red != nil:
					// A "value" member may be a secret because of its
					// sibling's name (namesSecret): dirty as well.
					if red.Secret(key) || string(key) == "value" {
						r.Members[nm-1].Dirty = true
					}
				}
			default:
				r.misplaced(i, want)
				return
			}
			i = j + 1
		case clsOpen:
			if want != wantValue && want != wantValueOrClose {
				r.misplaced(i, want)
				return
			}
			depth++
			if depth > maxDepth {
				fail(i, TooDeep, fmt.Sprintf("more than %d levels of nesting", maxDepth))
				return
			}
			if values++; values > maxValues {
				fail(i, TooManyMembers, "too many values")
				r.Why = FailValues
				return
			}
			if depth == len(outer) {
				outer = append(outer, make([]int32, len(outer))...)
			}
			outer[depth], c0.commas = c0.commas, 0
			if c == '{' {
				objects[depth/64] |= 1 << (depth % 64)
				want = wantKeyOrClose
			} else {
				objects[depth/64] &^= 1 << (depth % 64)
				want = wantValueOrClose
			}
			if depth < maxCanonicalDepth {
				prevKey[depth] = [2]int32{}
			}
			i++
		case clsClose:
			if depth == 0 {
				fail(i, Syntax, "unbalanced "+string(rune(c)))
				return
			}
			isObject := objects[depth/64]&(1<<(depth%64)) != 0
			if c0.commas > maxCommas {
				fail(i, TooManyMembers, "too many members")
				r.Object = isObject
				return
			}
			switch {
			case isObject != (c == '}'):
				r.misplaced(i, want)
				return
			case want == wantCommaOrClose, isObject && want == wantKeyOrClose, !isObject && want == wantValueOrClose:
			default:
				r.misplaced(i, want)
				return
			}
			if depth == 1 {
				if nm > 0 && nm <= maxMemberSpans && r.Members[nm-1].ValEnd == 0 {
					r.Members[nm-1].ValEnd = at(i)
				}
				if r.Top = int(c0.commas); want != wantKeyOrClose && want != wantValueOrClose {
					r.Top++ // not empty
				}
			}
			c0.commas = outer[depth]
			depth--
			want = afterValue(depth)
			i++
		case clsToken:
			// A literal or a number: fastjson takes any run of number
			// characters, and NaN and Inf, as a number.
			j := i + 1
			for j < len(b) && scanClass[b[j]] == clsToken {
				j++
			}
			switch tok := b[i:j]; string(tok) {
			case "true", "false", "null":
			default:
				if !jsonsyntax.ValidNumber(tok) {
					fail(i, Syntax, "malformed number or literal")
					if numberLike(tok) {
						r.Why = FailNumber
					}
					return
				}
				if r.Canonical && (!IsPlainInt(tok) || string(tok) == "-0") {
					r.Canonical = false
				}
			}
			if want != wantValue && want != wantValueOrClose {
				r.misplaced(i, want)
				return
			}
			want = afterValue(depth)
			i = j
		default:
			fail(i, Syntax, fmt.Sprintf("unexpected character %q", rune(c)))
			return
		}
	}
	if want != wantEnd {
		r.misplaced(len(b), want)
		return
	}
	r.OK, r.WellFormed = true, true
	if compact != nil && r.Canonical && r.Spaced {
		out = append(out, b[runStart:max(runStart, r.End)]...)
		*compact = out
	}
	if !r.Canonical || r.End == 0 || b[0] != '{' || nm > maxMemberSpans || len(b) > 1<<31-1 {
		nm = 0
	}
	r.NMembers = nm
}

// numberLike reports a token that reads as a number, malformed or not (the
// error then says "malformed number"): it starts like one, or spells NaN
// or Inf.
func numberLike(tok []byte) bool {
	switch c := tok[0]; {
	case c >= '0' && c <= '9', c == '-', c == '+', c == '.':
		return true
	}
	l := strings.ToLower(string(tok[:min(len(tok), 3)]))
	return l == "nan" || l == "inf"
}

// misplaced records the first byte the structure did not allow, at i,
// where the grammar wanted want; the scan stops there: the payload is not
// one document, and NDJSON is scanned line by line anyway. Not inlined:
// it is never on the way of a valid payload, whose loop has no register
// to spare.
//
//go:noinline
func (r *Result) misplaced(i int, want int) {
	r.OK, r.WellFormed, r.Canonical = true, false, false
	r.BadOff, r.badWant = i, uint8(want)
}

// MisplacedMsg says what the structure of b expected at r.BadOff and what
// it found, naming only JSON's own characters: nothing of the payload's
// content.
func (r *Result) MisplacedMsg(b []byte) string {
	var want string
	switch r.badWant {
	case wantValue:
		want = "a value"
	case wantValueOrClose:
		want = "a value or ']'"
	case wantKeyOrClose:
		want = "a member name or '}'"
	case wantKey:
		want = "a member name"
	case wantColon:
		want = "':'"
	case wantCommaOrClose:
		want = "',' or ']'"
		if innermostObject(b, r.BadOff) {
			want = "',' or '}'"
		}
	default:
		want = "the end of the document"
	}
	var got string
	switch {
	case r.BadOff >= len(b):
		got = "the end of the input"
	case b[r.BadOff] == '"':
		got = "a string"
	case scanClass[b[r.BadOff]] == clsToken && (b[r.BadOff] == '-' || b[r.BadOff] >= '0' && b[r.BadOff] <= '9'):
		got = "a number"
	case scanClass[b[r.BadOff]] == clsToken:
		got = "a literal"
	default:
		got = "'" + string(rune(b[r.BadOff])) + "'"
	}
	return fmt.Sprintf("expected %s, got %s at byte offset %d", want, got, r.BadOff)
}

// innermostObject reports whether the innermost container open at off in
// b, read as far as off, is an object.
func innermostObject(b []byte, off int) bool {
	var open []byte
	for i := 0; i < off && i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			open = append(open, c)
		case '}', ']':
			if len(open) > 0 {
				open = open[:len(open)-1]
			}
		}
	}
	return len(open) > 0 && open[len(open)-1] == '{'
}

// IsSpace reports JSON white space.
func IsSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func isTokenByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '+' || c == '-'
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// IndexSpecial returns the index of the first '"', '\\' or control
// character in s, or -1. Eight bytes per step: a byte matches when
// (x - n) borrows into its top bit, and borrows only ever propagate upwards,
// so the lowest flagged byte is always a true match.
func IndexSpecial(s []byte) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(s[i:])
		q := x ^ (lsb * '"')
		bs := x ^ (lsb * '\\')
		t := ((q - lsb) &^ q) | ((bs - lsb) &^ bs) | ((x - lsb*0x20) &^ x)
		if t &= msb; t != 0 {
			return i + bits.TrailingZeros64(t)/8
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' || c < 0x20 {
			return i
		}
	}
	return -1
}

// keyLess is CompareUTF16(a, b) < 0 with the common case inline: sorted
// names mostly differ in their first byte.
func keyLess(a, b []byte) bool {
	if len(a) > 0 && len(b) > 0 && a[0] != b[0] && a[0] < 0x80 && b[0] < 0x80 {
		return a[0] < b[0]
	}
	return CompareUTF16(a, b) < 0
}
