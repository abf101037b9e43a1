package opensearch

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
	"github.com/auditpipe/auditpipe/testenv/elastictest"
)

// testSigV4 is what the signing emulation accepts.
var testSigV4 = elastictest.SigV4{Region: "eu-west-1", Service: "es", AccessKeyID: "AKIDAUDITPIPETEST", SecretAccessKey: "test-secret"}

func openSearch(t testing.TB, cfg elastictest.Config) *elastictest.Server {
	cfg.Flavor = elastictest.FlavorOpenSearch
	return elastictest.NewServerConfig(t, cfg)
}

func newOutput(t testing.TB, cfg Config) *Output {
	t.Helper()
	out, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = out.Close(context.Background()) })
	return out
}

func TestDelivery(t *testing.T) {
	s := openSearch(t, elastictest.Config{Username: "admin", Password: "Adm1n!pass"})
	out := newOutput(t, Config{URLs: []string{s.URL()}, Username: "admin", Password: "Adm1n!pass", Index: "audit-{source}"})
	evs := outputstest.Events(20)
	ctx := context.Background()
	if err := out.Write(ctx, evs); err != nil {
		t.Fatal(err)
	}
	// Sent again (a lost answer): 409s, counted as delivered, stored once.
	if err := out.Write(ctx, evs); err != nil {
		t.Fatalf("second write: %v", err)
	}
	if n := s.Count("audit-*"); n != len(evs) {
		t.Fatalf("%d documents, want %d", n, len(evs))
	}
	got := map[string]bool{}
	for _, h := range s.Docs("audit-*") {
		got[h.ID] = true
		var doc map[string]any
		if err := json.Unmarshal(h.Source, &doc); err != nil || doc["@timestamp"] == nil {
			t.Errorf("document %s is not ECS: %s", h.ID, h.Source)
		}
	}
	for _, id := range outputstest.IDs(evs) {
		if !got[id] {
			t.Errorf("event %s not stored under its id", id)
		}
	}
}

func TestWrongPasswordIsRetryable(t *testing.T) {
	s := openSearch(t, elastictest.Config{Username: "admin", Password: "right"})
	out := newOutput(t, Config{URLs: []string{s.URL()}, Username: "admin", Password: "wrong", MaxRetries: -1})
	err := out.Write(context.Background(), outputstest.Events(2))
	if err == nil || outputs.IsPermanent(err) || !strings.Contains(err.Error(), "check username and password") {
		t.Fatalf("Write = %v, want a retryable credentials error", err)
	}
}

func TestPartialFailure(t *testing.T) {
	s := openSearch(t, elastictest.Config{})
	out := newOutput(t, Config{URLs: []string{s.URL()}, Index: "audit"})
	ctx := context.Background()
	evs := outputstest.Events(6)

	// The first item is refused as a bad document: dead-lettered.
	s.RejectNextItems(1, http.StatusBadRequest)
	var pe *outputs.PartialError
	if err := out.Write(ctx, evs[:3]); !errors.As(err, &pe) || len(pe.Failures) != 1 ||
		pe.Failures[0].Index != 0 || !outputs.IsPermanent(pe.Failures[0].Err) {
		t.Fatalf("Write = %v, want event 0 failed permanently", err)
	}
	// The next is refused for a full queue: retried, then delivered.
	s.RejectNextItems(1, http.StatusTooManyRequests)
	if err := out.Write(ctx, evs[3:]); !errors.As(err, &pe) || len(pe.Failures) != 1 ||
		pe.Failures[0].Index != 0 || outputs.IsPermanent(pe.Failures[0].Err) {
		t.Fatalf("Write = %v, want event 3 failed retryably", err)
	}
	if err := out.Write(ctx, evs[3:4]); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if n := s.Count("audit"); n != 5 {
		t.Fatalf("%d documents, want 5 (all but the refused one)", n)
	}
	if _, ok := s.Doc("audit", evs[0].ID); ok {
		t.Error("the refused event was stored")
	}
}

func TestSigV4(t *testing.T) {
	for _, service := range []string{"es", "aoss"} {
		t.Run(service, func(t *testing.T) {
			sv := testSigV4
			sv.Service = service
			s := openSearch(t, elastictest.Config{SigV4: &sv})
			ctx := context.Background()
			evs := outputstest.Events(10)
			sig := SigV4Config{Region: sv.Region, Service: service, AccessKeyID: sv.AccessKeyID, SecretAccessKey: "not-the-secret"}
			bad := newOutput(t, Config{URLs: []string{s.URL()}, Index: "audit", AWSSigV4: sig, MaxRetries: -1})
			err := bad.Write(ctx, evs)
			switch {
			case err == nil:
				t.Fatal("wrong credentials accepted")
			case outputs.IsPermanent(err):
				t.Fatalf("wrong credentials are permanent (data would be dropped): %v", err)
			case !strings.Contains(err.Error(), "signature we calculated does not match") ||
				!strings.Contains(err.Error(), "AWS SigV4 for service "+service+" in eu-west-1"):
				t.Fatalf("unclear error: %v", err)
			}
			if n := s.Count("audit"); n != 0 {
				t.Fatalf("%d documents stored with a bad signature", n)
			}

			// Fixed: the same batch goes through, nothing lost.
			sig.SecretAccessKey = sv.SecretAccessKey
			good := newOutput(t, Config{URLs: []string{s.URL()}, Index: "audit", AWSSigV4: sig, OmitIDs: service == "aoss"})
			if err := good.Write(ctx, evs); err != nil {
				t.Fatal(err)
			}
			if n := s.Count("audit"); n != len(evs) {
				t.Fatalf("%d documents, want %d", n, len(evs))
			}
			if service == "aoss" {
				if _, ok := s.Doc("audit", evs[0].ID); ok {
					t.Error("omit_ids sent the event id as _id")
				}
			}
		})
	}
}

func TestSigV4WrongRegion(t *testing.T) {
	sv := testSigV4
	s := openSearch(t, elastictest.Config{SigV4: &sv})
	out := newOutput(t, Config{URLs: []string{s.URL()}, MaxRetries: -1,
		AWSSigV4: SigV4Config{Region: "us-east-1", AccessKeyID: sv.AccessKeyID, SecretAccessKey: sv.SecretAccessKey}})
	err := out.Write(context.Background(), outputstest.Events(1))
	if err == nil || outputs.IsPermanent(err) || !strings.Contains(err.Error(), "region") {
		t.Fatalf("Write = %v, want a retryable error naming the region", err)
	}
}

func TestBootstrapTemplate(t *testing.T) {
	s := openSearch(t, elastictest.Config{})
	out := newOutput(t, Config{URLs: []string{s.URL()}, Index: "audit-{source}", BootstrapTemplate: true})
	raw, ok := s.IndexTemplate("auditpipe-audit")
	if !ok {
		t.Fatal("no template installed")
	}
	if !strings.Contains(string(raw), `"flat_object"`) || strings.Contains(string(raw), `"flattened"`) {
		t.Errorf("template does not use flat_object: %s", raw)
	}
	if err := out.Write(context.Background(), outputstest.Events(3)); err != nil {
		t.Fatal(err)
	}
}

func TestDataStream(t *testing.T) {
	s := openSearch(t, elastictest.Config{})
	out := newOutput(t, Config{URLs: []string{s.URL()}, DataStream: "logs-auditpipe-default", BootstrapTemplate: true, OmitIDs: true})
	evs := outputstest.Events(4)
	if err := out.Write(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if n := s.Count("logs-auditpipe-default"); n != len(evs) {
		t.Fatalf("%d documents, want %d", n, len(evs))
	}
}

func TestWriteAfterClose(t *testing.T) {
	s := openSearch(t, elastictest.Config{})
	out := newOutput(t, Config{URLs: []string{s.URL()}})
	if err := out.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := out.Write(context.Background(), outputstest.Events(1)); !errors.Is(err, errClosed) {
		t.Fatalf("Write after Close = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{URLs: []string{"https://search-x.eu-west-1.es.amazonaws.com"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, tc := range []struct {
		key string
		cfg func(*Config)
	}{
		{"urls", func(c *Config) { c.URLs = nil }},
		{"urls[0]", func(c *Config) { c.URLs = []string{"ftp://x"} }},
		{"password", func(c *Config) { c.Password = "p" }},
		{"aws_sigv4.region", func(c *Config) { c.AWSSigV4.Service = "aoss" }},
		{"aws_sigv4.service", func(c *Config) { c.AWSSigV4 = SigV4Config{Region: "eu-west-1", Service: "s3"} }},
		{"aws_sigv4", func(c *Config) { c.AWSSigV4.Region = "eu-west-1"; c.Username = "u" }},
		{"aws_sigv4.secret_access_key", func(c *Config) { c.AWSSigV4 = SigV4Config{Region: "eu-west-1", AccessKeyID: "AKID"} }},
		{"index", func(c *Config) { c.Index = "a-{nope" }},
		{"index", func(c *Config) { c.Index = "a"; c.DataStream = "b" }},
		{"data_stream", func(c *Config) { c.DataStream = "Logs" }},
		{"template_name", func(c *Config) { c.TemplateName = "_x" }},
		{"timeout", func(c *Config) { c.Timeout = -1 }},
		{"max_retries", func(c *Config) { c.MaxRetries = -2 }},
		{"max_bulk_bytes", func(c *Config) { c.MaxBulkBytes = -1 }},
	} {
		c := ok
		tc.cfg(&c)
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.key+":") {
			t.Errorf("%s: Validate = %v, want an error on %s", tc.key, err, tc.key)
		}
		if _, err := New(context.Background(), c, nil); err == nil {
			t.Errorf("%s: New accepted it", tc.key)
		}
	}
}

func BenchmarkWrite(b *testing.B) {
	benchWrite(b, elastictest.Config{}, Config{})
}

// BenchmarkWriteSigV4 adds signing (and the emulation's checking) to each
// request.
func BenchmarkWriteSigV4(b *testing.B) {
	sv := testSigV4
	benchWrite(b, elastictest.Config{SigV4: &sv}, Config{AWSSigV4: SigV4Config{
		Region: sv.Region, AccessKeyID: sv.AccessKeyID, SecretAccessKey: sv.SecretAccessKey}})
}

func benchWrite(b *testing.B, scfg elastictest.Config, cfg Config) {
	const batch = 100
	s := openSearch(b, scfg)
	cfg.URLs, cfg.Index = []string{s.URL()}, "bench-{source}"
	out := newOutput(b, cfg)
	evs := outputstest.Events(batch)
	ids := outputstest.IDs(evs)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Fresh ids, so the server stores documents rather than answering
		// 409, and a clean server now and then so it does not grow.
		b.StopTimer()
		if i%500 == 0 {
			_ = s.Close()
			scfg.Addr, scfg.Flavor = s.Addr(), elastictest.FlavorOpenSearch
			var err error
			if s, err = elastictest.Start(scfg); err != nil {
				b.Fatal(err)
			}
		}
		suffix := "-" + strconv.Itoa(i)
		for j := range evs {
			evs[j].ID = ids[j] + suffix
		}
		b.StartTimer()
		if err := out.Write(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
	b.StopTimer()
	_ = s.Close()
}
