// Package fanout builds auditpipe's outputs by name from configuration:
// the `outputs` list shared by the sidecar's YAML and the Fluent Bit
// plugin. Each entry names an output, its type, the events it takes
// (match), how it retries and how big its batches are; the type's own
// settings sit under a key named after the type:
//
//	outputs:
//	  - name: siem
//	    type: elasticsearch
//	    elasticsearch: {urls: ["https://es:9200"], api_key: "${ES_API_KEY}"}
//	  - name: security
//	    type: webhook
//	    match:
//	      - outcomes: [denied]
//	      - actions: ["audit_trail_webhook.*"]
//	    webhook: {url: "https://hooks.example.com/audit", secret: "${HOOK_SECRET}"}
//
// A Set is the built outputs with their Deliverers; both front doors hand
// events to it.
package fanout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/elasticsearch"
	"github.com/auditpipe/auditpipe/outputs/file"
	"github.com/auditpipe/auditpipe/outputs/kafka"
	"github.com/auditpipe/auditpipe/outputs/s3"
	"github.com/auditpipe/auditpipe/outputs/webhook"
)

// Types lists the output types, in documentation order.
func Types() []string {
	return []string{"kafka", "elasticsearch", "s3", "webhook", "file", "stdout"}
}

// OutputConfig is one entry of the outputs list.
type OutputConfig struct {
	// Name identifies the output in logs, metrics, dead letters and
	// `auditpipe dlq replay --output`. Required, unique; letters, digits,
	// '-' and '_'.
	Name string `yaml:"name"`
	// Type is one of Types(). Required.
	Type string `yaml:"type"`
	// Match selects the events this output receives. Default: all.
	Match outputs.Match `yaml:"match"`
	// Retry is the back-off for retryable failures.
	Retry outputs.RetryConfig `yaml:"retry"`
	// Batch sizes the batches the engine hands to the output. Defaults:
	// 500 events, 4 MiB, 200ms; for s3 10000 events, 32 MiB, 60s (fewer,
	// larger objects).
	Batch outputs.BatchConfig `yaml:"batch"`

	Kafka         *kafka.Config         `yaml:"kafka"`
	Elasticsearch *elasticsearch.Config `yaml:"elasticsearch"`
	S3            *s3.Config            `yaml:"s3"`
	Webhook       *webhook.Config       `yaml:"webhook"`
	File          *file.Config          `yaml:"file"`
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// DefaultBatch returns the batch defaults for an output type.
func DefaultBatch(typ string) outputs.BatchConfig {
	if typ == "s3" {
		return outputs.BatchConfig{MaxEvents: 10000, MaxBytes: 32 << 20, MaxWait: time.Minute}
	}
	return outputs.BatchConfig{MaxEvents: 500, MaxBytes: 4 << 20, MaxWait: 200 * time.Millisecond}
}

// section returns which type-specific keys are set, by YAML name.
func (c *OutputConfig) sections() []string {
	var s []string
	if c.Kafka != nil {
		s = append(s, "kafka")
	}
	if c.Elasticsearch != nil {
		s = append(s, "elasticsearch")
	}
	if c.S3 != nil {
		s = append(s, "s3")
	}
	if c.Webhook != nil {
		s = append(s, "webhook")
	}
	if c.File != nil {
		s = append(s, "file")
	}
	return s
}

// Validate checks one entry; errors name the key from the entry down
// (`kafka.brokers: ...`).
func (c *OutputConfig) Validate() error {
	var errs []error
	if !nameRE.MatchString(c.Name) {
		errs = append(errs, fmt.Errorf("name: %q must be letters, digits, '-' or '_'", c.Name))
	}
	if !slices.Contains(Types(), c.Type) {
		errs = append(errs, fmt.Errorf("type: %q is not one of %v", c.Type, Types()))
	}
	for _, s := range c.sections() {
		if s != c.Type {
			errs = append(errs, fmt.Errorf("%s: set, but type is %q", s, c.Type))
		}
	}
	if err := c.Match.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Retry.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("retry.%w", err))
	}
	if err := c.Batch.Validate(); err != nil {
		errs = append(errs, err)
	}
	var err error
	switch c.Type {
	case "kafka":
		err = need(c.Kafka, "kafka", func(k *kafka.Config) error { return k.Validate() })
	case "elasticsearch":
		err = need(c.Elasticsearch, "elasticsearch", func(k *elasticsearch.Config) error { return k.Validate() })
	case "s3":
		err = need(c.S3, "s3", func(k *s3.Config) error { return k.Validate() })
	case "webhook":
		err = need(c.Webhook, "webhook", func(k *webhook.Config) error { return k.Validate() })
	case "file":
		err = need(c.File, "file", func(k *file.Config) error { return k.Validate() })
	}
	if err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func need[T any](c *T, key string, validate func(*T) error) error {
	if c == nil {
		return fmt.Errorf("%s: required for type %s", key, key)
	}
	if err := validate(c); err != nil {
		return prefix(key+".", err)
	}
	return nil
}

// prefix puts p before the message of err and of each error it joins, so
// every line names its full key path.
func prefix(p string, err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, prefix(p, e))
		}
		return errors.Join(out...)
	}
	return fmt.Errorf("%s%w", p, err)
}

// Validate checks a whole outputs list; errors name the entry
// (`outputs[1] (siem): elasticsearch.urls: ...`).
func Validate(cfgs []OutputConfig) error {
	var errs []error
	seen := map[string]int{}
	for i := range cfgs {
		c := &cfgs[i]
		at := fmt.Sprintf("outputs[%d]", i)
		if c.Name != "" {
			at += " (" + c.Name + ")"
		}
		if err := c.Validate(); err != nil {
			errs = append(errs, prefix(at+": ", err))
		}
		if j, dup := seen[c.Name]; dup && c.Name != "" {
			errs = append(errs, fmt.Errorf("%s: name: %q already used by outputs[%d]", at, c.Name, j))
		}
		seen[c.Name] = i
	}
	return errors.Join(errs...)
}

// NewOutput builds the output an entry describes, without its Deliverer
// (deps.DeadLetters is not used).
func NewOutput(ctx context.Context, c *OutputConfig, deps Deps) (outputs.Output, error) {
	deps = deps.withDefaults()
	log := deps.Logger.With("output", c.Name, "type", c.Type)
	switch c.Type {
	case "kafka":
		return wrap(kafka.New(ctx, *c.Kafka, log))
	case "elasticsearch":
		return wrap(elasticsearch.New(ctx, *c.Elasticsearch, log))
	case "s3":
		return wrap(s3.New(ctx, *c.S3, log))
	case "webhook":
		wc := *c.Webhook
		if wc.Version == "" {
			wc.Version = deps.Version
		}
		return wrap(webhook.New(ctx, wc, log))
	case "file":
		return wrap(file.New(ctx, *c.File, log))
	case "stdout":
		return file.NewWriter(deps.Stdout), nil
	}
	return nil, fmt.Errorf("type: %q is not one of %v", c.Type, Types())
}

func wrap[T outputs.Output](o T, err error) (outputs.Output, error) {
	if err != nil {
		return nil, err
	}
	return o, nil
}

// Deps are what a Set needs from its host.
type Deps struct {
	Logger *slog.Logger
	// DeadLetters receives permanent failures; see outputs.DelivererConfig.
	DeadLetters outputs.DeadLetterer
	// Stdout is where the stdout output writes; os.Stdout when nil.
	Stdout io.Writer
	// Version is the program's version, for the webhook's User-Agent.
	Version string
}

func (d Deps) withDefaults() Deps {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Stdout == nil {
		d.Stdout = os.Stdout
	}
	return d
}

// Route is one built output: its configuration and its Deliverer.
type Route struct {
	*outputs.Deliverer
	Type  string
	Match outputs.Match
	Batch outputs.BatchConfig
}

// Set is the configured outputs, ready to deliver.
type Set struct {
	Routes    []*Route
	unmatched atomic.Int64
}

// Build validates cfgs and builds every output. With no entries, it builds
// one stdout output named "stdout", auditpipe's default. If one output
// fails to build, those already built are closed.
func Build(ctx context.Context, cfgs []OutputConfig, deps Deps) (*Set, error) {
	if len(cfgs) == 0 {
		cfgs = []OutputConfig{{Name: "stdout", Type: "stdout"}}
	}
	if err := Validate(cfgs); err != nil {
		return nil, err
	}
	deps = deps.withDefaults()
	s := &Set{}
	for i := range cfgs {
		c := &cfgs[i]
		out, err := NewOutput(ctx, c, deps)
		if err == nil {
			var d *outputs.Deliverer
			d, err = outputs.NewDeliverer(outputs.DelivererConfig{Name: c.Name, Output: out, Retry: c.Retry,
				DeadLetters: deps.DeadLetters, Logger: deps.Logger})
			if err == nil {
				s.Routes = append(s.Routes, &Route{Deliverer: d, Type: c.Type, Match: c.Match, Batch: c.Batch.Or(DefaultBatch(c.Type))})
				continue
			}
			out.Close(ctx)
		}
		s.Close(ctx)
		return nil, fmt.Errorf("outputs[%d] (%s): %w", i, c.Name, err)
	}
	return s, nil
}

// Route returns the output named name, or nil.
func (s *Set) Route(name string) *Route {
	for _, r := range s.Routes {
		if r.Name() == name {
			return r
		}
	}
	return nil
}

// Selects reports whether any output's match selects ev.
func (s *Set) Selects(ev *auditpipe.Event) bool {
	for _, r := range s.Routes {
		if r.Match.Matches(ev) {
			return true
		}
	}
	return false
}

// Unmatched counts events no output's match selected.
func (s *Set) Unmatched() int64 { return s.unmatched.Load() }

// Deliver hands events to every output whose match selects them, all
// outputs at once, and returns when each has delivered or dead-lettered
// its share, or given up. The error joins each output's failure; on error
// the caller should send the whole batch again later (outputs that already
// took it see repeated ids, which destinations that dedupe ignore).
func (s *Set) Deliver(ctx context.Context, events []auditpipe.Event) error {
	var wg sync.WaitGroup
	errs := make([]error, len(s.Routes))
	for i, r := range s.Routes {
		share := r.Match.Filter(events)
		if len(share) == 0 {
			continue
		}
		wg.Go(func() {
			if _, err := r.Deliver(ctx, share); err != nil {
				errs[i] = fmt.Errorf("output %s: %w", r.Name(), err)
			}
		})
	}
	var unmatched int64
	for i := range events {
		if !s.Selects(&events[i]) {
			unmatched++
		}
	}
	wg.Wait()
	s.unmatched.Add(unmatched)
	return errors.Join(errs...)
}

// Close closes every output.
func (s *Set) Close(ctx context.Context) error {
	var errs []error
	for _, r := range s.Routes {
		if err := r.Output().Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("output %s: close: %w", r.Name(), err))
		}
	}
	return errors.Join(errs...)
}
