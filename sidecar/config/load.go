package config

import (
	"errors"
	"fmt"
	"os"

	"github.com/auditpipe/auditpipe/internal/yamlconf"
	"github.com/auditpipe/auditpipe/outputs/fanout"
	"github.com/auditpipe/auditpipe/outputs/standard"
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

// Decode reads the file's content the way Parse does, outputs' settings
// included, but applies no defaults and validates nothing: for tools that
// read some of the sections (the CLI's dlq commands and normalize
// --outputs need no sources).
func Decode(data []byte, env func(string) (string, bool)) (*Config, error) {
	return decode(data, yamlconf.Lookups{Env: env})
}

func decode(data []byte, lk yamlconf.Lookups) (*Config, error) {
	doc, err := yamlconf.Parse(data, lk)
	if err != nil {
		return nil, err
	}
	var cfg Config
	doc.Decode(&cfg)
	fanout.DecodeSettings(standard.Registry(), doc, cfg.Outputs)
	if err := doc.Err(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func parseWith(data []byte, lk yamlconf.Lookups) (*Config, error) {
	cfg, err := decode(data, lk)
	if err != nil {
		return nil, err
	}
	*cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
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
