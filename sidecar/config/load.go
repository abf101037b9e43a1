package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads the configuration file at path and returns it expanded,
// decoded, completed with defaults and validated (see Parse). env reads
// variables for ${VAR}; nil means os.LookupEnv. Errors start with path.
func Load(path string, env func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := Parse(data, env)
	if err != nil {
		return nil, prefixAll(path+": ", err)
	}
	return cfg, nil
}

// Parse does what Load does with the file's content: it expands ${VAR},
// ${VAR:-default}, ${file:PATH} and $$ in scalar values, decodes strictly
// (an unknown key is an error naming its line and key path), applies
// WithDefaults and runs Validate. It reports every problem it finds, joined
// with errors.Join, one per line of Error(). env reads variables; nil means
// os.LookupEnv. A ${file:PATH} with a relative PATH is relative to the
// working directory.
func Parse(data []byte, env func(string) (string, bool)) (*Config, error) {
	return parse(data, osLookups(env))
}

// Decode reads a YAML document holding some of the configuration's
// sections into v, a pointer to a struct, the way Parse reads the whole
// file: references expanded, one document, every key known to v's type
// (an unknown one is an error naming its line and key path), and no
// substituted value in an error. Nothing is defaulted or validated: that
// is the caller's, for the sections it reads. The Fluent Bit plugin's
// Config file and the CLI's output files are read with it.
func Decode(data []byte, env func(string) (string, bool), v any) error {
	return decodeStrict(data, osLookups(env), v)
}

func decodeStrict(data []byte, lk lookups, v any) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return err
		}
		return fmt.Errorf("line %d: a second YAML document; the configuration is one document", line)
	}
	if doc.Kind == 0 {
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	// An empty document (only comments) is a null scalar: all defaults.
	if root.Kind != yaml.MappingNode && root.ShortTag() != "!!null" {
		return fmt.Errorf("line %d: the configuration must be a mapping of keys (%s)", root.Line, topKeys(reflect.TypeOf(v).Elem()))
	}
	hidden, expErr := expandTree(&doc, lk)
	keyErr := checkKnownKeys(&doc, reflect.TypeOf(v).Elem())
	decErr := doc.Decode(v)
	return errors.Join(expErr, keyErr, decodeError(decErr, &doc, hidden))
}

// topKeys lists the first few keys of a configuration type, for messages.
func topKeys(t reflect.Type) string {
	keys := fieldsOf(t).keys
	if len(keys) > 3 {
		keys = append(keys[:3:3], "...")
	}
	return strings.Join(keys, ", ")
}

func parse(data []byte, lk lookups) (*Config, error) {
	var cfg Config
	if err := decodeStrict(data, lk, &cfg); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// yaml.v3's type error: "line N: cannot unmarshal TAG `VALUE` into TYPE",
// VALUE being the first 10 bytes of the scalar (7 and "..." when longer).
var typeErrRE = regexp.MustCompile("(?s)^line ([0-9]+): cannot unmarshal (\\S+)(?: `(.*)`)? into (.+)$")

// decodeError rewrites yaml.v3's type errors to name the key path, and to
// hide the value on lines where a reference was expanded: it may be a
// secret.
func decodeError(err error, doc *yaml.Node, hidden map[int]bool) error {
	if err == nil {
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	paths := valuePaths(doc)
	errs := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		m := typeErrRE.FindStringSubmatch(msg)
		if m == nil {
			errs = append(errs, errors.New(msg))
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
		var b strings.Builder
		fmt.Fprintf(&b, "line %d: ", line)
		p := paths[lineKind{line, kind}]
		if len(p) == 1 {
			b.WriteString(p[0] + ": ")
		}
		switch {
		case kind != yaml.ScalarNode:
			fmt.Fprintf(&b, "a %s cannot be decoded into %s", map[yaml.Kind]string{yaml.MappingNode: "mapping", yaml.SequenceNode: "list"}[kind], into)
		case hidden[line]:
			fmt.Fprintf(&b, "the expanded value (%s, hidden) cannot be decoded into %s", tag, into)
		case slices.ContainsFunc(p, sensitivePath) || len(p) == 0:
			fmt.Fprintf(&b, "the value (%s, hidden: it may be a secret) cannot be decoded into %s", tag, into)
		default:
			fmt.Fprintf(&b, "%s `%s` cannot be decoded into %s", tag, value, into)
		}
		errs = append(errs, errors.New(b.String()))
	}
	return errors.Join(errs...)
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

// valuePaths maps each line to the key paths of the values of each kind
// that start on it.
func valuePaths(doc *yaml.Node) map[lineKind][]string {
	out := map[lineKind][]string{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		if path != "" {
			k := lineKind{n.Line, n.Kind}
			out[k] = append(out[k], path)
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
	walk(doc, "")
	return out
}
