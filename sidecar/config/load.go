package config

import (
	"errors"
	"fmt"
	"os"

	"github.com/auditpipe/auditpipe/internal/yamlconf"
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
	return parseWith(data, yamlconf.Lookups{Env: env})
}

// Decode reads a YAML document holding some of the configuration's
// sections into v, a pointer to a struct, the way Parse reads the whole
// file: references expanded, one document, every key known to v's type
// (an unknown one is an error naming its line and key path), and no
// substituted value in an error. Nothing is defaulted or validated: that
// is the caller's, for the sections it reads. The Fluent Bit plugin's
// Config file and the CLI's output files are read with it.
func Decode(data []byte, env func(string) (string, bool), v any) error {
	return yamlconf.Decode(data, yamlconf.Lookups{Env: env}, v)
}

func parseWith(data []byte, lk yamlconf.Lookups) (*Config, error) {
	doc, err := yamlconf.Parse(data, lk)
	if err != nil {
		return nil, err
	}
	var cfg Config
	doc.Decode(&cfg)
	if err := doc.Err(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// prefixAll puts p before the message of err and of each error it joins.
func prefixAll(p string, err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, prefixAll(p, e))
		}
		return errors.Join(out...)
	}
	return fmt.Errorf("%s%w", p, err)
}
