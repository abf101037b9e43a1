package main

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// lineOf finds the 1-based line of the value at a JSONPath ($.a[3]["b c"])
// in a JSON document, so the CLI can point at a file line. It returns 0 when
// the path cannot be found (the document is malformed before it).
func lineOf(doc []byte, path string) int {
	ptr, ok := pointerOf(path)
	if !ok {
		return 0
	}
	// A missing member has no line of its own: point at the nearest
	// ancestor that exists.
	for {
		if line := lineOfPointer(doc, ptr); line > 0 || ptr == "" {
			return line
		}
		ptr = ptr[:strings.LastIndexByte(string(ptr), '/')]
	}
}

func lineOfPointer(doc []byte, ptr jsontext.Pointer) int {
	if ptr == "" {
		return 1 + bytes.Count(doc[:len(doc)-len(bytes.TrimLeft(doc, " \t\r\n"))], []byte{'\n'})
	}
	d := jsontext.NewDecoder(bytes.NewReader(doc))
	for {
		start := d.InputOffset()
		tok, err := d.ReadToken()
		if err != nil {
			return syntaxLine(doc, err)
		}
		if d.StackPointer() == ptr && tok.Kind() != '}' && tok.Kind() != ']' {
			// Skip whitespace and the separator before the value.
			off := int(start) + len(doc[start:]) - len(bytes.TrimLeft(doc[start:], " \t\r\n:,"))
			return 1 + bytes.Count(doc[:off], []byte{'\n'})
		}
	}
}

// syntaxLine is the line of a syntax error, when the decoder reports its
// offset; 0 otherwise.
func syntaxLine(doc []byte, err error) int {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) && se.ByteOffset <= int64(len(doc)) {
		return 1 + bytes.Count(doc[:se.ByteOffset], []byte{'\n'})
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return 1 + bytes.Count(doc, []byte{'\n'})
	}
	return 0
}

// pointerOf converts the JSONPath the transformers report into an RFC 6901
// JSON Pointer.
func pointerOf(path string) (jsontext.Pointer, bool) {
	if !strings.HasPrefix(path, "$") {
		return "", false
	}
	var ptr jsontext.Pointer
	for s := path[1:]; s != ""; {
		switch s[0] {
		case '.':
			end := strings.IndexAny(s[1:], ".[")
			if end < 0 {
				end = len(s) - 1
			}
			ptr = ptr.AppendToken(s[1 : 1+end])
			s = s[1+end:]
		case '[':
			var tok string
			rest := s[1:]
			if strings.HasPrefix(rest, `"`) {
				q, err := strconv.QuotedPrefix(rest)
				if err != nil {
					return "", false
				}
				tok, _ = strconv.Unquote(q)
				rest = rest[len(q):]
			} else {
				end := strings.IndexByte(rest, ']')
				if end < 0 {
					return "", false
				}
				tok, rest = rest[:end], rest[end:]
			}
			if !strings.HasPrefix(rest, "]") {
				return "", false
			}
			ptr = ptr.AppendToken(tok)
			s = rest[1:]
		default:
			return "", false
		}
	}
	return ptr, true
}
