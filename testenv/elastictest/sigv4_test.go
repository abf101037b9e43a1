package elastictest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

func TestOpenSearchFlavor(t *testing.T) {
	s := NewServerConfig(t, Config{Flavor: FlavorOpenSearch})
	res, err := http.Get(s.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	if h := res.Header.Get("X-Elastic-Product"); h != "" {
		t.Errorf("X-Elastic-Product = %q from OpenSearch", h)
	}
	var root struct {
		Version struct{ Distribution, Number string }
	}
	if err := json.NewDecoder(res.Body).Decode(&root); err != nil {
		t.Fatal(err)
	}
	if root.Version.Distribution != "opensearch" || root.Version.Number != "2.19.0" {
		t.Errorf("root document version = %+v", root.Version)
	}
	if _, err := Start(Config{Flavor: "solr"}); err == nil {
		t.Error("unknown flavor accepted")
	}
}

func TestSigV4Verification(t *testing.T) {
	creds := SigV4{Region: "eu-west-1", Service: "aoss", AccessKeyID: "AKIDTEST", SecretAccessKey: "secret"}
	s := NewServerConfig(t, Config{Flavor: FlavorOpenSearch, SigV4: &creds})
	body := `{"index":{"_index":"a"}}` + "\n" + `{"@timestamp":"2025-01-01T00:00:00Z"}` + "\n"
	send := func(akid, secret, region string, tamper bool) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, s.URL()+"/_bulk?refresh=true", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		sum := sha256.Sum256([]byte(body))
		hash := hex.EncodeToString(sum[:])
		req.Header.Set("X-Amz-Content-Sha256", hash)
		if akid != "" {
			err = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret},
				req, hash, creds.Service, region, time.Now())
			if err != nil {
				t.Fatal(err)
			}
		}
		if tamper {
			req.URL.RawQuery = "refresh=false"
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = res.Body.Close() }()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name                 string
		akid, secret, region string
		tamper               bool
		status               int
		msg                  string
	}{
		{"good", "AKIDTEST", "secret", "eu-west-1", false, 200, `"errors":false`},
		{"unsigned", "", "", "", false, 403, "requires 'Signature'"},
		{"wrong secret", "AKIDTEST", "nope", "eu-west-1", false, 403, "signature we calculated does not match"},
		{"unknown key", "AKIDOTHER", "secret", "eu-west-1", false, 403, "security token included in the request is invalid"},
		{"wrong region", "AKIDTEST", "secret", "us-east-1", false, 403, "scoped to correct service"},
		{"changed after signing", "AKIDTEST", "secret", "eu-west-1", true, 403, "signature we calculated does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b := send(tc.akid, tc.secret, tc.region, tc.tamper)
			if status != tc.status || !strings.Contains(b, tc.msg) {
				t.Errorf("HTTP %d %s, want %d with %q", status, b, tc.status, tc.msg)
			}
		})
	}
	if n := s.Count("a"); n != 1 {
		t.Errorf("%d documents, want 1 (from the good request only)", n)
	}
}
