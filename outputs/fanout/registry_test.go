package fanout_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/internal/yamlconf"
	"github.com/auditpipe/auditpipe/keypath"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/fanout"
	"github.com/auditpipe/auditpipe/outputs/file"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
)

// memory is an output type fanout has never heard of: a factory is all it
// takes.
type memoryConfig struct {
	Capacity int    `yaml:"capacity"`
	Label    string `yaml:"label"`
}

func (c memoryConfig) Validate() error {
	if c.Capacity < 1 {
		return keypath.Errorf("capacity", "must be at least 1, got %d", c.Capacity)
	}
	return nil
}

type memory struct {
	cfg   memoryConfig
	mu    sync.Mutex
	got   []auditpipe.Event
	sizes []int // of every Write
	// failFrom makes the Writes from this one on (1-based) fail; 0 never.
	failFrom int
}

func (m *memory) Write(_ context.Context, evs []auditpipe.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sizes = append(m.sizes, len(evs))
	if m.failFrom > 0 && len(m.sizes) >= m.failFrom {
		return errors.New("memory: full")
	}
	m.got = append(m.got, evs...)
	return nil
}

func (m *memory) Close(context.Context) error { return nil }

func registry(t *testing.T, built map[string]*memory) *outputs.Registry {
	t.Helper()
	reg, err := outputs.NewRegistry(
		outputs.NewFactory("memory", func() memoryConfig { return memoryConfig{Label: "default"} },
			func(_ context.Context, set outputs.Settings, c memoryConfig) (*memory, error) {
				m := &memory{cfg: c}
				built[set.Name] = m
				return m, nil
			}, outputs.WithDefaultBatch(outputs.BatchConfig{MaxEvents: 3})),
		file.NewStdoutFactory())
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func decode(t *testing.T, reg *outputs.Registry, src string) ([]fanout.OutputConfig, error) {
	t.Helper()
	doc, err := yamlconf.Parse([]byte(src), yamlconf.Lookups{Env: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Base    map[string]int        `yaml:"base"` // anchors
		Outputs []fanout.OutputConfig `yaml:"outputs"`
	}
	doc.Decode(&c)
	fanout.DecodeSettings(reg, doc, c.Outputs)
	return c.Outputs, doc.Err()
}

func TestAnyRegisteredType(t *testing.T) {
	built := map[string]*memory{}
	reg := registry(t, built)
	cfgs, err := decode(t, reg, `
base: &base {capacity: 2}
outputs:
  - name: m
    type: memory
    match: {outcomes: [denied]}
    memory: {capacity: 5}
  - name: aliased
    type: memory
    memory: *base
  - name: o
    type: stdout
`)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := cfgs[0].Settings.(*memoryConfig); !ok || *s != (memoryConfig{Capacity: 5, Label: "default"}) {
		t.Fatalf("settings = %#v, want the section decoded over the defaults", cfgs[0].Settings)
	}
	if cfgs[2].Settings != nil {
		t.Errorf("stdout settings = %#v", cfgs[2].Settings)
	}
	set, err := fanout.Build(context.Background(), reg, cfgs, fanout.Deps{Stdout: &strings.Builder{}})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close(context.Background())
	if err := set.Deliver(context.Background(), outputstest.Events(4)); err != nil {
		t.Fatal(err)
	}
	if got := len(built["m"].got); got != 1 {
		t.Errorf("memory output m got %d events, want the 1 denied one", got)
	}
	if got := built["aliased"].cfg.Capacity; got != 2 {
		t.Errorf("aliased section: capacity %d, want 2", got)
	}
	if b := set.Route("m").Batch; b.MaxEvents != 3 || b.MaxBytes != 0 {
		t.Errorf("batch = %+v, want the factory's default", b)
	}
}

func TestSettingsErrorsNameLineAndPath(t *testing.T) {
	reg := registry(t, map[string]*memory{})
	_, err := decode(t, reg, `
outputs:
  - name: m
    type: memory
    memory: {capacty: 5, label: [x]}
  - name: n
    type: memory
    memroy:
      capacity: 1
unknown: 1
`)
	want := []string{
		`line 5: outputs[0] (m).memory.capacty: unknown key (did you mean "capacity"?)`,
		`line 8: outputs[1] (n).memroy: unknown key (did you mean "memory"?)`,
		`line 10: unknown: unknown key`,
		"line 5: outputs[0] (m).memory.label: a list cannot be decoded into string",
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	var pe *keypath.Error
	if !errors.As(err, &pe) || pe.Line != 5 || pe.Path != "outputs[0] (m).memory.capacty" {
		t.Errorf("first error as data: %+v", pe)
	}
}

func TestValidateThroughTheFactory(t *testing.T) {
	reg := registry(t, map[string]*memory{})
	cfgs, err := decode(t, reg, `
outputs:
  - {name: m, type: memory, memory: {capacity: 0}}
  - {name: n, type: memory}
  - {name: o, type: stdout, memory: {capacity: 1}}
  - {name: p, type: kafka}
`)
	if err != nil {
		t.Fatal(err)
	}
	err = fanout.Validate(reg, cfgs)
	want := []string{
		"outputs[0] (m): memory.capacity: must be at least 1, got 0",
		"outputs[1] (n): memory: required for type memory",
		`outputs[2] (o): memory: set, but type is "stdout"`,
		`outputs[3] (p): type: "kafka" is not one of [memory stdout]`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	var entry *fanout.EntryError
	var pe *keypath.Error
	if !errors.As(err, &entry) || entry.Index != 0 || !errors.As(entry.Err, &pe) || pe.Path != "memory.capacity" {
		t.Errorf("first error as data: %+v, %+v", entry, pe)
	}
}

// TestSettingsWithoutDocument: entries decoded by yaml.v3 alone (no
// Document) have their section decoded when validated or built.
func TestSettingsWithoutDocument(t *testing.T) {
	built := map[string]*memory{}
	reg := registry(t, built)
	cfgs := parse(t, `
outputs:
  - {name: m, type: memory, memory: {capacity: 4}}
  - {name: n, type: memory, memory: {capacity: 1, colour: red}, memroy: {}}
`)
	err := fanout.Validate(reg, cfgs)
	for _, w := range []string{
		"outputs[1] (n): line 4: memory.colour: unknown key",
		`outputs[1] (n): line 4: memroy: unknown key (did you mean "memory"?)`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	set, err := fanout.Build(context.Background(), reg, cfgs[:1], fanout.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	set.Close(context.Background())
	if built["m"].cfg.Capacity != 4 {
		t.Errorf("built with %+v", built["m"].cfg)
	}
}
