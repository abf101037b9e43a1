package yamlconf

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/auditpipe/auditpipe/keypath"
)

// yaml.v3's type error: "line N: cannot unmarshal TAG `VALUE` into TYPE",
// VALUE being the first 10 bytes of the scalar (7 and "..." when longer).
var typeErrRE = regexp.MustCompile("(?s)^line ([0-9]+): cannot unmarshal (\\S+)(?: `(.*)`)? into (.+)$")

// yaml.v3's other decoding errors (a key given twice) start with the line.
var lineRE = regexp.MustCompile("(?s)^line ([0-9]+): (.*)$")

// decodeError adds yaml.v3's decoding errors to d's problems, its type
// errors rewritten to name the key path, and to hide the value on lines
// where a reference was expanded: it may be a secret.
func (d *Document) decodeError(err error) {
	if err == nil {
		return
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		d.values = append(d.values, err)
		return
	}
	paths := d.index().byLine
	for _, msg := range te.Errors {
		m := typeErrRE.FindStringSubmatch(msg)
		if m == nil {
			if m := lineRE.FindStringSubmatch(msg); m != nil {
				line, _ := strconv.Atoi(m[1])
				d.values = append(d.values, &keypath.Error{Line: line, Err: errors.New(m[2])})
			} else {
				d.values = append(d.values, errors.New(msg))
			}
			continue
		}
		line, _ := strconv.Atoi(m[1])
		tag, value, into := m[2], m[3], m[4]
		kind := yaml.ScalarNode
		switch tag {
		case "!!map":
			kind = yaml.MappingNode
		case "!!seq":
			kind = yaml.SequenceNode
		}
		e := &keypath.Error{Line: line}
		p := paths[lineKind{line, kind}]
		if len(p) == 1 {
			e.Path = p[0]
		}
		switch {
		case kind != yaml.ScalarNode:
			e.Err = fmt.Errorf("a %s cannot be decoded into %s", map[yaml.Kind]string{yaml.MappingNode: "mapping", yaml.SequenceNode: "list"}[kind], into)
		case d.hidden[line]:
			e.Err = fmt.Errorf("the expanded value (%s, hidden) cannot be decoded into %s", tag, into)
		case slices.ContainsFunc(p, sensitivePath) || len(p) == 0:
			e.Err = fmt.Errorf("the value (%s, hidden: it may be a secret) cannot be decoded into %s", tag, into)
		default:
			e.Err = fmt.Errorf("%s `%s` cannot be decoded into %s", tag, value, into)
		}
		d.values = append(d.values, e)
	}
}

// sensitivePath reports whether a key path may hold a secret, so that a
// value written in the wrong shape there (tokens: abc instead of a list) is
// not echoed in an error.
func sensitivePath(p string) bool {
	p = strings.ToLower(p)
	for _, w := range []string{"auth", "secret", "token", "password", "passwd", "key", "header", "credential", "cookie"} {
		if strings.Contains(p, w) {
			return true
		}
	}
	return false
}

type lineKind struct {
	line int
	kind yaml.Kind
}

// index holds the key path of every node of a document: by node, and by
// the line and kind of the values that start on each line (yaml.v3's type
// errors give only a line).
type index struct {
	paths  map[*yaml.Node]string
	byLine map[lineKind][]string
}

func (d *Document) index() *index {
	if d.idx != nil {
		return d.idx
	}
	x := &index{paths: map[*yaml.Node]string{}, byLine: map[lineKind][]string{}}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		if _, ok := x.paths[n]; !ok {
			x.paths[n] = path
		}
		if path != "" {
			k := lineKind{n.Line, n.Kind}
			x.byLine[k] = append(x.byLine[k], path)
		}
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
		}
	}
	if d.root != nil {
		walk(d.root, "")
	}
	d.idx = x
	return x
}
