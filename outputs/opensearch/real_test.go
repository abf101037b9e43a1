package opensearch

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
	"github.com/auditpipe/auditpipe/testenv/elastictest"
)

// TestRealCluster runs delivery against a real OpenSearch when
// AUDITPIPE_OPENSEARCH_URL is set: basic auth from
// AUDITPIPE_OPENSEARCH_USERNAME and _PASSWORD, or SigV4 with the default
// credential chain when AUDITPIPE_OPENSEARCH_AWS_REGION is set (service
// from _AWS_SERVICE, default es; AUDITPIPE_OPENSEARCH_OMIT_IDS=true for a
// Serverless time series collection), a private CA from _CA_FILE. It
// writes to a fresh index and deletes it afterwards.
func TestRealCluster(t *testing.T) {
	url := os.Getenv("AUDITPIPE_OPENSEARCH_URL")
	if url == "" {
		t.Skip("AUDITPIPE_OPENSEARCH_URL not set")
	}
	cfg := Config{
		URLs:     []string{url},
		Username: os.Getenv("AUDITPIPE_OPENSEARCH_USERNAME"),
		Password: os.Getenv("AUDITPIPE_OPENSEARCH_PASSWORD"),
		TLS:      outputs.TLSConfig{CAFile: os.Getenv("AUDITPIPE_OPENSEARCH_CA_FILE")},
		OmitIDs:  os.Getenv("AUDITPIPE_OPENSEARCH_OMIT_IDS") == "true",
	}
	if r := os.Getenv("AUDITPIPE_OPENSEARCH_AWS_REGION"); r != "" {
		cfg.AWSSigV4 = SigV4Config{Region: r, Service: os.Getenv("AUDITPIPE_OPENSEARCH_AWS_SERVICE")}
	}
	deliverySuite(t, cfg)
}

// TestDeliverySuiteEmulated runs TestRealCluster's checks against the
// signing emulation, so that they are known to work.
func TestDeliverySuiteEmulated(t *testing.T) {
	for _, omit := range []bool{false, true} {
		sv := testSigV4
		if omit {
			sv.Service = "aoss"
		}
		s := openSearch(t, elastictest.Config{SigV4: &sv})
		deliverySuite(t, Config{URLs: []string{s.URL()}, OmitIDs: omit, AWSSigV4: SigV4Config{
			Region: sv.Region, Service: sv.Service, AccessKeyID: sv.AccessKeyID, SecretAccessKey: sv.SecretAccessKey}})
	}
}

// deliverySuite writes to a fresh index of the cluster cfg names, checks
// every event arrived once, and deletes the index.
func deliverySuite(t *testing.T, cfg Config) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	index := "auditpipe-test-" + hex.EncodeToString(b[:])
	cfg.Index = index
	out := newOutput(t, cfg)
	ctx := context.Background()
	t.Cleanup(func() { _, _ = out.request(ctx, http.MethodDelete, "/"+index, nil) })

	evs := outputstest.Events(20)
	if err := out.Write(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if !cfg.OmitIDs {
		// Re-sent: 409s, delivered, stored once.
		if err := out.Write(ctx, evs); err != nil {
			t.Fatalf("second write: %v", err)
		}
	}
	// Serverless has no _refresh (documents show within seconds).
	_, _ = out.request(ctx, http.MethodPost, "/"+index+"/_refresh", nil)
	var n int
	outputstest.Eventually(t, time.Minute, "the documents to be searchable", func() bool {
		b, err := out.request(ctx, http.MethodGet, "/"+index+"/_count", nil)
		var c struct{ Count int }
		if err == nil && json.Unmarshal(b, &c) == nil {
			n = c.Count
		}
		if n < len(evs) {
			time.Sleep(100 * time.Millisecond) // not hammering a real cluster
		}
		return n >= len(evs)
	})
	if n != len(evs) {
		t.Fatalf("%d documents, want %d", n, len(evs))
	}
}

// request sends a request with the output's client, for tests.
func (o *Output) request(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	res, err := osClient{c: o.client}.do(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	defer func() { _ = res.Body.Close() }()
	var buf bytes.Buffer
	_, err = io.Copy(&buf, res.Body)
	if err == nil {
		err = outputs.ClassifyHTTP(res.StatusCode, res.Header, buf.String())
	}
	return buf.Bytes(), err
}
