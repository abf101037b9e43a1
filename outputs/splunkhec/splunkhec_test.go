package splunkhec_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/keypath"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
	"github.com/auditpipe/auditpipe/outputs/splunkhec"
	"github.com/auditpipe/auditpipe/testenv/hectest"
)

var indexes = []string{"main", "spacelift", "alertmanager", "app", "k8s"}

func newServer(t testing.TB, cfg hectest.Config) *hectest.Server {
	t.Helper()
	if cfg.Indexes == nil {
		cfg.Indexes = indexes
	}
	return hectest.New(t, cfg)
}

func newOutput(t testing.TB, srv *hectest.Server, cfg splunkhec.Config) *splunkhec.Output {
	t.Helper()
	cfg.URL = srv.URL()
	if cfg.Token == "" {
		cfg.Token = srv.Token()
	}
	o, err := splunkhec.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := o.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return o
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func allIDs(srv *hectest.Server) []string {
	var ids []string
	for _, ix := range srv.Indexes() {
		ids = append(ids, srv.IDs(ix)...)
	}
	slices.Sort(ids)
	return ids
}

func sortedIDs(evs []auditpipe.Event) []string {
	ids := outputstest.IDs(evs)
	slices.Sort(ids)
	return ids
}

func TestDeliverWithAck(t *testing.T) {
	srv := newServer(t, hectest.Config{})
	o := newOutput(t, srv, splunkhec.Config{Index: "{source}", Fields: []string{"cluster"}})
	evs := outputstest.Events(40)
	if err := o.Write(testCtx(t), evs); err != nil {
		t.Fatal(err)
	}
	if got, want := allIDs(srv), sortedIDs(evs); !slices.Equal(got, want) {
		t.Fatalf("indexed %d ids, want %d", len(got), len(want))
	}
	st := srv.Stats()
	if st.Requests != 1 || st.Indexed != 40 || st.AckPolls != 1 || st.Duplicates != 0 {
		t.Errorf("stats = %+v, want one request, 40 events, one ack poll", st)
	}
	for _, ev := range srv.Events("spacelift") {
		if ev.Sourcetype != "auditpipe:spacelift" || ev.Source != "auditpipe:spacelift-main" ||
			ev.Fields["cluster"] != "dev-1" || ev.Channel != o.Channel() {
			t.Fatalf("event metadata: %+v", ev)
		}
		var got auditpipe.Event
		if err := json.Unmarshal(ev.Event, &got); err != nil {
			t.Fatal(err)
		}
		if ev.Time != float64(got.Time.UnixMilli())/1000 {
			t.Errorf("time %f, event time %s", ev.Time, got.Time)
		}
	}
	if n := len(srv.Events("spacelift")); n != 10 {
		t.Errorf("spacelift holds %d events, want 10", n)
	}
}

func TestDelayedAck(t *testing.T) {
	srv := newServer(t, hectest.Config{})
	srv.DelayAcks(3)
	o := newOutput(t, srv, splunkhec.Config{AckPollInterval: time.Millisecond})
	if err := o.Write(testCtx(t), outputstest.Events(5)); err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.AckPolls != 4 {
		t.Errorf("ack polls = %d, want 4 (three false, then true)", st.AckPolls)
	}
}

// A lost ack fails the Write retryably; the batch is sent again, indexed
// again (Splunk does not dedupe), and delivered.
func TestLostAckResent(t *testing.T) {
	srv := newServer(t, hectest.Config{})
	srv.LoseAcks(1)
	o := newOutput(t, srv, splunkhec.Config{AckTimeout: 50 * time.Millisecond, AckPollInterval: 5 * time.Millisecond})
	evs := outputstest.Events(20)
	err := o.Write(testCtx(t), evs)
	var pe *outputs.PartialError
	if err == nil || outputs.IsPermanent(err) || errors.As(err, &pe) {
		t.Fatalf("err = %v, want a retryable batch error", err)
	}
	if !strings.Contains(err.Error(), "ack_timeout") {
		t.Errorf("error does not name ack_timeout: %v", err)
	}
	if err := o.Write(testCtx(t), evs); err != nil {
		t.Fatalf("re-send: %v", err)
	}
	st := srv.Stats()
	if st.Indexed != 40 || st.Duplicates != 20 {
		t.Errorf("stats = %+v, want 40 indexed of which 20 duplicates", st)
	}
	if got := allIDs(srv); !slices.Equal(got, sortedIDs(evs)) {
		t.Errorf("distinct ids %d, want 20", len(got))
	}
}

func TestBusyRetried(t *testing.T) {
	srv := newServer(t, hectest.Config{})
	srv.Busy(1, 3)
	o := newOutput(t, srv, splunkhec.Config{})
	evs := outputstest.Events(3)
	err := o.Write(testCtx(t), evs)
	if err == nil || outputs.IsPermanent(err) {
		t.Fatalf("err = %v, want retryable", err)
	}
	if ra, ok := outputs.RetryAfterOf(err); !ok || ra != 3*time.Second {
		t.Errorf("retry after = %v %v, want 3s", ra, ok)
	}
	if !strings.Contains(err.Error(), "HEC code 9") {
		t.Errorf("error does not give the HEC code: %v", err)
	}
	if err := o.Write(testCtx(t), evs); err != nil {
		t.Fatal(err)
	}
	srv.Fail(1, http.StatusInternalServerError, 8, "Internal server error", "")
	if err := o.Write(testCtx(t), evs); err == nil || outputs.IsPermanent(err) {
		t.Fatalf("500: err = %v, want retryable", err)
	}
}

func TestTokenErrorsRetryable(t *testing.T) {
	srv := newServer(t, hectest.Config{})
	evs := outputstest.Events(2)
	bad := newOutput(t, srv, splunkhec.Config{Token: "not-the-token"})
	err := bad.Write(testCtx(t), evs)
	if err == nil || outputs.IsPermanent(err) || !strings.Contains(err.Error(), "HEC code 4") {
		t.Fatalf("invalid token: err = %v, want retryable code 4", err)
	}
	if strings.Contains(err.Error(), "not-the-token") {
		t.Errorf("error shows the token: %v", err)
	}
	srv.DisableToken(true)
	o := newOutput(t, srv, splunkhec.Config{})
	if err := o.Write(testCtx(t), evs); err == nil || outputs.IsPermanent(err) || !strings.Contains(err.Error(), "HEC code 1") {
		t.Fatalf("disabled token: err = %v, want retryable code 1", err)
	}
	srv.DisableToken(false)
	if err := o.Write(testCtx(t), evs); err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.Indexed != 2 {
		t.Errorf("indexed %d, want 2", st.Indexed)
	}
}

// An index HEC refuses (code 7) dead-letters the event it names; the
// others are retried, and those before it (which Splunk indexed) are
// indexed again. An index name Splunk could never accept fails its event
// without sending it.
func TestInvalidIndexPerEvent(t *testing.T) {
	srv := newServer(t, hectest.Config{})
	o := newOutput(t, srv, splunkhec.Config{Index: "{label:ix}"})
	evs := outputstest.Events(5)
	for i := range evs {
		evs[i].Labels = map[string]string{"ix": "main"}
	}
	evs[1].Labels["ix"] = "Bad Name"
	evs[3].Labels["ix"] = "nosuchindex"
	err := o.Write(testCtx(t), evs)
	var pe *outputs.PartialError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a *PartialError", err)
	}
	var perm, retry []int
	for _, f := range pe.Failures {
		if outputs.IsPermanent(f.Err) {
			perm = append(perm, f.Index)
		} else {
			retry = append(retry, f.Index)
		}
	}
	if !slices.Equal(perm, []int{1, 3}) || !slices.Equal(retry, []int{0, 2, 4}) {
		t.Fatalf("permanent %v, retryable %v; want [1 3] and [0 2 4]: %v", perm, retry, err)
	}
	if !strings.Contains(pe.Failures[2].Err.Error(), "HEC code 7") {
		t.Errorf("event 3's error: %v", pe.Failures[2].Err)
	}
	// The Deliverer re-sends the retryable ones.
	again := []auditpipe.Event{evs[0], evs[2], evs[4]}
	if err := o.Write(testCtx(t), again); err != nil {
		t.Fatal(err)
	}
	if got := srv.IDs("main"); !slices.Equal(got, sortedIDs(again)) {
		t.Errorf("main holds %v", got)
	}
	if st := srv.Stats(); st.Duplicates != 2 {
		t.Errorf("duplicates = %d, want 2 (events 0 and 2, indexed before the rejected one)", st.Duplicates)
	}
}

func TestGzip(t *testing.T) {
	srv := newServer(t, hectest.Config{})
	o := newOutput(t, srv, splunkhec.Config{Gzip: true})
	evs := outputstest.Events(30)
	for range 2 { // the second Write reuses the pooled writer
		if err := o.Write(testCtx(t), evs); err != nil {
			t.Fatal(err)
		}
	}
	if st := srv.Stats(); st.Gzipped != 2 || st.Indexed != 60 {
		t.Errorf("stats = %+v, want 2 gzipped requests of 30", st)
	}
}

func TestAckOff(t *testing.T) {
	srv := newServer(t, hectest.Config{NoAck: true})
	off := false
	o := newOutput(t, srv, splunkhec.Config{Ack: &off})
	if err := o.Write(testCtx(t), outputstest.Events(3)); err != nil {
		t.Fatal(err)
	}
	// ack on against a token without acknowledgement: accepted events
	// count as delivered (re-sending would index them again).
	on := newOutput(t, srv, splunkhec.Config{})
	if err := on.Write(testCtx(t), outputstest.Events(3)); err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.Indexed != 6 || st.AckPolls != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestChannelRequired(t *testing.T) {
	// A server that acknowledges but a client that sends no channel: HEC
	// answers code 10, which is a configuration error, kept and retried.
	srv := newServer(t, hectest.Config{})
	off := false
	o := newOutput(t, srv, splunkhec.Config{Ack: &off})
	err := o.Write(testCtx(t), outputstest.Events(1))
	if err == nil || outputs.IsPermanent(err) || !strings.Contains(err.Error(), "HEC code 10") {
		t.Fatalf("err = %v, want retryable code 10", err)
	}
}

func TestConfigErrors(t *testing.T) {
	ok := splunkhec.Config{URL: "https://hec.example.com:8088", Token: "t"}
	for _, tc := range []struct {
		key string
		mod func(*splunkhec.Config)
	}{
		{"url", func(c *splunkhec.Config) { c.URL = "" }},
		{"url", func(c *splunkhec.Config) { c.URL = "ftp://x" }},
		{"url", func(c *splunkhec.Config) { c.URL = "https://x:8088/services/collector/event" }},
		{"token", func(c *splunkhec.Config) { c.Token = "" }},
		{"index", func(c *splunkhec.Config) { c.Index = "Main" }},
		{"index", func(c *splunkhec.Config) { c.Index = "{nope}" }},
		{"sourcetype", func(c *splunkhec.Config) { c.Sourcetype = "{" }},
		{"host", func(c *splunkhec.Config) { c.Host = "}" }},
		{"fields[1]", func(c *splunkhec.Config) { c.Fields = []string{"a", ""} }},
		{"channel", func(c *splunkhec.Config) { c.Channel = "not-a-guid" }},
		{"ack_timeout", func(c *splunkhec.Config) { c.AckTimeout = -time.Second }},
		{"ack_poll_interval", func(c *splunkhec.Config) {
			c.AckTimeout, c.AckPollInterval = time.Second, 2*time.Second
		}},
		{"timeout", func(c *splunkhec.Config) { c.Timeout = -1 }},
		{"tls.min_version", func(c *splunkhec.Config) { c.TLS.MinVersion = "1.1" }},
		{"tls", func(c *splunkhec.Config) { c.URL = "http://x"; c.TLS.ServerName = "x" }},
	} {
		c := ok
		tc.mod(&c)
		_, err := splunkhec.New(context.Background(), c, nil)
		var ke *keypath.Error
		if !errors.As(err, &ke) || ke.Path != tc.key {
			t.Errorf("%s: err = %v, want one naming %s", tc.key, err, tc.key)
		}
	}
	o, err := splunkhec.New(context.Background(), ok, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = o.Close(context.Background())
}

func TestFactoryDefaults(t *testing.T) {
	f := splunkhec.NewFactory()
	if f.Type() != "splunk_hec" {
		t.Fatalf("type %q", f.Type())
	}
	cfg := f.DefaultConfig().(*splunkhec.Config)
	cfg.URL, cfg.Token = "http://127.0.0.1:1", "t"
	o, err := f.Create(context.Background(), outputs.Settings{Name: "splunk", Version: "1.2.3"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ch := o.(*splunkhec.Output).Channel(); len(ch) != 36 {
		t.Errorf("channel %q is not a GUID", ch)
	}
	_ = o.Close(context.Background())
}

// BenchmarkWrite writes batches of 500 events (the default batch) with
// ack on, into the emulation.
func BenchmarkWrite(b *testing.B) {
	const batch = 500
	evs := outputstest.Events(batch)
	for _, gz := range []bool{false, true} {
		name := "ack"
		if gz {
			name = "ack_gzip"
		}
		b.Run(name, func(b *testing.B) {
			srv := newServer(b, hectest.Config{CountOnly: true})
			o := newOutput(b, srv, splunkhec.Config{Gzip: gz, Index: "main"})
			ctx := context.Background()
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if err := o.Write(ctx, evs); err != nil {
					b.Fatal(err)
				}
			}
			cpu := cpuTime() - cpu0
			// Client and emulation share the one core; events per CPU
			// second do not drop when other processes share the machine.
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
			if cpu0 >= 0 && cpu > 0 {
				b.ReportMetric(float64(b.N*batch)/(float64(cpu)/1e9), "events/cpu-s")
			}
			if st := srv.Stats(); st.Indexed != b.N*batch {
				b.Fatalf("indexed %d of %d", st.Indexed, b.N*batch)
			}
		})
	}
}

// Through the Deliverer, as the sidecar runs it: a busy answer, a lost
// ack and an index HEC refuses end with every good event indexed once
// more than its duplicates, and the bad one dead-lettered.
func TestDelivererEndToEnd(t *testing.T) {
	srv := newServer(t, hectest.Config{})
	o := newOutput(t, srv, splunkhec.Config{Index: "{label:ix}", AckTimeout: 50 * time.Millisecond, AckPollInterval: 5 * time.Millisecond})
	dlq := &outputstest.Letters{}
	d, err := outputs.NewDeliverer(outputs.DelivererConfig{Name: "splunk", Output: o, DeadLetters: dlq,
		Retry: outputs.RetryConfig{InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	evs := outputstest.Events(10)
	for i := range evs {
		evs[i].Labels = map[string]string{"ix": "main"}
	}
	evs[7].Labels["ix"] = "nosuchindex"
	srv.Busy(1, 0)
	srv.LoseAcks(1)
	rep, err := d.Deliver(testCtx(t), evs)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Delivered != 9 || rep.DeadLettered != 1 {
		t.Errorf("report %+v, want 9 delivered, 1 dead-lettered", rep)
	}
	if got := dlq.IDs(t); !slices.Equal(got, []string{evs[7].ID}) {
		t.Errorf("dead letters %v, want event 7", got)
	}
	want := sortedIDs(slices.Delete(slices.Clone(evs), 7, 8))
	if got := srv.IDs("main"); !slices.Equal(got, want) {
		t.Errorf("main holds %d distinct ids, want 9", len(got))
	}
}
