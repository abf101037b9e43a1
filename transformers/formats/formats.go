// Package formats assembles the formats auditpipe ships into a registry,
// from the one configuration model the sidecar YAML and the Fluent Bit
// plugin keys share.
package formats

import (
	"fmt"

	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/alertmanager"
	"github.com/auditpipe/auditpipe/transformers/app"
	"github.com/auditpipe/auditpipe/transformers/auto"
	"github.com/auditpipe/auditpipe/transformers/k8s"
	"github.com/auditpipe/auditpipe/transformers/spacelift"
)

// Config configures every built-in format. The zero value is usable: every
// field has a documented default. Its two halves are declared once here
// and embedded where each front door reads them: Common at the top of the
// sidecar's file and of the plugin's Config file, Sections in each sidecar
// source and at the top of the plugin's Config file.
type Config struct {
	Common   `yaml:",inline"`
	Sections `yaml:",inline"`
}

// Common are the settings every format shares.
type Common struct {
	// Redact names the member names whose values never leave a
	// transformer. Default: the transformers' list (password, secret,
	// token, ...).
	Redact transformers.RedactConfig `yaml:"redact"`
	// Limits bound what decoding one payload may cost. Defaults: the
	// transformers' (8 MiB payload, depth 64, 10000 items, 1 MiB strings,
	// 10000 members per object or array, 500000 values per tree).
	Limits transformers.Limits `yaml:"limits"`
}

// Sections are the per-format settings, each read by its format and by
// auto.
type Sections struct {
	// Alertmanager configures the alertmanager format. Default: the
	// transformer's (alertname "audit").
	Alertmanager alertmanager.Config `yaml:"alertmanager"`
	// App configures the app format (yoq, Teabar, CloudEvents, generic).
	// Default: the transformer's (flavor auto).
	App app.Config `yaml:"app"`
	// K8s configures the k8s format. Default: the transformer's (stages
	// ResponseComplete and Panic).
	K8s k8s.Config `yaml:"k8s"`
}

// detectOrder is the order auto tries formats in: the shapes with the most
// distinctive markers first, so a looser shape never claims a stricter one.
// app is last: a generic mapping may match almost anything with an action.
var detectOrder = []string{k8s.Format, alertmanager.Format, spacelift.Format, app.Format}

// NewRegistry validates cfg and registers every built-in format plus auto.
func NewRegistry(cfg Config) (*transformers.Registry, error) {
	if err := cfg.Limits.Validate(); err != nil {
		return nil, err
	}
	red, err := transformers.NewRedactor(cfg.Redact)
	if err != nil {
		return nil, err
	}
	opts := transformers.Options{Limits: cfg.Limits, Redactor: red}
	reg := transformers.NewRegistry()
	must := func(name string, t transformers.Transformer, err error) error {
		if err != nil {
			return err
		}
		return reg.Register(name, t)
	}
	if err := must(spacelift.Format, spacelift.New(opts), nil); err != nil {
		return nil, err
	}
	am, err := alertmanager.New(cfg.Alertmanager, opts)
	if err := must(alertmanager.Format, am, err); err != nil {
		return nil, err
	}
	ap, err := app.New(cfg.App, opts)
	if err := must(app.Format, ap, err); err != nil {
		return nil, err
	}
	k, err := k8s.New(cfg.K8s, opts)
	if err := must(k8s.Format, k, err); err != nil {
		return nil, err
	}
	a, err := auto.FromRegistry(reg, opts, detectOrder...)
	if err != nil {
		return nil, fmt.Errorf("auto: %w", err)
	}
	if err := reg.Register(auto.Format, a); err != nil {
		return nil, err
	}
	return reg, nil
}
