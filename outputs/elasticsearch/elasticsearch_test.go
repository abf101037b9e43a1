package elasticsearch

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
	"github.com/auditpipe/auditpipe/testenv/elastictest"
)

// Cases of the suite that need elastictest's knobs or settings.

func testItemsRejected(t *testing.T, p *peer) {
	cfg := p.config()
	out := newOutput(t, cfg)
	cases := []struct {
		name          string
		status        int
		permanent     bool
		errorContains string
	}{
		{"429 retried", http.StatusTooManyRequests, false, "es_rejected_execution_exception"},
		{"503 retried", http.StatusServiceUnavailable, false, "unavailable_shards_exception"},
		{"403 retried", http.StatusForbidden, false, "credentials rejected"},
		{"400 dead-lettered", http.StatusBadRequest, true, "document_parsing_exception"},
	}
	for k, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evs := make([]auditpipe.Event, 10)
			for i := range evs {
				evs[i] = outputstest.Event(100*k + i)
			}
			// One attempt: exactly the rejected items fail, as the status says.
			p.emu.RejectNextItems(3, tc.status)
			err := out.Write(context.Background(), evs)
			var pe *outputs.PartialError
			if !errors.As(err, &pe) || len(pe.Failures) != 3 {
				t.Fatalf("Write = %v, want 3 failed events", err)
			}
			for i, f := range pe.Failures {
				if f.Index != i || outputs.IsPermanent(f.Err) != tc.permanent || !strings.Contains(f.Err.Error(), tc.errorContains) {
					t.Errorf("failure %d: index %d, %v (permanent %v)", i, f.Index, f.Err, outputs.IsPermanent(f.Err))
				}
			}

			// Through the Deliverer: only those are re-sent or dead-lettered.
			for i := range evs {
				evs[i] = outputstest.Event(100*k + 50 + i)
			}
			before := p.emu.Stats().BulkItems
			p.emu.RejectNextItems(3, tc.status)
			dlq := &outputstest.Letters{}
			rep := deliver(t, deliverer(t, out, dlq, outputs.RetryConfig{}), evs)
			items := p.emu.Stats().BulkItems - before
			if tc.permanent {
				if rep.Delivered != 7 || rep.DeadLettered != 3 || rep.Retried != 0 || items != 10 {
					t.Errorf("report %+v, %d items sent; want 7 delivered, 3 dead-lettered, 10 items", rep, items)
				}
				if got, want := dlq.IDs(t), sorted(outputstest.IDs(evs[:3])); !slices.Equal(got, want) {
					t.Errorf("dead-lettered %v, want %v", got, want)
				}
			} else if rep.Delivered != 10 || rep.Retried != 3 || rep.DeadLettered != 0 || items != 13 {
				t.Errorf("report %+v, %d items sent; want 10 delivered after re-sending 3 (13 items)", rep, items)
			}
			for i := range evs {
				_, stored := p.emu.Doc(p.prefix+"-"+evs[i].Source.Type+"-2026.11.21", evs[i].ID)
				if want := !tc.permanent || i >= 3; stored != want {
					t.Errorf("event %d stored = %v, want %v", i, stored, want)
				}
			}
		})
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func testRequestFailures(t *testing.T, p *peer) {
	cases := []struct {
		name       string
		maxRetries int
		fail       int // requests failed in a row
		status     int
		wantErr    bool
		permanent  bool
	}{
		{"503 absorbed by the client's retries", 0, 1, http.StatusServiceUnavailable, false, false},
		{"429 absorbed by the client's retries", 0, 2, http.StatusTooManyRequests, false, false},
		{"503 beyond the client's retries", 0, 3, http.StatusServiceUnavailable, true, false},
		{"client retries off", -1, 1, http.StatusTooManyRequests, true, false},
		{"400 for the request", 0, 1, http.StatusBadRequest, true, true},
	}
	for k, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := p.config()
			cfg.MaxRetries = tc.maxRetries
			out := newOutput(t, cfg)
			evs := make([]auditpipe.Event, 5)
			for i := range evs {
				evs[i] = outputstest.Event(100*k + i)
			}
			p.emu.FailNextRequests(tc.fail, tc.status)
			err := out.Write(context.Background(), evs)
			p.emu.FailNextRequests(0, 0)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Write = %v, want error %v", err, tc.wantErr)
			}
			if err == nil {
				return
			}
			var se *outputs.StatusError
			var pe *outputs.PartialError
			if !errors.As(err, &se) || se.Code != tc.status || errors.As(err, &pe) || outputs.IsPermanent(err) != tc.permanent {
				t.Errorf("Write = %v (%T), want a whole-batch HTTP %d error, permanent %v", err, err, tc.status, tc.permanent)
			}
			if !tc.permanent {
				if err := out.Write(context.Background(), evs); err != nil {
					t.Errorf("Write after the fault: %v", err)
				}
			}
		})
	}
	t.Run("Deliverer rides out a burst", func(t *testing.T) {
		out := newOutput(t, p.config())
		evs := outputstest.Events(10)
		p.emu.FailNextRequests(7, http.StatusServiceUnavailable)
		rep := deliver(t, deliverer(t, out, nil, outputs.RetryConfig{}), evs)
		if rep.Delivered != 10 || rep.Attempts < 3 {
			t.Errorf("report %+v", rep)
		}
		if n := p.emu.Count(p.prefix + "-*"); n < 10 {
			t.Errorf("%d documents, want at least 10", n)
		}
	})
}

func testSlowServer(t *testing.T, p *peer) {
	cases := []struct {
		name      string
		timeout   time.Duration // the output's
		ctxTime   time.Duration // the attempt's
		errSubstr string
	}{
		{"request timeout", 100 * time.Millisecond, time.Minute, "no answer within timeout 100ms"},
		{"attempt deadline", time.Minute, 100 * time.Millisecond, "context deadline exceeded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			cfg := p.config()
			cfg.Timeout = tc.timeout
			out, err := New(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			evs := outputstest.Events(5)
			p.emu.Delay(time.Hour)
			ctx, cancel := context.WithTimeout(context.Background(), tc.ctxTime)
			err = out.Write(ctx, evs)
			cancel()
			p.emu.Delay(0)
			if err == nil || outputs.IsPermanent(err) || !strings.Contains(err.Error(), tc.errSubstr) {
				t.Fatalf("Write = %v, want a retryable error with %q", err, tc.errSubstr)
			}
			if err := out.Write(context.Background(), evs); err != nil {
				t.Errorf("Write once the server is fast again: %v", err)
			}
			if err := out.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			outputstest.CheckNoLeak(t, 10*time.Second, base)
		})
	}
}

func testDownAtStart(t *testing.T, p *peer) {
	addr := outputstest.FreeAddr(t)

	cfg := p.config()
	cfg.URLs = []string{"http://" + addr}
	cfg.BootstrapTemplate = true
	cfg.Timeout = 2 * time.Second
	out := newOutput(t, cfg) // the template fails: logged, not fatal
	d := deliverer(t, out, nil, outputs.RetryConfig{})
	evs := outputstest.Events(10)
	type result struct {
		rep outputs.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rep, err := d.Deliver(ctx, evs)
		done <- result{rep, err}
	}()
	outputstest.Eventually(t, 10*time.Second, "failed attempts", func() bool { return d.Stats().FailedAttempts >= 2 })
	if h := d.Health(); h == nil || !strings.Contains(h.Error(), "index template") {
		t.Errorf("Health() = %v, want the template bootstrap's connection error", h)
	}
	srv, err := elastictest.Start(elastictest.Config{Addr: addr, APIKeys: []string{testAPIKey}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	r := <-done
	if r.err != nil || r.rep.Delivered != 10 {
		t.Fatalf("Deliver = %+v, %v", r.rep, r.err)
	}
	if n := srv.Count(p.prefix + "-*"); n != 10 {
		t.Errorf("%d documents, want 10", n)
	}
	if _, ok := srv.IndexTemplate(p.prefix); !ok {
		t.Error("the index template was not installed before the documents")
	}
	if d.Health() != nil {
		t.Errorf("Health() = %v after delivery", d.Health())
	}
}

func testSplitBulk(t *testing.T, p *peer) {
	cfg := p.config()
	cfg.MaxBulkBytes = 4096
	cfg.MaxRetries = -1
	out := newOutput(t, cfg)
	evs := outputstest.Events(20)
	before := p.emu.Stats().BulkRequests
	if err := out.Write(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if n := p.emu.Stats().BulkRequests - before; n < 5 {
		t.Errorf("%d bulk requests for 20 events of ~1.4 KiB under max_bulk_bytes 4096", n)
	}
	if n := p.emu.Count(p.prefix + "-*"); n != 20 {
		t.Errorf("%d documents, want 20", n)
	}

	// The first request fails as a whole: its events fail, the others
	// are delivered.
	more := make([]auditpipe.Event, 20)
	for i := range more {
		more[i] = outputstest.Event(1000 + i)
	}
	p.emu.FailNextRequests(1, http.StatusServiceUnavailable)
	err := out.Write(context.Background(), more)
	var pe *outputs.PartialError
	if !errors.As(err, &pe) || len(pe.Failures) == 0 || len(pe.Failures) >= 20 {
		t.Fatalf("Write = %v, want the first request's events failed", err)
	}
	for i, f := range pe.Failures {
		if f.Index != i || outputs.IsPermanent(f.Err) {
			t.Errorf("failure %d: %+v", i, f)
		}
	}
	if n := p.emu.Count(p.prefix + "-*"); n != 40-len(pe.Failures) {
		t.Errorf("%d documents, want %d", n, 40-len(pe.Failures))
	}

	// One document larger than the limit goes alone.
	big := outputstest.Event(2000)
	big.Message = strings.Repeat("x", 8192)
	if err := out.Write(context.Background(), []auditpipe.Event{outputstest.Event(2001), big, outputstest.Event(2002)}); err != nil {
		t.Errorf("Write with a large event: %v", err)
	}
}

func testTLS(t *testing.T, p *peer) {
	s := elastictest.NewServerConfig(t, elastictest.Config{TLS: true, APIKeys: []string{testAPIKey}})
	fp := s.CertificateFingerprint()
	var colons []string
	for i := 0; i < len(fp); i += 2 {
		colons = append(colons, strings.ToUpper(fp[i:i+2]))
	}
	cases := []struct {
		name    string
		set     func(*Config)
		wantErr string
	}{
		{"ca_file", func(c *Config) { c.TLS.CAFile = s.CAFile() }, ""},
		{"ca_fingerprint", func(c *Config) { c.CAFingerprint = fp }, ""},
		{"ca_fingerprint with colons", func(c *Config) { c.CAFingerprint = strings.Join(colons, ":") }, ""},
		{"ca_file and ca_fingerprint", func(c *Config) { c.TLS.CAFile = s.CAFile(); c.CAFingerprint = fp }, ""},
		{"insecure_skip_verify", func(c *Config) { c.TLS.InsecureSkipVerify = true }, ""},
		{"wrong fingerprint", func(c *Config) { c.CAFingerprint = strings.Repeat("ab", 32) }, "ca_fingerprint"},
		{"untrusted", func(c *Config) {}, "certificate"},
	}
	for k, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := p.config()
			cfg.URLs = []string{s.URL()}
			tc.set(&cfg)
			out := newOutput(t, cfg)
			err := out.Write(context.Background(), []auditpipe.Event{outputstest.Event(k)})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Write = %v", err)
			case tc.wantErr != "" && (err == nil || outputs.IsPermanent(err) || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Write = %v, want a retryable error about %s", err, tc.wantErr)
			}
		})
	}
}

func testBasicAuth(t *testing.T, p *peer) {
	s := elastictest.NewServerConfig(t, elastictest.Config{Username: "elastic", Password: "s3cret"})
	for _, tc := range []struct {
		name, password string
		ok             bool
	}{{"right password", "s3cret", true}, {"wrong password", "guess", false}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := p.config()
			cfg.URLs, cfg.APIKey, cfg.Username, cfg.Password = []string{s.URL()}, "", "elastic", tc.password
			out := newOutput(t, cfg)
			err := out.Write(context.Background(), outputstest.Events(3))
			if tc.ok != (err == nil) || (err != nil && (outputs.IsPermanent(err) || !strings.Contains(err.Error(), "credentials rejected"))) {
				t.Errorf("Write = %v", err)
			}
			if strings.Contains(errString(err), tc.password) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func testConcurrentWrites(t *testing.T, p *peer) {
	out := newOutput(t, p.config())
	evs := outputstest.Events(400)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			errs <- out.Write(context.Background(), evs[w*50:(w+1)*50])
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := p.emu.Count(p.prefix + "-*"); n != 400 {
		t.Errorf("%d documents, want 400", n)
	}
}

func testUnknownPipeline(t *testing.T, p *peer) {
	cfg := p.config()
	cfg.Pipeline = "missing"
	out := newOutput(t, cfg)
	dlq := &outputstest.Letters{}
	rep := deliver(t, deliverer(t, out, dlq, outputs.RetryConfig{}), outputstest.Events(3))
	dead := dlq.All()
	if rep.DeadLettered != 3 || len(dead) != 3 || !strings.Contains(dead[0].Error, "pipeline with id [missing] does not exist") {
		t.Errorf("report %+v, letters %+v", rep, dead)
	}
}

// Tests outside the suite.

func TestEventsElasticsearchWouldRefuse(t *testing.T) {
	s := elastictest.NewServer(t)
	out := newOutput(t, Config{URLs: []string{s.URL()}, Index: "Audit-{label:env}"})
	evs := outputstest.Events(4)
	evs[1].ID = ""
	evs[2].ID = strings.Repeat("x", 513)
	evs[3].Labels = map[string]string{"env": "PROD"}
	err := out.Write(context.Background(), evs)
	var pe *outputs.PartialError
	if !errors.As(err, &pe) || len(pe.Failures) != 2 || pe.Failures[0].Index != 1 || pe.Failures[1].Index != 2 ||
		!outputs.IsPermanent(pe.Failures[0].Err) || !outputs.IsPermanent(pe.Failures[1].Err) {
		t.Fatalf("Write = %v, want events 1 and 2 rejected permanently", err)
	}
	// The rest went through, the index name lowercased.
	if got := s.Indices(); !slices.Equal(got, []string{"audit-prod", "audit-test"}) {
		t.Errorf("indices %v", got)
	}
}

func TestWriteAfterClose(t *testing.T) {
	s := elastictest.NewServer(t)
	out, err := New(context.Background(), Config{URLs: []string{s.URL()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := out.Write(context.Background(), outputstest.Events(1)); !errors.Is(err, errClosed) {
		t.Errorf("Write after Close = %v", err)
	}
}

func TestTemplateRefusedDoesNotBlockWrites(t *testing.T) {
	s := elastictest.NewServer(t)
	// The built-in logs template has priority 100: ours at 100 for an
	// overlapping name is refused, as a real cluster refuses it.
	cfg := Config{URLs: []string{s.URL()}, DataStream: "logs-refused-default", BootstrapTemplate: true, TemplatePriority: 100}
	out := newOutput(t, cfg)
	if err := out.Write(context.Background(), outputstest.Events(3)); err != nil {
		t.Fatalf("Write = %v", err)
	}
	if _, ok := s.IndexTemplate("auditpipe-logs-refused-default"); ok {
		t.Error("template installed")
	}
	if n := s.Count("logs-refused-default"); n != 3 {
		t.Errorf("%d documents, want 3", n)
	}
}

func TestTemplateBody(t *testing.T) {
	for _, tc := range []struct {
		cfg          Config
		name         string
		patterns     []string
		dataStream   bool
		wantPriority int
	}{
		{Config{Index: "audit-{source}-{yyyy.MM.dd}"}, "auditpipe-audit", []string{"audit-*-*"}, false, 500},
		{Config{Index: "Audit_{source}{label:x}"}, "auditpipe-audit", []string{"audit_*"}, false, 500},
		{Config{Index: "fixed"}, "auditpipe-fixed", []string{"fixed"}, false, 500},
		{Config{DataStream: "logs-auditpipe-default", TemplatePriority: 300}, "auditpipe-logs-auditpipe-default", []string{"logs-auditpipe-default"}, true, 300},
		{Config{Index: "a-{source}", TemplateName: "mine"}, "mine", []string{"a-*"}, false, 500},
	} {
		tc.cfg.URLs = []string{"http://127.0.0.1:1"}
		out := newOutput(t, tc.cfg)
		b, err := out.TemplateBody()
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			IndexPatterns []string        `json:"index_patterns"`
			Priority      int             `json:"priority"`
			DataStream    json.RawMessage `json:"data_stream"`
			Template      struct {
				Mappings map[string]any `json:"mappings"`
			} `json:"template"`
		}
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatal(err)
		}
		if out.cfg.TemplateName != tc.name || !slices.Equal(body.IndexPatterns, tc.patterns) || body.Priority != tc.wantPriority ||
			(body.DataStream != nil) != tc.dataStream || body.Template.Mappings["properties"] == nil {
			t.Errorf("%+v: name %s, body %s", tc.cfg, out.cfg.TemplateName, b)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{URLs: []string{"https://es:9200"}}
	cases := []struct {
		name string
		set  func(*Config)
		want string // "" for valid
	}{
		{"minimal", func(c *Config) {}, ""},
		{"cloud id", func(c *Config) { c.URLs = nil; c.CloudID = "dep:" + b64("eu-west-1.aws.found.io$abc$def") }, ""},
		{"api key", func(c *Config) { c.APIKey = "id:key" }, ""},
		{"basic", func(c *Config) { c.Username, c.Password = "u", "p" }, ""},
		{"data stream", func(c *Config) { c.DataStream = "logs-auditpipe-default"; c.BootstrapTemplate = true }, ""},
		{"nothing", func(c *Config) { c.URLs = nil }, "urls: set urls or cloud_id"},
		{"both", func(c *Config) { c.CloudID = "dep:" + b64("h$u") }, "cloud_id: set urls or cloud_id, not both"},
		{"bad url", func(c *Config) { c.URLs = []string{"es:9200"} }, "urls[0]:"},
		{"password in bad url hidden", func(c *Config) { c.URLs = []string{"ftp://u:hunter2@es"} }, "xxxxx"},
		{"bad cloud id", func(c *Config) { c.URLs = nil; c.CloudID = "nocolon" }, "cloud_id:"},
		{"api key and user", func(c *Config) { c.APIKey, c.Username = "k", "u" }, "api_key: not together with username"},
		{"password alone", func(c *Config) { c.Password = "p" }, "password: set without username"},
		{"tls half", func(c *Config) { c.TLS.CertFile = "c.pem" }, "tls.cert_file"},
		{"fingerprint", func(c *Config) { c.CAFingerprint = "abc" }, "ca_fingerprint:"},
		{"index and stream", func(c *Config) { c.Index, c.DataStream = "a", "logs-a-b" }, "index: not together with data_stream"},
		{"bad index", func(c *Config) { c.Index = "a-{nope}" }, "index:"},
		{"broad pattern", func(c *Config) { c.Index = "{source}-audit"; c.BootstrapTemplate = true }, "index:"},
		{"templated stream", func(c *Config) { c.DataStream = "logs-{source}-default" }, "data_stream:"},
		{"uppercase stream", func(c *Config) { c.DataStream = "Logs-a-b" }, "data_stream:"},
		{"template name", func(c *Config) { c.TemplateName = "a b" }, "template_name:"},
		{"priority", func(c *Config) { c.TemplatePriority = -1 }, "template_priority:"},
		{"timeout", func(c *Config) { c.Timeout = -time.Second }, "timeout:"},
		{"retries", func(c *Config) { c.MaxRetries = -2 }, "max_retries:"},
		{"bulk bytes", func(c *Config) { c.MaxBulkBytes = -1 }, "max_bulk_bytes:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.set(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate = %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate = %v, want %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows a password: %v", err)
			}
			if tc.want == "" {
				c.URLs, c.CloudID = []string{"http://127.0.0.1:1"}, ""
				if _, err := New(context.Background(), c, nil); err != nil {
					t.Errorf("New = %v", err)
				}
			} else if _, err := New(context.Background(), c, nil); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestClientBackoff(t *testing.T) {
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}
	for i, w := range want {
		if got := clientBackoff(i + 1); got != w {
			t.Errorf("clientBackoff(%d) = %s, want %s", i+1, got, w)
		}
	}
}

func BenchmarkWrite(b *testing.B) {
	const batch = 100
	s := elastictest.NewServer(b)
	out, err := New(context.Background(), Config{URLs: []string{s.URL()}, Index: "bench-{source}"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = out.Close(context.Background()) }()
	evs := outputstest.Events(batch)
	ids := outputstest.IDs(evs)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Fresh ids each time, so the server stores documents rather
		// than answering 409, and a clean server now and then so that it
		// does not grow without bound.
		b.StopTimer()
		if i%500 == 0 {
			_ = s.Close()
			if s, err = elastictest.Start(elastictest.Config{Addr: s.Addr()}); err != nil {
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

func TestOpenSearchIsNamed(t *testing.T) {
	s := elastictest.NewServerConfig(t, elastictest.Config{Flavor: elastictest.FlavorOpenSearch})
	out, err := New(context.Background(), Config{URLs: []string{s.URL()}, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = out.Close(context.Background()) }()
	err = out.Write(context.Background(), outputstest.Events(1))
	if err == nil || !strings.Contains(err.Error(), "this looks like OpenSearch, use type: opensearch") {
		t.Fatalf("Write = %v, want it to point at type: opensearch", err)
	}
}
