package config

import (
	"reflect"

	"gopkg.in/yaml.v3"

	"github.com/auditpipe/auditpipe/internal/yamlconf"
)

// The decoding engine moved to internal/yamlconf; these keep this
// package's tests reading as they did.

type lookups struct {
	env      func(string) (string, bool)
	readFile func(string) ([]byte, error)
}

func parse(data []byte, lk lookups) (*Config, error) {
	return parseWith(data, yamlconf.Lookups{Env: lk.env, ReadFile: lk.readFile})
}

func checkKnownKeys(n *yaml.Node, t reflect.Type) error { return yamlconf.CheckKnownKeys(n, t) }
