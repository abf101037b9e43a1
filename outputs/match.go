package outputs

import (
	"errors"
	"fmt"
	"path"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/keypath"
)

// Rule selects events by their fields. Every non-empty field must match
// (AND); within a field, any listed value may (OR). An empty Rule matches
// every event.
type Rule struct {
	// SourceTypes are source.type values: spacelift, alertmanager, app, k8s.
	SourceTypes []string `yaml:"source_types"`
	// SourceNames are configured source names (source.name).
	SourceNames []string `yaml:"source_names"`
	// Actions are globs over the action (path.Match syntax:
	// "audit_trail_webhook.*", "secret_*").
	Actions []string `yaml:"actions"`
	// Outcomes are success, failure, denied, unknown.
	Outcomes []auditpipe.Outcome `yaml:"outcomes"`
	// Labels maps a label name to globs its value may match; a label the
	// event lacks matches only the glob "".
	Labels map[string][]string `yaml:"labels"`
}

// Match decides which events an output receives: an event matches when any
// of its rules does. A Match with no rules matches every event. In YAML a
// match is one rule (a mapping) or a list of rules:
//
//	match:                      # denied events and Spacelift security signals
//	  - outcomes: [denied]
//	  - actions: ["audit_trail_webhook.*"]
type Match []Rule

// UnmarshalYAML accepts a single rule as well as a list of rules.
func (m *Match) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		var r Rule
		if err := n.Decode(&r); err != nil {
			return err
		}
		*m = Match{r}
		return nil
	}
	var rs []Rule
	if err := n.Decode(&rs); err != nil {
		return err
	}
	*m = rs
	return nil
}

// Validate checks every glob and outcome, naming the bad one by its path.
func (m Match) Validate() error {
	var errs []error
	for i, r := range m {
		at := fmt.Sprintf("match[%d]", i)
		for j, g := range r.Actions {
			if _, err := path.Match(g, ""); err != nil {
				errs = append(errs, keypath.Errorf(fmt.Sprintf("%s.actions[%d]", at, j), "bad glob %q: %w", g, err))
			}
		}
		for j, o := range r.Outcomes {
			if !o.Valid() {
				errs = append(errs, keypath.Errorf(fmt.Sprintf("%s.outcomes[%d]", at, j), "%q is not one of %v", o, auditpipe.Outcomes()))
			}
		}
		for k, gs := range r.Labels {
			for j, g := range gs {
				if _, err := path.Match(g, ""); err != nil {
					errs = append(errs, keypath.Errorf(fmt.Sprintf("%s.labels.%s[%d]", at, k, j), "bad glob %q: %w", g, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// Matches reports whether ev is selected.
func (m Match) Matches(ev *auditpipe.Event) bool {
	if len(m) == 0 {
		return true
	}
	for i := range m {
		if m[i].matches(ev) {
			return true
		}
	}
	return false
}

func (r *Rule) matches(ev *auditpipe.Event) bool {
	if len(r.SourceTypes) > 0 && !slices.Contains(r.SourceTypes, ev.Source.Type) {
		return false
	}
	if len(r.SourceNames) > 0 && !slices.Contains(r.SourceNames, ev.Source.Name) {
		return false
	}
	if len(r.Outcomes) > 0 && !slices.Contains(r.Outcomes, ev.Outcome) {
		return false
	}
	if len(r.Actions) > 0 && !anyGlob(r.Actions, ev.Action) {
		return false
	}
	for k, gs := range r.Labels {
		if !anyGlob(gs, ev.Labels[k]) {
			return false
		}
	}
	return true
}

func anyGlob(globs []string, s string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, s); ok {
			return true
		}
	}
	return false
}

// Filter returns the events m selects, in order. It returns events itself
// when all match, so the common case of an output without a match copies
// nothing.
func (m Match) Filter(events []auditpipe.Event) []auditpipe.Event {
	if len(m) == 0 {
		return events
	}
	var out []auditpipe.Event
	for i := range events {
		if m.Matches(&events[i]) {
			out = append(out, events[i])
		}
	}
	if len(out) == len(events) {
		return events
	}
	return out
}
