package transformers

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"unicode/utf8"
)

// scanResult is what prescan learned about a payload.
type scanResult struct {
	ok   bool
	off  int
	kind error
	msg  string

	// canonical reports that the payload, whitespace aside, is already in
	// RFC 8785 form: keys sorted, no escapes, integers only. Go services
	// (json.Marshal of maps, MarshalIndent) and many SDKs send exactly
	// that; then the payload's own bytes, with the whitespace outside
	// strings removed (compact), are its canonical encoding and nothing
	// needs encoding for the id. Conservative: false only costs the
	// encoding.
	canonical bool
	// spaced reports whitespace outside strings before end: the canonical
	// form is then a compacted copy rather than the payload itself.
	spaced bool
	// wellFormed reports that the structure (braces, brackets, commas,
	// colons) is valid JSON too, so the payload is valid JSON as a whole.
	wellFormed bool
	end        int
	// members are the top-level object members of a canonical payload
	// (none when it has more than fit), in payload coordinates.
	members  [maxMemberSpans]memberSpan
	nMembers int
	red      *Redactor // the redactor the dirty flags were computed for
}

const maxMemberSpans = 16

// memberSpan locates one top-level member's value in a canonical payload,
// and whether a member name inside it is one the redactor acts on.
type memberSpan struct {
	keyStart, keyEnd int32 // the name, without its quotes
	valStart, valEnd int32 // the value; valStart may precede whitespace
	dirty            bool
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

// prescan enforces, in one pass over the raw bytes and before anything is
// parsed, what fastjson does not: the depth and string-length limits, and
// the parts of the JSON grammar fastjson is lenient about (escapes, raw
// control characters, unpaired surrogates, numbers such as NaN, +1, .5 or
// 1.2.3). In the same pass it checks the structure (wellFormed), finds out
// whether the payload is already canonical, and, with red, which top-level
// members hold names to redact. It is on every payload's path, so string
// contents, the bulk of any audit event, are skipped eight bytes at a time.
//
// With a non-nil compact, it also copies the payload without its
// whitespace outside strings into *compact as it goes (one copy per run
// between whitespace), which is the canonical form when the payload turns
// out canonical but spaced; member spans are recorded in the coordinates
// of that copy (equal to the payload's when there is no whitespace).
func prescan(b []byte, lim Limits, red *Redactor, r *scanResult, compact *[]byte) {
	*r = scanResult{canonical: true, red: red}
	fail := func(off int, kind error, msg string) {
		r.ok, r.off, r.kind, r.msg = false, off, kind, msg
	}
	r.end = len(b)
	for r.end > 0 && isSpace(b[r.end-1]) {
		r.end--
	}
	var prevKey [maxCanonicalDepth][2]int32 // per depth: last member name seen
	var objects [1024 / 64]uint64           // per depth: is the container an object
	nm := 0
	maxStr, maxDepth := lim.MaxStringLength, min(lim.MaxDepth, 1023)
	want, wellFormed := wantValue, true
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
			if i < r.end && i > 0 {
				r.spaced = true
			} else if i == 0 {
				r.canonical = false // leading whitespace: keep it simple
			}
			if compact != nil && r.canonical {
				out = append(out, b[runStart:i]...)
			}
			// Pretty-printed payloads are a third indentation: skip runs
			// of spaces eight at a time.
			i++
			for i+8 <= len(b) && binary.LittleEndian.Uint64(b[i:]) == lsb*' ' {
				i += 8
			}
			for i < len(b) && isSpace(b[i]) {
				i++
			}
			runStart = i
		case clsComma:
			switch {
			case want != wantCommaOrClose:
				wellFormed = false
			case objects[depth/64]&(1<<(depth%64)) != 0:
				want = wantKey
			default:
				want = wantValue
			}
			if depth == 1 && nm > 0 && nm <= maxMemberSpans && r.members[nm-1].valEnd == 0 {
				r.members[nm-1].valEnd = at(i)
			}
			i++
		case clsColon:
			if want != wantColon {
				wellFormed = false
			}
			want = wantValue
			if depth == 1 && nm > 0 && nm <= maxMemberSpans {
				r.members[nm-1].valStart = at(i + 1)
			}
			i++
		case clsQuote:
			j := i + 1
			escapes := false
			for {
				k := indexSpecial(b[j:])
				if k < 0 {
					fail(i, ErrSyntax, "unterminated string")
					return
				}
				j += k
				if b[j] == '"' {
					break
				}
				if b[j] < 0x20 {
					fail(j, ErrSyntax, fmt.Sprintf("control character 0x%02x in a string must be escaped", b[j]))
					return
				}
				n := escapeEnd(b[j:])
				if m := checkRawString(b[j : j+n]); m != "" {
					fail(j, ErrSyntax, m)
					return
				}
				escapes = true
				j += n
			}
			if j-i-1 > maxStr && (!escapes || unescapedLen(b[i+1:j]) > maxStr) {
				fail(i, ErrStringTooLong, fmt.Sprintf("a string longer than %d bytes", maxStr))
				return
			}
			if escapes {
				r.canonical = false // minimal escaping is not worth verifying
			}
			switch want {
			case wantValue, wantValueOrClose:
				want = afterValue(depth)
			case wantKeyOrClose, wantKey:
				want = wantColon
				if !r.canonical {
					break
				}
				// A member name: names must strictly increase (which
				// also rules out duplicates).
				key := b[i+1 : j]
				if depth >= maxCanonicalDepth {
					r.canonical = false
					break
				}
				if p := prevKey[depth]; p[1] > 0 && !keyLess(b[p[0]:p[1]], key) {
					r.canonical = false
				}
				prevKey[depth] = [2]int32{int32(i + 1), int32(j)}
				switch {
				case depth == 1:
					if nm < maxMemberSpans {
						r.members[nm] = memberSpan{keyStart: at(i + 1), keyEnd: at(j)}
					}
					nm++
				case nm > 0 && nm <= maxMemberSpans && red != nil:
					// A "value" member may be a secret because of its
					// sibling's name (namesSecret): dirty as well.
					if red.Secret(key) || string(key) == "value" {
						r.members[nm-1].dirty = true
					}
				}
			default:
				wellFormed = false
			}
			i = j + 1
		case clsOpen:
			if want != wantValue && want != wantValueOrClose {
				wellFormed = false
			}
			depth++
			if depth > maxDepth {
				fail(i, ErrTooDeep, fmt.Sprintf("more than %d levels of nesting", lim.MaxDepth))
				return
			}
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
				fail(i, ErrSyntax, "unbalanced "+string(rune(c)))
				return
			}
			isObject := objects[depth/64]&(1<<(depth%64)) != 0
			switch {
			case isObject != (c == '}'):
				wellFormed = false
			case want == wantCommaOrClose, isObject && want == wantKeyOrClose, !isObject && want == wantValueOrClose:
			default:
				wellFormed = false
			}
			if depth == 1 && nm > 0 && nm <= maxMemberSpans && r.members[nm-1].valEnd == 0 {
				r.members[nm-1].valEnd = at(i)
			}
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
				if !validNumber(tok) {
					fail(i, ErrSyntax, "malformed number or literal")
					return
				}
				if r.canonical && (!isPlainInt(tok) || string(tok) == "-0") {
					r.canonical = false
				}
			}
			if want != wantValue && want != wantValueOrClose {
				wellFormed = false
			}
			want = afterValue(depth)
			i = j
		default:
			fail(i, ErrSyntax, fmt.Sprintf("unexpected character %q", rune(c)))
			return
		}
	}
	r.ok = true
	r.wellFormed = wellFormed && want == wantEnd
	if !r.wellFormed {
		r.canonical = false
	}
	if compact != nil && r.canonical && r.spaced {
		out = append(out, b[runStart:max(runStart, r.end)]...)
		*compact = out
	}
	if !r.canonical || r.end == 0 || b[0] != '{' || nm > maxMemberSpans || len(b) > 1<<31-1 {
		nm = 0
	}
	r.nMembers = nm
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func isTokenByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '+' || c == '-'
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// indexSpecial returns the index of the first '"', '\\' or control
// character in s, or -1. Eight bytes per step: a byte matches when
// (x - n) borrows into its top bit, and borrows only ever propagate upwards,
// so the lowest flagged byte is always a true match.
func indexSpecial(s []byte) int {
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

// unescapedLen is the length in bytes of a valid raw JSON string once
// unescaped.
func unescapedLen(raw []byte) int {
	n := 0
	for i := 0; i < len(raw); {
		if raw[i] != '\\' {
			n++
			i++
			continue
		}
		if raw[i+1] != 'u' {
			n++
			i += 2
			continue
		}
		r, _ := hex4(raw[i+2:])
		if r >= 0xD800 && r < 0xDC00 {
			n += 4
			i += 12
			continue
		}
		n += utf8.RuneLen(r)
		i += 6
	}
	return n
}

// keyLess is compareUTF16(a, b) < 0 with the common case inline: sorted
// names mostly differ in their first byte.
func keyLess(a, b []byte) bool {
	if len(a) > 0 && len(b) > 0 && a[0] != b[0] && a[0] < 0x80 && b[0] < 0x80 {
		return a[0] < b[0]
	}
	return compareUTF16(a, b) < 0
}
