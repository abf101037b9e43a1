package outputs_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/keypath"
	"github.com/auditpipe/auditpipe/outputs"
)

type memConfig struct {
	Capacity int `yaml:"capacity"`
}

func (c memConfig) Validate() error {
	if c.Capacity < 0 {
		return keypath.Errorf("capacity", "must not be negative")
	}
	return nil
}

type memOutput struct{ name string }

func (*memOutput) Write(context.Context, []auditpipe.Event) error { return nil }
func (*memOutput) Close(context.Context) error                    { return nil }

func newMem(_ context.Context, set outputs.Settings, c memConfig) (*memOutput, error) {
	if c.Capacity == 13 {
		return nil, errors.New("unlucky")
	}
	return &memOutput{name: set.Name}, nil
}

func TestNewFactory(t *testing.T) {
	batch := outputs.BatchConfig{MaxEvents: 7}
	f := outputs.NewFactory("memory", func() memConfig { return memConfig{Capacity: 10} }, newMem, outputs.WithDefaultBatch(batch))
	if f.Type() != "memory" || f.DefaultBatch() != batch {
		t.Fatalf("Type %q, DefaultBatch %+v", f.Type(), f.DefaultBatch())
	}
	def, ok := f.DefaultConfig().(*memConfig)
	if !ok || def.Capacity != 10 {
		t.Fatalf("DefaultConfig() = %#v, want a *memConfig holding the defaults", f.DefaultConfig())
	}
	if f.DefaultConfig() == f.DefaultConfig() {
		t.Error("DefaultConfig returns the same value twice; each decode needs its own")
	}
	out, err := f.Create(context.Background(), outputs.Settings{Name: "m"}, def)
	if err != nil || out.(*memOutput).name != "m" {
		t.Fatalf("Create = %v, %v", out, err)
	}
	def.Capacity = 13
	if out, err := f.Create(context.Background(), outputs.Settings{}, def); err == nil || out != nil {
		t.Errorf("failed Create = %#v, %v; want a nil Output (not a nil *memOutput) and the error", out, err)
	}
	if _, err := f.Create(context.Background(), outputs.Settings{}, memConfig{}); err == nil || !strings.Contains(err.Error(), "*outputs_test.memConfig") {
		t.Errorf("Create with a value of the wrong type: %v", err)
	}
	if _, err := f.Create(context.Background(), outputs.Settings{}, nil); err == nil {
		t.Error("Create without settings succeeded")
	}
}

func TestNewFactoryWithoutSettings(t *testing.T) {
	f := outputs.NewFactory[memConfig]("null", nil, newMem)
	if f.DefaultConfig() != nil {
		t.Errorf("DefaultConfig() = %#v, want nil: the type takes no settings", f.DefaultConfig())
	}
	if f.DefaultBatch() != outputs.DefaultBatch() || f.DefaultBatch().MaxWait != 200*time.Millisecond {
		t.Errorf("DefaultBatch() = %+v", f.DefaultBatch())
	}
	if _, err := f.Create(context.Background(), outputs.Settings{}, nil); err != nil {
		t.Error(err)
	}
}

func TestRegistry(t *testing.T) {
	mem := func(typ string) outputs.Factory { return outputs.NewFactory[memConfig](typ, nil, newMem) }
	r, err := outputs.NewRegistry(mem("b"), mem("a"))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Types(); len(got) != 2 || got[0] != "b" || got[1] != "a" {
		t.Errorf("Types() = %v, want registration order", got)
	}
	if f, ok := r.Factory("a"); !ok || f.Type() != "a" {
		t.Errorf("Factory(a) = %v, %v", f, ok)
	}
	if _, ok := r.Factory("c"); ok {
		t.Error("Factory(c) found")
	}
	for name, fs := range map[string][]outputs.Factory{
		"two factories of type \"a\"": {mem("a"), mem("a")},
		"factory 1 is nil":            {mem("a"), nil},
		"has no type name":            {mem("")},
		"no factories":                nil,
	} {
		if _, err := outputs.NewRegistry(fs...); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("NewRegistry: %v, want %q", err, name)
		}
	}
}
