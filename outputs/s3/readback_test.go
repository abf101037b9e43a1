package s3

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/integrity"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
	"github.com/auditpipe/auditpipe/testenv/s3test"
)

// pagedReadBack is the output's ReadBack listing 7 keys a request, so
// that a test's few dozen objects take several pages.
type pagedReadBack struct{ o *Output }

func (p pagedReadBack) ReadBack(ctx context.Context, fn func(string, io.Reader) error) error {
	return p.o.readBack(ctx, 7, fn)
}

// writeSealedS3 writes 40 sealed events in batches of 5 through an output
// with cfg, puts a stranger's object outside the output's prefix, and
// returns the output, the events and the public key.
func writeSealedS3(t *testing.T, srv *s3test.Server, cfg Config) (*Output, []auditpipe.Event, ed25519.PublicKey) {
	t.Helper()
	o := newOutput(t, cfg)
	batches, pub := outputstest.Sealed(t, "s3/test", 40, 5)
	var all []auditpipe.Event
	for _, b := range batches {
		if err := o.Write(t.Context(), b); err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if _, err := srv.Client().PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("other/not-an-event.txt"), Body: strings.NewReader("hello\n"),
	}); err != nil {
		t.Fatal(err)
	}
	return o, all, pub
}

func TestReadBackVerifies(t *testing.T) {
	srv := startServer(t, false)
	for _, tc := range []struct{ name, prefix, compression string }{
		{"gzip under a template prefix", "audit/{label:cluster}", ""},
		{"plain under a constant prefix", "archive/audit", CompressionNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := serverConfig(srv)
			cfg.Prefix, cfg.Compression = tc.prefix, tc.compression
			o, evs, pub := writeSealedS3(t, srv, cfg)

			rep, sources := outputstest.VerifyReadBack(t, t.Context(), pagedReadBack{o}, pub)
			if !rep.OK || rep.Verified != len(evs) || rep.Entries != len(evs) {
				t.Fatalf("report: ok %v, %d verified of %d entries, want all %d: %+v", rep.OK, rep.Verified, rep.Entries, len(evs), rep)
			}
			static, _, _ := strings.Cut(tc.prefix, "{")
			keys, err := srv.ListKeys(t.Context(), bucket, static)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]string, len(keys))
			for i, k := range keys {
				want[i] = "s3://" + bucket + "/" + k
			}
			if !slices.Equal(sources, want) {
				t.Errorf("sources %q,\nwant every object of the output in key order %q", sources, want)
			}
		})
	}
}

func TestReadBackFindsDeletedObject(t *testing.T) {
	srv := startServer(t, false)
	cfg := serverConfig(srv)
	o, evs, pub := writeSealedS3(t, srv, cfg)

	// Delete the object holding seq 2 (the first batch's only
	// alertmanager event).
	keys, err := srv.ListKeys(t.Context(), bucket, "source=alertmanager/")
	if err != nil {
		t.Fatal(err)
	}
	victim := ""
	for _, k := range keys {
		b, err := srv.GetObject(t.Context(), bucket, k)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range decodeObject(t, k, b) {
			var ev auditpipe.Event
			if err := eventjson.Decode([]byte(l), &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Integrity.Seq == 2 {
				victim = k
			}
		}
	}
	if victim == "" {
		t.Fatal("no object holds seq 2")
	}
	if _, err := srv.Client().DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(victim)}); err != nil {
		t.Fatal(err)
	}

	rep, _ := outputstest.VerifyReadBack(t, t.Context(), o, pub)
	if rep.OK || rep.GapCount != 1 || len(rep.Streams) != 1 ||
		!slices.Equal(rep.Streams[0].Gaps, []integrity.Range{{From: 2, To: 2}}) {
		j, _ := json.Marshal(rep)
		t.Fatalf("report: ok %v, gaps %+v, want exactly seq 2 missing: %s", rep.OK, rep.Gaps, j)
	}
	if rep.Entries != len(evs)-1 {
		t.Errorf("%d entries read, want %d", rep.Entries, len(evs)-1)
	}
}

func TestReadBackStopsOnError(t *testing.T) {
	srv := startServer(t, false)
	o, _, _ := writeSealedS3(t, srv, serverConfig(srv))
	calls := 0
	stop := io.ErrShortBuffer
	err := o.ReadBack(t.Context(), func(string, io.Reader) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("ReadBack = %v after %d calls, want fn's error after 1", err, calls)
	}
}

// TestReadBackPrefix holds the listing prefix to what keys start with,
// whatever the placeholders render to.
func TestReadBackPrefix(t *testing.T) {
	values := []string{"", "x", ".", "..", "/", "a/b", "/lead", "trail/", "\x01ctl", "\xff", "é"}
	for _, tmpl := range []string{
		"", "audit", "/audit//", "audit/./x", "{label:v}", "audit/{label:v}", "audit//{label:v}/y",
		"audit-{label:v}", "a/.{label:v}", "a/..{label:v}", "a/\x01{label:v}", "a/b\xc3{label:v}",
		"{label:v}/audit", "audit/{source}-{yyyy}",
	} {
		want := readBackPrefix(tmpl)
		enc := &encoder{prefix: outputs.MustParseTemplate(tmpl)}
		for _, v := range values {
			ev := outputstest.Event(0)
			ev.Labels = map[string]string{"v": v}
			dir := string(enc.appendDir(nil, &ev))
			if !strings.HasPrefix(dir, want) {
				t.Errorf("prefix %q, label %q: key directory %q does not start with the listing prefix %q", tmpl, v, dir, want)
			}
		}
	}
	for tmpl, want := range map[string]string{
		"":                "source=",
		"audit":           "audit/",
		"/audit//":        "audit/",
		"audit/{label:v}": "audit/",
		"audit-{label:v}": "audit-",
		"a/.{label:v}":    "a/",
		"{label:v}/audit": "",
	} {
		if got := readBackPrefix(tmpl); got != want {
			t.Errorf("readBackPrefix(%q) = %q, want %q", tmpl, got, want)
		}
	}
}
