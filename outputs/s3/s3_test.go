package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
	"github.com/auditpipe/auditpipe/testenv/s3test"
)

// transports runs a test over plain HTTP and over TLS: the SDK sends the
// body differently on each (a checksum header over HTTP, aws-chunked with
// a trailing checksum over TLS).
var transports = []struct {
	name string
	tls  bool
}{{"http", false}, {"tls", true}}

// hourEvents returns n events of one source in one hour, so they make one
// object.
func hourEvents(n int) []auditpipe.Event {
	evs := outputstest.Events(n)
	for i := range evs {
		evs[i].Source = auditpipe.Source{Type: "spacelift", Name: "spacelift-main", Format: "spacelift"}
	}
	return evs
}

func TestWriteContent(t *testing.T) {
	for _, tr := range transports {
		for _, comp := range []string{CompressionGzip, CompressionNone} {
			t.Run(tr.name+"/"+comp, func(t *testing.T) {
				srv := startServer(t, tr.tls)
				cfg := serverConfig(srv)
				cfg.Compression = comp
				cfg.Prefix = "audit/{source_name}/"
				o := newOutput(t, cfg)
				evs := hourEvents(50)
				if err := o.Write(t.Context(), evs); err != nil {
					t.Fatal(err)
				}
				objs := stored(t, srv)
				ext := map[string]string{CompressionGzip: ".ndjson.gz", CompressionNone: ".ndjson"}[comp]
				wantKey := "audit/spacelift-main/source=spacelift/dt=2026-11-21/hour=09/" + evs[0].ID + "-50" + ext
				if len(objs) != 1 || objs[wantKey] == nil {
					t.Fatalf("keys = %v, want [%s]", slices.Collect(mapKeys(objs)), wantKey)
				}
				// Line by line, in batch order, as eventjson.Append writes them.
				if got, want := objs[wantKey], lines(evs); !slices.Equal(got, want) {
					t.Errorf("object lines differ from eventjson.Append:\n got %d lines, first %.100s\nwant %d lines, first %.100s", len(got), got[0], len(want), want[0])
				}
				head, err := srv.Client().HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(wantKey)})
				if err != nil {
					t.Fatal(err)
				}
				if ct := aws.ToString(head.ContentType); ct != ContentType {
					t.Errorf("Content-Type = %q, want %q", ct, ContentType)
				}
				wantCE := map[string]string{CompressionGzip: "gzip", CompressionNone: ""}[comp]
				ce := aws.ToString(head.ContentEncoding)
				if tr.tls && comp == CompressionNone && ce == "aws-chunked" {
					// The SDK's transfer framing, which S3 drops and
					// versitygw keeps when it is the only encoding.
					ce = ""
				}
				if ce != wantCE {
					t.Errorf("Content-Encoding = %q, want %q", ce, wantCE)
				}
			})
		}
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestSameBatchTwiceSameKey(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			srv := startServer(t, tr.tls)
			o := newOutput(t, serverConfig(srv))
			evs := hourEvents(20)
			var bodies [][]byte
			for range 2 {
				if err := o.Write(t.Context(), evs); err != nil {
					t.Fatal(err)
				}
				keys, err := srv.ListKeys(t.Context(), bucket, "")
				if err != nil {
					t.Fatal(err)
				}
				if len(keys) != 1 {
					t.Fatalf("keys = %q, want one", keys)
				}
				b, err := srv.GetObject(t.Context(), bucket, keys[0])
				if err != nil {
					t.Fatal(err)
				}
				bodies = append(bodies, b)
			}
			if !bytes.Equal(bodies[0], bodies[1]) {
				t.Error("the second upload of the same batch stored different bytes")
			}
			wantDelivered(t, srv, evs)
		})
	}
}

func TestGroupsBySourceAndHour(t *testing.T) {
	srv := startServer(t, false)
	o := newOutput(t, serverConfig(srv))
	// 8 events over 4 sources, then 4 more an hour and a day later.
	evs := outputstest.Events(12)
	for i := 8; i < 12; i++ {
		evs[i].Time = evs[i].Time.Add(time.Duration(i-7) * 15 * time.Hour)
	}
	if err := o.Write(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	objs := stored(t, srv)
	want := map[string][]auditpipe.Event{
		"source=spacelift/dt=2026-11-21/hour=09/" + evs[0].ID + "-2.ndjson.gz":    {evs[0], evs[4]},
		"source=alertmanager/dt=2026-11-21/hour=09/" + evs[1].ID + "-2.ndjson.gz": {evs[1], evs[5]},
		"source=app/dt=2026-11-21/hour=09/" + evs[2].ID + "-2.ndjson.gz":          {evs[2], evs[6]},
		"source=k8s/dt=2026-11-21/hour=09/" + evs[3].ID + "-2.ndjson.gz":          {evs[3], evs[7]},
		"source=spacelift/dt=2026-11-22/hour=00/" + evs[8].ID + "-1.ndjson.gz":    {evs[8]},
		"source=alertmanager/dt=2026-11-22/hour=15/" + evs[9].ID + "-1.ndjson.gz": {evs[9]},
		"source=app/dt=2026-11-23/hour=06/" + evs[10].ID + "-1.ndjson.gz":         {evs[10]},
		"source=k8s/dt=2026-11-23/hour=21/" + evs[11].ID + "-1.ndjson.gz":         {evs[11]},
	}
	for k, w := range want {
		if !slices.Equal(objs[k], lines(w)) {
			t.Errorf("%s: got %d lines, want %d (events %v)", k, len(objs[k]), len(w), outputstest.IDs(w))
		}
	}
	for k := range objs {
		if want[k] == nil {
			t.Errorf("unexpected object %s", k)
		}
	}
}

func TestSplitsLargeGroups(t *testing.T) {
	srv := startServer(t, false)
	cfg := serverConfig(srv)
	evs := hourEvents(10)
	evs[7].Details = []byte(`{"big":"` + strings.Repeat("x", 3000) + `"}`) // larger than the cap alone
	cfg.MaxObjectBytes = 2000
	o := newOutput(t, cfg)
	if err := o.Write(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	// The split the spec describes: consecutive events fill an object
	// until the next line would take it over the cap.
	type span struct{ first, n int }
	var want []span
	size := 0
	for i := range evs {
		l := len(eventjson.Append(nil, &evs[i])) + 1
		if len(want) == 0 || size+l > int(cfg.MaxObjectBytes) {
			want = append(want, span{i, 0})
			size = 0
		}
		want[len(want)-1].n++
		size += l
	}
	if len(want) < 4 {
		t.Fatalf("test events split into %d objects; want a test that splits more", len(want))
	}
	objs := stored(t, srv)
	for _, w := range want {
		k := fmt.Sprintf("source=spacelift/dt=2026-11-21/hour=09/%s-%d.ndjson.gz", evs[w.first].ID, w.n)
		if !slices.Equal(objs[k], lines(evs[w.first:w.first+w.n])) {
			t.Errorf("%s: %d lines, want events %d..%d", k, len(objs[k]), w.first, w.first+w.n-1)
		}
	}
	if len(objs) != len(want) {
		t.Errorf("%d objects, want %d", len(objs), len(want))
	}
}

// TestPeerDownThenUp starts the store only after the Deliverer's first
// attempt failed: everything arrives once it is up.
func TestPeerDownThenUp(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			s3test.Require(t)
			addr, err := s3test.FreeAddr()
			if err != nil {
				t.Fatal(err)
			}
			cfg := Config{
				Bucket: bucket, Region: s3test.Region, ForcePathStyle: true,
				AccessKeyID: s3test.DefaultAccessKey, SecretAccessKey: s3test.DefaultSecretKey,
				Endpoint: "http://" + addr,
			}
			// The client trusts the server's CA before the server exists.
			var ca *s3test.CA
			if tr.tls {
				if ca, err = s3test.NewCA(t.TempDir()); err != nil {
					t.Fatal(err)
				}
				cfg.Endpoint = "https://" + addr
				cfg.TLS = outputs.TLSConfig{CAFile: ca.File}
			}
			o := newOutput(t, cfg)
			d, err := outputs.NewDeliverer(outputs.DelivererConfig{Name: "archive", Output: o, Retry: fastRetry()})
			if err != nil {
				t.Fatal(err)
			}
			evs := outputstest.Events(40)
			type res struct {
				rep outputs.Report
				err error
			}
			done := make(chan res, 1)
			go func() {
				rep, err := d.Deliver(t.Context(), evs)
				done <- res{rep, err}
			}()
			outputstest.Eventually(t, 15*time.Second, "a failed attempt", func() bool { return d.Stats().FailedAttempts >= 1 })
			if d.Health() == nil {
				t.Error("Health() = nil while the store is down")
			}
			srv, err := s3test.Start(t.Context(), s3test.Config{Addr: addr, TLS: tr.tls, CA: ca})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			if err := srv.CreateBucket(t.Context(), bucket); err != nil {
				t.Fatal(err)
			}
			r := <-done
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.rep.Delivered != len(evs) || r.rep.DeadLettered != 0 {
				t.Errorf("report = %+v, want all %d delivered", r.rep, len(evs))
			}
			if d.Health() != nil {
				t.Errorf("Health() = %v after delivery", d.Health())
			}
			wantDelivered(t, srv, evs)
		})
	}
}

func TestBadCredentialsKeepData(t *testing.T) {
	for _, tc := range []struct {
		name      string
		key, sec  string
		wantInErr string
	}{
		{"wrong secret", s3test.DefaultAccessKey, "not-the-secret", "SignatureDoesNotMatch"},
		// versitygw's code for what S3 calls InvalidAccessKeyId.
		{"unknown key", "nobody", "not-the-secret", "XAdminUserNotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, false)
			cfg := serverConfig(srv)
			cfg.AccessKeyID, cfg.SecretAccessKey = tc.key, tc.sec
			o := newOutput(t, cfg)
			evs := outputstest.Events(8)
			err := o.Write(t.Context(), evs)
			if err == nil {
				t.Fatal("Write with bad credentials succeeded")
			}
			var pe *outputs.PartialError
			if errors.As(err, &pe) || outputs.IsPermanent(err) {
				t.Errorf("err = %v: want one retryable error for the whole batch", err)
			}
			for _, w := range []string{"credentials", tc.wantInErr} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to mention %q", err, w)
				}
			}
			// Through a Deliverer that gives up: every event is handed
			// back, none dead-lettered, none stored.
			dl := &outputstest.Letters{}
			retry := fastRetry()
			retry.MaxElapsedTime = 50 * time.Millisecond
			d, err := outputs.NewDeliverer(outputs.DelivererConfig{Name: "archive", Output: o, Retry: retry, DeadLetters: dl})
			if err != nil {
				t.Fatal(err)
			}
			_, err = d.Deliver(t.Context(), evs)
			var ue *outputs.UndeliveredError
			if !errors.As(err, &ue) || len(ue.Events) != len(evs) || ue.Permanent {
				t.Fatalf("Deliver err = %v, want all %d events handed back as retryable", err, len(evs))
			}
			if n := len(dl.All()); n != 0 {
				t.Errorf("%d events dead-lettered, want 0", n)
			}
			if h := d.Health(); h == nil || !strings.Contains(h.Error(), "credentials") {
				t.Errorf("Health() = %v, want the credentials error", h)
			}
			if objs := stored(t, srv); len(objs) != 0 {
				t.Errorf("objects stored with bad credentials: %v", slices.Collect(mapKeys(objs)))
			}
		})
	}
}

func TestMissingBucketRetried(t *testing.T) {
	srv := startServer(t, false)
	cfg := serverConfig(srv)
	cfg.Bucket = "not-yet"
	logs := &logRecorder{}
	o, err := New(t.Context(), cfg, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close(context.Background())
	evs := outputstest.Events(8) // four objects
	err = o.Write(t.Context(), evs)
	if err == nil || outputs.IsPermanent(err) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err = %v, want a retryable missing-bucket error", err)
	}
	// Loud, but once per Write rather than once per object.
	if n := logs.count(slog.LevelError, "bucket does not exist"); n != 1 {
		t.Errorf("%d error records about the bucket after one Write, want 1", n)
	}
	d, err := outputs.NewDeliverer(outputs.DelivererConfig{Name: "archive", Output: o, Retry: fastRetry()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := d.Deliver(t.Context(), evs)
		done <- err
	}()
	outputstest.Eventually(t, 15*time.Second, "a failed attempt", func() bool { return d.Stats().FailedAttempts >= 1 })
	if err := srv.CreateBucket(t.Context(), "not-yet"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	keys, err := srv.ListKeys(t.Context(), "not-yet", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 4 {
		t.Errorf("keys = %q, want one object per source", keys)
	}
}

// TestSlowPeer puts a proxy that answers nothing in front of the store:
// the attempt times out (retryable), the events arrive once the proxy lets
// traffic through, and after Close no goroutine is left.
func TestSlowPeer(t *testing.T) {
	srv := startServer(t, false)
	base := runtime.NumGoroutine()
	func() {
		proxy := newGateProxy(t, srv.Addr())
		defer proxy.Close()
		cfg := serverConfig(srv)
		cfg.Endpoint = "http://" + proxy.Addr()
		o, err := New(t.Context(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close(context.Background())

		evs := outputstest.Events(8)
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		err = o.Write(ctx, evs)
		cancel()
		if err == nil || outputs.IsPermanent(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Write to a silent peer: err = %v, want a retryable deadline error", err)
		}

		retry := fastRetry()
		retry.AttemptTimeout = 100 * time.Millisecond
		d, err := outputs.NewDeliverer(outputs.DelivererConfig{Name: "archive", Output: o, Retry: retry})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := d.Deliver(t.Context(), evs)
			done <- err
		}()
		outputstest.Eventually(t, 15*time.Second, "a timed-out attempt", func() bool { return d.Stats().FailedAttempts >= 1 })
		proxy.Open()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		wantDelivered(t, srv, evs)
	}()
	outputstest.CheckNoLeak(t, 10*time.Second, base)
}

// TestRefusedObjectsDeadLettered has the store refuse one source's
// objects for good and throttle another's twice: the refused events are
// dead-lettered, the throttled ones retried, and every other event stored
// once.
func TestRefusedObjectsDeadLettered(t *testing.T) {
	srv := startServer(t, false)
	proxy := newS3Proxy(t, srv.Endpoint())
	var mu sync.Mutex
	throttled := 0
	proxy.setFault(func(r *http.Request) (int, string, http.Header) {
		if r.Method != http.MethodPut {
			return 0, "", nil
		}
		switch {
		case strings.Contains(r.URL.Path, "source=k8s/"):
			return http.StatusBadRequest, "InvalidRequest", nil
		case strings.Contains(r.URL.Path, "source=app/"):
			mu.Lock()
			defer mu.Unlock()
			if throttled < 2 {
				throttled++
				return http.StatusServiceUnavailable, "SlowDown", http.Header{"Retry-After": {"0"}}
			}
		}
		return 0, "", nil
	})
	cfg := serverConfig(srv)
	cfg.Endpoint = proxy.url
	o := newOutput(t, cfg)
	dl := &outputstest.Letters{}
	d, err := outputs.NewDeliverer(outputs.DelivererConfig{Name: "archive", Output: o, Retry: fastRetry(), DeadLetters: dl})
	if err != nil {
		t.Fatal(err)
	}
	evs := outputstest.Events(40)
	rep, err := d.Deliver(t.Context(), evs)
	if err != nil {
		t.Fatal(err)
	}
	var refused, rest []auditpipe.Event
	for _, ev := range evs {
		if ev.Source.Type == "k8s" {
			refused = append(refused, ev)
		} else {
			rest = append(rest, ev)
		}
	}
	if rep.Delivered != len(rest) || rep.DeadLettered != len(refused) || rep.Retried != 2*10 {
		t.Errorf("report = %+v, want %d delivered, %d dead-lettered, 20 retried (the app events twice)", rep, len(rest), len(refused))
	}
	dead := dl.All()
	got := make([]string, len(dead))
	for i, d := range dead {
		got[i] = string(d.Event)
	}
	if want := lines(refused); !slices.Equal(got, want) {
		t.Errorf("dead letters = %d events, want the %d k8s events", len(got), len(want))
	}
	for _, l := range dead {
		if !strings.Contains(l.Error, "InvalidRequest") {
			t.Errorf("dead letter error = %q, want the store's code", l.Error)
		}
	}
	wantDelivered(t, srv, rest)
}

// TestClassification has the store answer every upload with one error and
// checks how Write reports it.
func TestClassification(t *testing.T) {
	srv := startServer(t, false)
	proxy := newS3Proxy(t, srv.Endpoint())
	cfg := serverConfig(srv)
	cfg.Endpoint = proxy.url
	o := newOutput(t, cfg)
	for _, tc := range []struct {
		status     int
		code       string
		header     http.Header
		permanent  bool
		retryAfter time.Duration
		inErr      string
	}{
		{503, "SlowDown", http.Header{"Retry-After": {"7"}}, false, 7 * time.Second, "SlowDown"},
		{503, "ServiceUnavailable", nil, false, 0, "ServiceUnavailable"},
		{500, "InternalError", nil, false, 0, "InternalError"},
		{400, "RequestTimeout", nil, false, 0, "RequestTimeout"},
		{403, "InvalidAccessKeyId", nil, false, 0, "credentials"},
		{403, "SignatureDoesNotMatch", nil, false, 0, "credentials"},
		{400, "ExpiredToken", nil, false, 0, "credentials"},
		{403, "AccessDenied", nil, false, 0, "credentials"},
		{404, "NoSuchBucket", nil, false, 0, "does not exist"},
		{301, "PermanentRedirect", nil, false, 0, "wrong region"},
		{400, "InvalidRequest", nil, true, 0, "refused (InvalidRequest)"},
		{400, "EntityTooLarge", nil, true, 0, "refused (EntityTooLarge)"},
		{400, "KeyTooLongError", nil, true, 0, "refused"},
		{400, "SomethingNew", nil, true, 0, "refused"},
		{429, "SomethingNew", nil, false, 0, "SomethingNew"},
		{502, "", nil, false, 0, "502"},
	} {
		t.Run(tc.code+"/"+http.StatusText(tc.status), func(t *testing.T) {
			proxy.setFault(func(*http.Request) (int, string, http.Header) { return tc.status, tc.code, tc.header })
			err := o.Write(t.Context(), hourEvents(3))
			if err == nil {
				t.Fatal("Write succeeded")
			}
			if outputs.IsPermanent(err) != tc.permanent {
				t.Errorf("IsPermanent = %v, want %v: %v", !tc.permanent, tc.permanent, err)
			}
			if ra, _ := outputs.RetryAfterOf(err); ra != tc.retryAfter {
				t.Errorf("RetryAfter = %s, want %s", ra, tc.retryAfter)
			}
			if !strings.Contains(err.Error(), tc.inErr) {
				t.Errorf("err = %v, want it to mention %q", err, tc.inErr)
			}
		})
	}
}

// TestHeaders checks that SSE, storage class and Object Lock settings reach
// the store. versitygw accepts but ignores SSE and storage classes, so
// those are checked on the wire; Object Lock it enforces, so retention is
// checked on the stored object too.
func TestHeaders(t *testing.T) {
	srv := startServer(t, false)
	for _, b := range []string{"locked", "held"} {
		if err := srv.CreateBucket(t.Context(), b, s3test.WithObjectLock()); err != nil {
			t.Fatal(err)
		}
	}
	proxy := newS3Proxy(t, srv.Endpoint())
	for _, tc := range []struct {
		name   string
		mod    func(*Config)
		want   map[string]string // "" = must be absent
		locked bool
	}{
		{"defaults", func(*Config) {}, map[string]string{
			"Content-Type": ContentType, "Content-Encoding": "gzip", "X-Amz-Server-Side-Encryption": "",
			"X-Amz-Storage-Class": "", "X-Amz-Object-Lock-Mode": "", "Content-Md5": "",
		}, false},
		{"sse-s3", func(c *Config) { c.SSE = "AES256"; c.StorageClass = "STANDARD_IA" }, map[string]string{
			"X-Amz-Server-Side-Encryption": "AES256", "X-Amz-Storage-Class": "STANDARD_IA",
			"X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id": "",
		}, false},
		{"sse-kms", func(c *Config) { c.SSE = "aws:kms"; c.SSEKMSKeyID = "alias/audit" }, map[string]string{
			"X-Amz-Server-Side-Encryption": "aws:kms", "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id": "alias/audit",
		}, false},
		{"object-lock", func(c *Config) {
			c.Bucket = "locked"
			c.ObjectLockMode = "COMPLIANCE"
			c.ObjectLockRetainDays = 30
		}, map[string]string{"X-Amz-Object-Lock-Mode": "COMPLIANCE", "X-Amz-Object-Lock-Legal-Hold": ""}, true},
		{"legal-hold", func(c *Config) {
			c.Bucket = "held"
			c.ObjectLockMode = "COMPLIANCE"
			c.ObjectLockRetainDays = 30
			c.ObjectLockLegalHold = true
		}, map[string]string{"X-Amz-Object-Lock-Mode": "COMPLIANCE", "X-Amz-Object-Lock-Legal-Hold": "ON"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := serverConfig(srv)
			cfg.Endpoint = proxy.url
			tc.mod(&cfg)
			o := newOutput(t, cfg)
			now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
			o.now = func() time.Time { return now }
			before := len(proxy.putHeaders())
			evs := hourEvents(5)
			if err := o.Write(t.Context(), evs); err != nil {
				t.Fatal(err)
			}
			puts := proxy.putHeaders()[before:]
			if len(puts) != 1 {
				t.Fatalf("%d PUTs, want 1", len(puts))
			}
			h := puts[0]
			for k, v := range tc.want {
				if got := h.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if !tc.locked {
				return
			}
			if h.Get("Content-Md5") == "" {
				t.Error("no Content-MD5 under Object Lock")
			}
			until := now.Add(30 * 24 * time.Hour)
			if got := h.Get("X-Amz-Object-Lock-Retain-Until-Date"); got != until.Format(time.RFC3339) {
				t.Errorf("retain-until = %q, want %s", got, until.Format(time.RFC3339))
			}
			keys, err := srv.ListKeys(t.Context(), cfg.Bucket, "")
			if err != nil || len(keys) != 1 {
				t.Fatalf("keys = %q, %v", keys, err)
			}
			if cfg.ObjectLockLegalHold {
				hold, err := srv.Client().GetObjectLegalHold(t.Context(), &s3.GetObjectLegalHoldInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(keys[0])})
				if err != nil || hold.LegalHold == nil || hold.LegalHold.Status != types.ObjectLockLegalHoldStatusOn {
					t.Errorf("legal hold on the stored object: %+v, %v", hold, err)
				}
			}
			ret, err := srv.Client().GetObjectRetention(t.Context(), &s3.GetObjectRetentionInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(keys[0])})
			if err != nil {
				t.Fatal(err)
			}
			if ret.Retention.Mode != types.ObjectLockRetentionModeCompliance || !aws.ToTime(ret.Retention.RetainUntilDate).Equal(until) {
				t.Errorf("retention = %s until %v, want COMPLIANCE until %v", ret.Retention.Mode, aws.ToTime(ret.Retention.RetainUntilDate), until)
			}
			// A retry after a lost answer: the locked object cannot be
			// overwritten, but it is this very upload, so it counts as
			// delivered.
			now = now.Add(time.Minute)
			if err := o.Write(t.Context(), evs); err != nil {
				t.Errorf("second Write of the same batch under Object Lock: %v", err)
			}
			// Different events under the same key are not the same
			// upload: the store's refusal stands.
			other := hourEvents(5)
			other[4].Message = "changed"
			if err := o.Write(t.Context(), other); err == nil {
				t.Error("Write of different events over a locked object succeeded")
			}
		})
	}
}

// TestAWSCABundle checks the environment the SDK breaks in: with
// AWS_CA_BUNDLE set, LoadDefaultConfig rejects a custom HTTP client it
// cannot add the bundle to.
func TestAWSCABundle(t *testing.T) {
	srv := startServer(t, true)
	other, err := s3test.NewCA(t.TempDir()) // a CA that signed nothing here
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		bundle string
		tls    outputs.TLSConfig
		ok     bool
	}{
		{"bundle trusts the store", srv.CAFile(), outputs.TLSConfig{}, true},
		{"bundle with tls options", srv.CAFile(), outputs.TLSConfig{MinVersion: "1.2", ServerName: "127.0.0.1"}, true},
		// Both sets of CAs are trusted, whichever holds the store's.
		{"bundle trusts, ca_file does not", srv.CAFile(), outputs.TLSConfig{CAFile: other.File}, true},
		{"ca_file trusts, bundle does not", other.File, outputs.TLSConfig{CAFile: srv.CAFile()}, true},
		{"neither trusts", other.File, outputs.TLSConfig{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AWS_CA_BUNDLE", tc.bundle)
			cfg := serverConfig(srv)
			cfg.TLS = tc.tls
			o := newOutput(t, cfg)
			err := o.Write(t.Context(), hourEvents(2))
			if tc.ok && err != nil {
				t.Fatal(err)
			}
			if !tc.ok && (err == nil || outputs.IsPermanent(err) || !strings.Contains(err.Error(), "certificate")) {
				t.Fatalf("err = %v, want a retryable certificate error", err)
			}
		})
	}
}

// TestDefaultCredentialChain leaves credentials out of the config: the
// SDK's chain finds them in the environment.
func TestDefaultCredentialChain(t *testing.T) {
	srv := startServer(t, false)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey())
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey())
	t.Setenv("AWS_REGION", srv.Region())
	cfg := serverConfig(srv)
	cfg.AccessKeyID, cfg.SecretAccessKey, cfg.Region = "", "", ""
	o := newOutput(t, cfg)
	evs := hourEvents(3)
	if err := o.Write(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	wantDelivered(t, srv, evs)
}

func TestConcurrentWrites(t *testing.T) {
	srv := startServer(t, false)
	o := newOutput(t, serverConfig(srv))
	all := outputstest.Events(200)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			if err := o.Write(t.Context(), all[w*25:(w+1)*25]); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	wantDelivered(t, srv, all)
}

func TestWriteAfterClose(t *testing.T) {
	o, err := New(t.Context(), Config{Bucket: "b", Region: "us-east-1", AccessKeyID: "a", SecretAccessKey: "s"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Write(t.Context(), nil); err != nil {
		t.Errorf("Write(nil) = %v", err)
	}
	if err := o.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := o.Write(t.Context(), outputstest.Events(1)); err == nil {
		t.Error("Write after Close succeeded")
	}
}

// TestCloseReleasesConnections: with the store still up and connections
// idle in the pool, Close must end every goroutine the output started.
func TestCloseReleasesConnections(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			srv := startServer(t, tr.tls)
			base := runtime.NumGoroutine()
			o, err := New(t.Context(), serverConfig(srv), nil)
			if err != nil {
				t.Fatal(err)
			}
			// Four objects uploaded in parallel: several pooled
			// connections.
			if err := o.Write(t.Context(), outputstest.Events(40)); err != nil {
				t.Fatal(err)
			}
			if runtime.NumGoroutine() <= base {
				t.Log("no connection goroutines to release (the transport closed them already)")
			}
			if err := o.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			outputstest.CheckNoLeak(t, 10*time.Second, base)
		})
	}
}

// BenchmarkWrite uploads batches to versitygw over loopback HTTP, one
// Write at a time: what one output instance sustains, round trips
// included.
func BenchmarkWrite(b *testing.B) {
	for _, batch := range []int{100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			srv := startServer(b, false)
			o := newOutput(b, serverConfig(srv))
			// Distinct batches, so every Write makes new objects as in
			// production rather than overwriting one.
			const distinct = 8
			batches := make([][]auditpipe.Event, distinct)
			all := outputstest.Events(batch * distinct)
			for i := range batches {
				batches[i] = all[i*batch : (i+1)*batch]
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := o.Write(b.Context(), batches[i%distinct]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
