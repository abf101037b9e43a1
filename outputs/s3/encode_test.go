package s3

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func testEncoder(prefix string, gzip bool, maxBytes int) *encoder {
	return &encoder{prefix: outputs.MustParseTemplate(prefix), gzip: gzip, maxBytes: maxBytes}
}

// goldenEvents covers what keys are made of: four sources, two hours and
// days, a prefix from a label, an id that cannot be used as it is.
func goldenEvents() []auditpipe.Event {
	evs := outputstest.Events(10)
	evs[8].Time = time.Date(2026, 12, 31, 23, 59, 59, 0, time.FixedZone("CET", 3600)) // 22:59 UTC
	evs[9].ID = "urn:uuid:2f1c/../x"
	evs[9].Labels["cluster"] = "../prod//eu"
	return evs
}

// TestEncodeGolden pins the keys and the NDJSON of a batch. Run with
// -update after an intended change.
func TestEncodeGolden(t *testing.T) {
	enc := testEncoder("audit/{label:cluster}/", false, DefaultMaxObjectBytes)
	var out bytes.Buffer
	for _, o := range enc.encode(goldenEvents()) {
		fmt.Fprintf(&out, "== %s events=%v\n%s", o.key, o.idx, o.body)
	}
	path := filepath.Join("testdata", "objects.golden")
	if *update {
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("encoded objects differ from %s (run with -update if intended):\n%s", path, out.Bytes())
	}
}

// TestEncodeMatchesEncodingJSON decodes every line of every object and
// compares it with encoding/json's form of the same event.
func TestEncodeMatchesEncodingJSON(t *testing.T) {
	evs := outputstest.Events(64)
	for _, gz := range []bool{true, false} {
		objs := testEncoder("", gz, DefaultMaxObjectBytes).encode(evs)
		seen := 0
		for _, o := range objs {
			ls := decodeObject(t, o.key, o.body)
			if len(ls) != len(o.idx) || o.raw != len(strings.Join(ls, "\n"))+1 {
				t.Fatalf("%s: %d lines for %d events", o.key, len(ls), len(o.idx))
			}
			for j, l := range ls {
				ev := &evs[o.idx[j]]
				ref, err := json.Marshal(ev)
				if err != nil {
					t.Fatal(err)
				}
				var got, want any
				if err := json.Unmarshal([]byte(l), &got); err != nil {
					t.Fatalf("%s line %d: %v", o.key, j, err)
				}
				if err := json.Unmarshal(ref, &want); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s line %d (event %d) differs from encoding/json:\n got %s\nwant %s", o.key, j, o.idx[j], l, ref)
				}
				seen++
			}
		}
		if seen != len(evs) {
			t.Errorf("gzip=%v: %d events in the objects, want %d", gz, seen, len(evs))
		}
	}
}

// TestGzipDeterministic: a retried batch must produce the same bytes, so
// the gzip header carries no time or name.
func TestGzipDeterministic(t *testing.T) {
	evs := outputstest.Events(100)
	enc := testEncoder("", true, DefaultMaxObjectBytes)
	a, b := enc.encode(evs), enc.encode(evs)
	if len(a) != len(b) {
		t.Fatalf("%d objects, then %d", len(a), len(b))
	}
	for i := range a {
		if a[i].key != b[i].key || !bytes.Equal(a[i].body, b[i].body) {
			t.Errorf("object %d: encoding the same batch twice gave different keys or bytes", i)
		}
		hdr := a[i].body[:10]
		if hdr[0] != 0x1f || hdr[1] != 0x8b {
			t.Fatalf("%s: not gzip", a[i].key)
		}
		if flags := hdr[3]; flags != 0 {
			t.Errorf("%s: gzip flags %#x, want none (no name, comment or extra)", a[i].key, flags)
		}
		if mtime := hdr[4:8]; !bytes.Equal(mtime, []byte{0, 0, 0, 0}) {
			t.Errorf("%s: gzip mtime %x, want zero", a[i].key, mtime)
		}
	}
}

func TestKeyDirectory(t *testing.T) {
	ev := outputstest.Event(0)
	ev.Time = time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("X", -7*3600)) // 12:06 UTC
	for _, tc := range []struct {
		prefix string
		mod    func(*auditpipe.Event)
		want   string
	}{
		{"", nil, "source=spacelift/dt=2026-03-04/hour=12/"},
		{"audit", nil, "audit/source=spacelift/dt=2026-03-04/hour=12/"},
		{"/audit/", nil, "audit/source=spacelift/dt=2026-03-04/hour=12/"},
		{"a//{source_name}///b", nil, "a/spacelift-main/b/source=spacelift/dt=2026-03-04/hour=12/"},
		{"{label:missing}", nil, "source=spacelift/dt=2026-03-04/hour=12/"},
		{"x/{label:l}/y", func(e *auditpipe.Event) { e.Labels["l"] = ".." }, "x/__/y/source=spacelift/dt=2026-03-04/hour=12/"},
		{"x/{label:l}", func(e *auditpipe.Event) { e.Labels["l"] = "./a/./b" }, "x/_/a/_/b/source=spacelift/dt=2026-03-04/hour=12/"},
		{"{label:l}", func(e *auditpipe.Event) { e.Labels["l"] = "ok\x00\xffé\n" }, "ok__é_/source=spacelift/dt=2026-03-04/hour=12/"},
		{"{yyyy}/{MM}", nil, "2026/03/source=spacelift/dt=2026-03-04/hour=12/"},
		{"", func(e *auditpipe.Event) { e.Source.Type = "a/b c" }, "source=a_b_c/dt=2026-03-04/hour=12/"},
		{"", func(e *auditpipe.Event) { e.Source.Type = "" }, "source=unknown/dt=2026-03-04/hour=12/"},
		{"", func(e *auditpipe.Event) { e.Time = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC) }, "source=spacelift/dt=0001-01-01/hour=00/"},
		{"", func(e *auditpipe.Event) { e.Time = time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC) }, "source=spacelift/dt=9999-12-31/hour=23/"},
	} {
		e := ev
		e.Labels = map[string]string{}
		if tc.mod != nil {
			tc.mod(&e)
		}
		got := string(testEncoder(tc.prefix, true, 0).appendDir(nil, &e))
		if got != tc.want {
			t.Errorf("prefix %q: dir = %q, want %q", tc.prefix, got, tc.want)
		}
	}
}

func TestKeyID(t *testing.T) {
	hex64 := strings.Repeat("0123456789abcdef", 4)
	for _, tc := range []struct {
		id   string
		want string // "h" = hashed
	}{
		{hex64, hex64},
		{"9f1e-uuid_like.1", "9f1e-uuid_like.1"},
		{"a/b", "h"},
		{".hidden", "h"},
		{"", "h"},
		{strings.Repeat("a", maxIDInKey), strings.Repeat("a", maxIDInKey)},
		{strings.Repeat("a", maxIDInKey+1), "h"},
		{"é", "h"},
	} {
		got := string(appendID(nil, tc.id))
		if tc.want == "h" {
			if len(got) != 33 || got[0] != 'h' || got != string(appendID(nil, tc.id)) {
				t.Errorf("id %q: %q, want a stable h+32 hex digits", tc.id, got)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("id %q: %q, want %q", tc.id, got, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Bucket: "b"}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string // "" = valid
	}{
		{"minimal", func(*Config) {}, ""},
		{"everything", func(c *Config) {
			*c = Config{Bucket: "b", Region: "eu-west-1", Prefix: "audit/{source_name}", Endpoint: "https://minio:9000",
				ForcePathStyle: true, AccessKeyID: "a", SecretAccessKey: "s", SessionToken: "t", Compression: "none",
				MaxObjectBytes: 1 << 20, SSE: "aws:kms", SSEKMSKeyID: "k", ObjectLockMode: "GOVERNANCE",
				ObjectLockRetainDays: 365, StorageClass: "STANDARD_IA", Timeout: time.Minute}
		}, ""},
		{"no bucket", func(c *Config) { c.Bucket = "" }, "bucket: required"},
		{"compression", func(c *Config) { c.Compression = "zstd" }, "compression:"},
		{"max bytes", func(c *Config) { c.MaxObjectBytes = -1 }, "max_object_bytes:"},
		{"timeout", func(c *Config) { c.Timeout = -time.Second }, "timeout:"},
		{"key without secret", func(c *Config) { c.AccessKeyID = "a" }, "access_key_id and secret_access_key"},
		{"secret without key", func(c *Config) { c.SecretAccessKey = "s" }, "access_key_id and secret_access_key"},
		{"token alone", func(c *Config) { c.SessionToken = "t" }, "session_token:"},
		{"profile and keys", func(c *Config) { c.Profile = "p"; c.AccessKeyID = "a"; c.SecretAccessKey = "s" }, "profile:"},
		{"prefix", func(c *Config) { c.Prefix = "{nope}" }, "prefix:"},
		{"endpoint scheme", func(c *Config) { c.Endpoint = "minio:9000" }, "endpoint:"},
		{"endpoint url", func(c *Config) { c.Endpoint = "http://[::1" }, "endpoint:"},
		{"sse", func(c *Config) { c.SSE = "aes" }, "sse:"},
		{"kms key without kms", func(c *Config) { c.SSE = "AES256"; c.SSEKMSKeyID = "k" }, "sse_kms_key_id:"},
		{"lock mode", func(c *Config) { c.ObjectLockMode = "governance"; c.ObjectLockRetainDays = 1 }, "object_lock_mode:"},
		{"lock without days", func(c *Config) { c.ObjectLockMode = "COMPLIANCE" }, "object_lock_retain_days:"},
		{"days without lock", func(c *Config) { c.ObjectLockRetainDays = 3 }, "object_lock_retain_days:"},
		{"tls", func(c *Config) { c.TLS.CertFile = "c.pem" }, "tls.cert_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Errorf("Validate() = %v, want an error starting %q", err, tc.want)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	// No region anywhere and AWS's own endpoint: New must say so rather
	// than fail on the first Write.
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Bucket: "b"}, "region: required"},
		{Config{}, "bucket: required"},
		{Config{Bucket: "b", Region: "us-east-1", TLS: outputs.TLSConfig{CAFile: "/nonexistent.pem"}}, "tls.ca_file"},
		{Config{Bucket: "b", Profile: "nope"}, "s3: AWS configuration"},
	} {
		_, err := New(t.Context(), tc.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
	// With an endpoint, S3-compatible stores accept us-east-1.
	o, err := New(t.Context(), Config{Bucket: "b", Endpoint: "http://127.0.0.1:1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := o.client.Options().Region; r != "us-east-1" {
		t.Errorf("region = %q, want us-east-1", r)
	}
	_ = o.Close(t.Context())
}

// FuzzKey checks the properties every key must have, whatever the events
// hold: valid UTF-8, no empty, "." or ".." segments, no leading slash, the
// same key for the same events.
func FuzzKey(f *testing.F) {
	f.Add("prod", "spacelift", "abc", int64(0))
	f.Add("../x//y/", "a/b", "a/../b", int64(-62135596800))
	f.Add("\xff\x00/.", "", "", int64(253402300799))
	enc := testEncoder("logs/{label:l}/", true, 0)
	f.Fuzz(func(t *testing.T, label, source, id string, unix int64) {
		if unix < -62135596800 || unix > 253402300799 {
			return // outside the years 1 to 9999 that Validate allows
		}
		ev := outputstest.Event(1)
		ev.Labels = map[string]string{"l": label}
		ev.Source.Type = source
		ev.ID = id
		ev.Time = time.Unix(unix, 0)
		key := string(appendID(enc.appendDir(nil, &ev), ev.ID))
		if !utf8.ValidString(key) {
			t.Fatalf("key %q is not valid UTF-8", key)
		}
		if strings.HasPrefix(key, "/") {
			t.Fatalf("key %q starts with a slash", key)
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("key %q has segment %q", key, seg)
			}
		}
		for _, c := range []byte(key) {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("key %q has control byte %#x", key, c)
			}
		}
		if again := string(appendID(enc.appendDir(nil, &ev), ev.ID)); again != key {
			t.Fatalf("key %q, then %q", key, again)
		}
	})
}

// BenchmarkEncodeObject measures turning a batch into upload bodies:
// grouping, NDJSON lines and compression, on one goroutine.
func BenchmarkEncodeObject(b *testing.B) {
	const batch = 1000
	evs := outputstest.Events(batch)
	for _, gz := range []bool{true, false} {
		name := map[bool]string{true: "gzip", false: "none"}[gz]
		b.Run(name, func(b *testing.B) {
			enc := testEncoder("", gz, DefaultMaxObjectBytes)
			var raw, body int
			b.ReportAllocs()
			for b.Loop() {
				raw, body = 0, 0
				for _, o := range enc.encode(evs) {
					raw += o.raw
					body += len(o.body)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(raw)/float64(body), "ratio")
		})
	}
}
