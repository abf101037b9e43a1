package yamlconf

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/auditpipe/auditpipe/keypath"
)

// Expansion is done on the parsed YAML, in scalar values only: a
// substituted value is never re-read as YAML, so a secret holding ": ",
// "#", quotes or newlines stays one intact string, and it is never expanded
// again, so a secret holding "${" or "$$" stays as it is. Keys and comments
// are not expanded.
//
// The references:
//
//	${VAR}            the variable; an error naming VAR and the line when unset
//	${VAR:-default}   default when VAR is unset or empty (the default is
//	                  literal text up to the first '}')
//	${file:PATH}      PATH's content minus one trailing newline (\n or \r\n):
//	                  Kubernetes Secret volumes
//	$$                a literal '$'
//
// Any other '$' is kept as it is, so "pa$word" needs no escaping.

// Lookups are what references read: Env for ${VAR}, ReadFile for
// ${file:PATH}. A nil field means the process's own: os.LookupEnv,
// os.ReadFile.
type Lookups struct {
	Env      func(string) (string, bool)
	ReadFile func(string) ([]byte, error)
}

func (lk Lookups) orOS() Lookups {
	if lk.Env == nil {
		lk.Env = os.LookupEnv
	}
	if lk.ReadFile == nil {
		lk.ReadFile = os.ReadFile
	}
	return lk
}

// expandError is one bad reference. It never holds a substituted value.
type expandError struct {
	ref string // the reference as written, without any default text
	msg string
	err error
}

func (e *expandError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%s: %s: %v", e.ref, e.msg, e.err)
	}
	return e.ref + ": " + e.msg
}

func (e *expandError) Unwrap() error { return e.err }

// expand replaces the references in s. It reports every bad reference, and
// whether s held any reference at all (so a decoding error on it can hide
// the value).
func expand(s string, lk Lookups) (out string, substituted bool, err error) {
	i := strings.IndexByte(s, '$')
	if i < 0 {
		return s, false, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	var errs []error
	for {
		b.WriteString(s[:i])
		s = s[i:]
		switch {
		case strings.HasPrefix(s, "$$"):
			b.WriteByte('$')
			s = s[2:]
		case strings.HasPrefix(s, "${"):
			end := strings.IndexByte(s, '}')
			if end < 0 {
				errs = append(errs, &expandError{ref: "${", msg: "unterminated reference (no closing '}')"})
				s = ""
				break
			}
			v, err := resolve(s[2:end], lk)
			if err != nil {
				errs = append(errs, err)
			}
			b.WriteString(v)
			substituted = true
			s = s[end+1:]
		default:
			b.WriteByte('$')
			s = s[1:]
		}
		i = strings.IndexByte(s, '$')
		if i < 0 {
			b.WriteString(s)
			break
		}
	}
	return b.String(), substituted, errors.Join(errs...)
}

// resolve returns the value of one reference, ref being the text between
// "${" and "}".
func resolve(ref string, lk Lookups) (string, error) {
	if path, ok := strings.CutPrefix(ref, "file:"); ok {
		shown := "${file:" + path + "}"
		if path == "" {
			return "", &expandError{ref: shown, msg: "empty path"}
		}
		data, err := lk.ReadFile(path)
		if err != nil {
			// The path is configuration, not a secret; os errors name it
			// once more, which is harmless.
			return "", &expandError{ref: shown, msg: "cannot read the file", err: err}
		}
		v := string(data)
		if t, ok := strings.CutSuffix(v, "\n"); ok {
			v = strings.TrimSuffix(t, "\r")
		}
		return v, nil
	}
	name, def, hasDefault := strings.Cut(ref, ":-")
	if !validVarName(name) {
		// Show only the name part: the default may be a secret.
		return "", &expandError{ref: "${" + name + "}", msg: "not a variable name (want [A-Za-z_][A-Za-z0-9_]*, ${VAR:-default} or ${file:PATH})"}
	}
	v, set := lk.Env(name)
	if hasDefault {
		if v == "" {
			return def, nil
		}
		return v, nil
	}
	if !set {
		return "", &expandError{ref: "${" + name + "}", msg: "environment variable " + name + " is not set (use ${" + name + ":-default} for a default)"}
	}
	return v, nil
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// expandTree expands every scalar value under n in place. It returns the
// lines of the scalars that held a reference (their decoding errors must
// not show the value) and every bad reference, named by line and key path.
func expandTree(n *yaml.Node, lk Lookups) (map[int]bool, error) {
	lines := map[int]bool{}
	var errs []error
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, elemPath(path, i, c))
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], keyPath(path, n.Content[i].Value))
			}
		case yaml.ScalarNode:
			v, substituted, err := expand(n.Value, lk)
			if err != nil {
				errs = append(errs, atLine(n.Line, pathOrRoot(path), err))
			}
			if v == n.Value && !substituted {
				return
			}
			n.Value = v
			if substituted {
				lines[n.Line] = true
				retag(n)
			}
		}
		// Aliases are not followed: their anchor is expanded where it is
		// defined, and expanding it twice would undo "$$".
	}
	walk(n, "")
	return lines, errors.Join(errs...)
}

// retag makes the type of a scalar that held a reference follow its
// expanded text, as if the text had been written there: "port: ${PORT}" is
// an int when PORT=8080, "enabled: ${ON}" a bool. That holds for quoted
// scalars too, because inside a flow collection ({...}, [...]) a reference
// must be quoted, and {max_bytes: "${MAX}"} must still give a number; a
// string key takes the text whatever it looks like. An explicit tag stays.
// A non-empty value that would read as null ("~", "null") stays a string:
// a secret is not erased because of its spelling.
func retag(n *yaml.Node) {
	if n.Style&yaml.TaggedStyle != 0 {
		return
	}
	n.Style = 0
	n.Tag = ""
	if n.Value != "" && n.ShortTag() == "!!null" {
		n.Tag = "!!str"
	}
}

// keyPath and elemPath spell key paths the way Validate does:
// sources[2] (spacelift).auth.hmac.secrets[0].
func keyPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func elemPath(parent string, i int, elem *yaml.Node) string {
	p := fmt.Sprintf("%s[%d]", parent, i)
	if elem.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(elem.Content); j += 2 {
			if k, v := elem.Content[j], elem.Content[j+1]; k.Value == "name" && v.Kind == yaml.ScalarNode && v.Value != "" && !strings.Contains(v.Value, "$") {
				p += " (" + v.Value + ")"
				break
			}
		}
	}
	return p
}

func pathOrRoot(p string) string {
	if p == "" {
		return "(top level)"
	}
	return p
}

// atLine locates err, and each error it joins, at a line and key path.
func atLine(line int, path string, err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, atLine(line, path, e))
		}
		return errors.Join(out...)
	}
	return &keypath.Error{Line: line, Path: path, Err: err}
}
