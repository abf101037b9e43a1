package fanout

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"gopkg.in/yaml.v3"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/internal/yamlconf"
	"github.com/auditpipe/auditpipe/keypath"
	"github.com/auditpipe/auditpipe/outputs"
)

// OutputConfig is one entry of the outputs list.
type OutputConfig struct {
	// Name identifies the output in logs, metrics, dead letters and
	// `auditpipe dlq replay --output`. Required, unique; letters, digits,
	// '-' and '_'.
	Name string `yaml:"name"`
	// Type is one of the registry's types. Required.
	Type string `yaml:"type"`
	// Match selects the events this output receives. Default: all.
	Match outputs.Match `yaml:"match"`
	// Retry is the back-off for retryable failures.
	Retry outputs.RetryConfig `yaml:"retry"`
	// Batch sizes the batches the engine hands to the output. Defaults:
	// the type's (500 events, 4 MiB, 200ms; for s3 10000 events, 32 MiB,
	// 60s: fewer, larger objects).
	Batch outputs.BatchConfig `yaml:"batch"`
	// Integrity: false keeps this output out of tamper evidence when the
	// host turns it on (an output whose destination rewrites events, or
	// stdout while debugging). Default: sealed whenever the host seals.
	Integrity *bool `yaml:"integrity"`

	// Settings are the type's own settings, the pointer its factory's
	// DefaultConfig returns (*kafka.Config), decoded from the key named
	// after the type (`kafka: {...}`) by DecodeSettings, or set in code.
	// Nil for a type without settings (stdout). When nil, Validate and
	// Build decode them from Sections.
	Settings outputs.Config `yaml:"-"`
	// Sections holds the entry's other keys as written: the type's
	// settings under its name, and any other key, which is an error.
	Sections map[string]yaml.Node `yaml:",inline"`
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// EntryError is a problem with one entry of the outputs list. Err names
// the key from the entry down, usually as a *keypath.Error.
type EntryError struct {
	Index int
	Name  string
	Err   error
}

// Error renders `outputs[1] (siem): elasticsearch.urls: ...`.
func (e *EntryError) Error() string {
	at := fmt.Sprintf("outputs[%d]", e.Index)
	if e.Name != "" {
		at += " (" + e.Name + ")"
	}
	return at + ": " + e.Err.Error()
}

func (e *EntryError) Unwrap() error { return e.Err }

// DecodeSettings decodes the settings of each entry of cfgs, the list doc
// holds under its top-level key "outputs", into Settings: the key named
// after the entry's type is decoded into the type's DefaultConfig. Every
// type's section is checked as strictly as doc.Decode checks the rest
// (unknown keys, key paths, hidden values; Validate refuses a section of
// another type), and a key that is no type's is an unknown key: the
// problems are doc's, reported by doc.Err with the others. Call it after
// doc.Decode filled cfgs; a list Decode could not read is left to
// Decode's problems.
func DecodeSettings(reg *outputs.Registry, doc *yamlconf.Document, cfgs []OutputConfig) {
	list := doc.Value("outputs")
	if list == nil || list.Kind != yaml.SequenceNode || len(list.Content) != len(cfgs) {
		return
	}
	for i := range cfgs {
		if s := decodeSettings(reg, doc, list.Content[i], &cfgs[i]); s != nil {
			cfgs[i].Settings = s
		}
	}
}

// decodeSettings checks the entry n of doc, which decoded into c, and
// returns c's settings (nil when its type takes none or its section is
// missing, null or wrong).
func decodeSettings(reg *outputs.Registry, doc *yamlconf.Document, n *yaml.Node, c *OutputConfig) outputs.Config {
	var fields []yamlconf.Field
	for _, k := range entryKeys() {
		fields = append(fields, yamlconf.Field{Key: k})
	}
	for _, t := range reg.Types() {
		f, _ := reg.Factory(t)
		if def := f.DefaultConfig(); def != nil {
			fields = append(fields, yamlconf.Field{Key: t, Into: def})
		}
	}
	doc.DecodeMapping(n, fields)
	f, ok := reg.Factory(c.Type)
	if !ok {
		return nil
	}
	def := f.DefaultConfig()
	sec, set := c.Sections[c.Type]
	if def == nil || !set || !isSet(&sec) {
		return nil
	}
	// Decoded again from what yaml.v3 kept, so that merge keys and
	// aliases apply as they did to the rest of the entry. An error here
	// was reported by DecodeMapping when it first met the section (a
	// mapping merged into several entries is checked once).
	if err := sec.Decode(def); err != nil {
		return nil
	}
	return def
}

// entryKeys are the keys OutputConfig decodes itself, in declaration
// order (so that an unknown key's suggestion is the one it always was).
func entryKeys() []string {
	var keys []string
	t := reflect.TypeFor[OutputConfig]()
	for i := range t.NumField() {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}

// isSet reports whether a section was given: a null one is as absent.
func isSet(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n != nil && n.ShortTag() != "!!null"
}

// settings returns c's settings: Settings, or else those its Sections
// hold (the entry was decoded by yaml.v3 alone, or built in code), checked
// and decoded as DecodeSettings does, without line numbers.
func (c *OutputConfig) settings(reg *outputs.Registry) (outputs.Config, error) {
	if c.Settings != nil || len(c.Sections) == 0 {
		return c.Settings, nil
	}
	m := sectionsNode(c.Sections)
	doc := yamlconf.FromNode(m)
	s := decodeSettings(reg, doc, m, c)
	return s, doc.Err()
}

// sectionsNode rebuilds a mapping of the sections, in the order they were
// written.
func sectionsNode(sections map[string]yaml.Node) *yaml.Node {
	keys := make([]string, 0, len(sections))
	for k := range sections {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		x, y := sections[a], sections[b]
		return cmp.Or(cmp.Compare(x.Line, y.Line), cmp.Compare(x.Column, y.Column), strings.Compare(a, b))
	})
	m := &yaml.Node{Kind: yaml.MappingNode}
	for _, k := range keys {
		v := sections[k]
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k, Line: v.Line}, &v)
	}
	return m
}

// validate checks one entry; errors name the key from the entry down
// (`kafka.brokers: ...`).
func (c *OutputConfig) validate(reg *outputs.Registry) error {
	var errs []error
	if !nameRE.MatchString(c.Name) {
		errs = append(errs, keypath.Errorf("name", "%q must be letters, digits, '-' or '_'", c.Name))
	}
	f, known := reg.Factory(c.Type)
	if !known {
		errs = append(errs, keypath.Errorf("type", "%q is not one of %v", c.Type, reg.Types()))
	}
	for _, t := range reg.Types() {
		if sec, ok := c.Sections[t]; ok && t != c.Type && isSet(&sec) {
			errs = append(errs, keypath.Errorf(t, "set, but type is %q", c.Type))
		}
	}
	if err := c.Match.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Retry.Validate(); err != nil {
		errs = append(errs, keypath.Under("retry", err))
	}
	if err := c.Batch.Validate(); err != nil {
		errs = append(errs, err)
	}
	if known && f.DefaultConfig() != nil {
		switch s, err := c.settings(reg); {
		case err != nil:
			errs = append(errs, err)
		case s == nil:
			errs = append(errs, keypath.Errorf(c.Type, "required for type %s", c.Type))
		default:
			errs = append(errs, keypath.Under(c.Type, s.Validate()))
		}
	}
	return errors.Join(errs...)
}

// Validate checks a whole outputs list against the types of reg; each
// error is an *EntryError naming the entry and the key
// (`outputs[1] (siem): elasticsearch.urls: ...`).
func Validate(reg *outputs.Registry, cfgs []OutputConfig) error {
	var errs []error
	seen := map[string]int{}
	for i := range cfgs {
		c := &cfgs[i]
		for _, err := range split(c.validate(reg)) {
			errs = append(errs, &EntryError{Index: i, Name: c.Name, Err: err})
		}
		if j, dup := seen[c.Name]; dup && c.Name != "" {
			errs = append(errs, &EntryError{Index: i, Name: c.Name, Err: keypath.Errorf("name", "%q already used by outputs[%d]", c.Name, j)})
		}
		seen[c.Name] = i
	}
	return errors.Join(errs...)
}

// split returns the errors err joins, one by one.
func split(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, split(e)...)
		}
		return out
	}
	return []error{err}
}

// NewOutput builds the output an entry describes with its type's factory
// in reg, without its Deliverer (deps.DeadLetters is not used).
func NewOutput(ctx context.Context, reg *outputs.Registry, c *OutputConfig, deps Deps) (outputs.Output, error) {
	deps = deps.withDefaults()
	f, ok := reg.Factory(c.Type)
	if !ok {
		return nil, keypath.Errorf("type", "%q is not one of %v", c.Type, reg.Types())
	}
	s, err := c.settings(reg)
	if err != nil {
		return nil, err
	}
	log := deps.Logger.With("output", c.Name, "type", c.Type)
	return f.Create(ctx, outputs.Settings{Name: c.Name, Logger: log, Version: deps.Version, Stdout: deps.Stdout}, s)
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
	// Unsealed is set by `integrity: false`.
	Unsealed bool
}

// Deliver delivers events in slices of at most Batch.MaxEvents, one
// after another. The sidecar reads batches of that size from its queue;
// the Fluent Bit plugin hands over a whole chunk (thousands of records),
// and an output encodes and holds all it is given until the destination
// answers, so slicing is what keeps the plugin's memory at one batch per
// flush instead of one chunk. A slice that is not delivered ends the call:
// its events and those of the slices after it are the
// *outputs.UndeliveredError's.
func (r *Route) Deliver(ctx context.Context, events []auditpipe.Event) (outputs.Report, error) {
	n := r.Batch.MaxEvents
	if n <= 0 || len(events) <= n {
		return r.Deliverer.Deliver(ctx, events)
	}
	var total outputs.Report
	for start := 0; start < len(events); start += n {
		end := min(start+n, len(events))
		rep, err := r.Deliverer.Deliver(ctx, events[start:end])
		total.Delivered += rep.Delivered
		total.DeadLettered += rep.DeadLettered
		total.Attempts += rep.Attempts
		total.Retried += rep.Retried
		if err != nil {
			var ue *outputs.UndeliveredError
			if errors.As(err, &ue) {
				ue.Events = append(ue.Events, events[end:]...)
			}
			return total, err
		}
	}
	return total, nil
}

// Set is the configured outputs, ready to deliver.
type Set struct {
	Routes    []*Route
	unmatched atomic.Int64
}

// Build validates cfgs and builds every output with its type's factory in
// reg. With no entries, it builds one stdout output named "stdout",
// auditpipe's default. If one output fails to build, those already built
// are closed; the error is an *EntryError.
func Build(ctx context.Context, reg *outputs.Registry, cfgs []OutputConfig, deps Deps) (*Set, error) {
	if len(cfgs) == 0 {
		cfgs = []OutputConfig{{Name: "stdout", Type: "stdout"}}
	}
	if err := Validate(reg, cfgs); err != nil {
		return nil, err
	}
	deps = deps.withDefaults()
	s := &Set{}
	for i := range cfgs {
		c := &cfgs[i]
		out, err := NewOutput(ctx, reg, c, deps)
		if err == nil {
			var d *outputs.Deliverer
			d, err = outputs.NewDeliverer(outputs.DelivererConfig{Name: c.Name, Output: out, Retry: c.Retry,
				DeadLetters: deps.DeadLetters, Logger: deps.Logger})
			if err == nil {
				f, _ := reg.Factory(c.Type)
				s.Routes = append(s.Routes, &Route{Deliverer: d, Type: c.Type, Match: c.Match, Batch: c.Batch.Or(f.DefaultBatch()),
					Unsealed: c.Integrity != nil && !*c.Integrity})
				continue
			}
			out.Close(ctx)
		}
		s.Close(ctx)
		return nil, &EntryError{Index: i, Name: c.Name, Err: err}
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
