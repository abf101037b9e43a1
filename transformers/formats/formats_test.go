package formats_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/formats"
	"github.com/auditpipe/auditpipe/transformers/transformertest"
)

func registry(t testing.TB) *transformers.Registry {
	reg, err := formats.NewRegistry(formats.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// TestAutoDetects runs seed payloads of every format through auto: it must
// pick the right format, say which field decided, and give exactly the
// events (same ids) the format itself gives.
func TestAutoDetects(t *testing.T) {
	reg := registry(t)
	auto, _ := reg.Get("auto")
	tests := []struct {
		file, format, decidedBy string
	}{
		{"../spacelift/testdata/seed_stack_create.json", "spacelift", "$.context.mutation"},
		{"../spacelift/testdata/seed_audit_trail_webhook_delete.json", "spacelift", "$.context.mutation"},
		{"../alertmanager/testdata/seed_completed.json", "alertmanager", "$.alerts"},
		{"../k8s/testdata/deployment_create.json", "k8s", "$.apiVersion"},
		{"../k8s/testdata/log_stages.ndjson", "k8s", "$.apiVersion"},
		{"../app/testdata/yoq_array.json", "app", "$[0].recorded_at"},
		{"../app/testdata/teabar_seed_example.json", "app", ""},
		{"../app/testdata/cloudevents_seed_completed.json", "app", "$.specversion"},
		{"../app/testdata/cloudevents_binary.json", "app", "header:ce-specversion"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			in := transformertest.Input(t, tt.file)
			got := transformertest.Run(t, auto, in)
			if got.Error != nil || len(got.Events) == 0 {
				t.Fatalf("auto: error %+v, %d events", got.Error, len(got.Events))
			}
			if got.Format != tt.format || (tt.decidedBy != "" && got.DecidedBy != tt.decidedBy) || got.DecidedBy == "" {
				t.Errorf("auto chose %s (decided by %q), want %s (%q)", got.Format, got.DecidedBy, tt.format, tt.decidedBy)
			}
			direct, _ := reg.Get(tt.format)
			want := transformertest.Run(t, direct, in)
			g, _ := json.Marshal(got.Events)
			w, _ := json.Marshal(want.Events)
			if !bytes.Equal(g, w) {
				t.Errorf("auto's events differ from %s's own", tt.format)
			}
		})
	}
}

func TestAutoRejectsUnknownShape(t *testing.T) {
	auto, _ := registry(t).Get("auto")
	_, err := transformers.Run(context.Background(), auto, transformers.Input{Body: []byte(`{"hello":"world"}`)})
	if err == nil || !strings.Contains(err.Error(), "known format") {
		t.Fatalf("err = %v, want an unsupported-payload error listing the formats", err)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	tests := map[string]formats.Config{
		"limits.max_depth":       {Common: formats.Common{Limits: transformers.Limits{MaxDepth: -1}}},
		"redact.keys[0]":         {Common: formats.Common{Redact: transformers.RedactConfig{Keys: []string{"--"}}}},
		"k8s.stages[0]":          {Sections: formats.Sections{K8s: k8sStages("Sometimes")}},
		"app.flavor":             {Sections: formats.Sections{App: appFlavor("cobol")}},
		"alertmanager.alertname": {Sections: formats.Sections{Alertmanager: alertname(" audit ")}},
	}
	for key, cfg := range tests {
		if _, err := formats.NewRegistry(cfg); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("NewRegistry: error %v must name %s", err, key)
		}
	}
}
