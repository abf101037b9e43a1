package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the legacy scheme under test
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/sidecar/config"
)

// GitHub's published test vector for X-Hub-Signature-256
// (docs.github.com, "Validating webhook deliveries").
const (
	ghSecret  = "It's a Secret to Everybody"
	ghPayload = "Hello, World!"
	ghSig     = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)

const (
	oldSecret = "old-secret-0123456789"
	newSecret = "new-secret-9876543210"
)

func sign256(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func sign1(secret, body string) string {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(body))
	return "sha1=" + hex.EncodeToString(m.Sum(nil))
}

func request(headers map[string]string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/v1/sources/x", nil)
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	return r
}

func mustNew(t testing.TB, cfg config.Auth) Verifier {
	t.Helper()
	v, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

// checkResult fails unless err is nil (want "") or an *Error with the
// wanted reason whose message holds none of the secrets.
func checkResult(t *testing.T, err error, want string, secrets ...string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("Verify: %v, want success", err)
		}
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Verify: %v (%T), want *Error with reason %s", err, err, want)
	}
	if e.Reason != want {
		t.Fatalf("reason %q (%s), want %q", e.Reason, e.Message, want)
	}
	if e.Message == "" {
		t.Fatal("empty message")
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(e.Message, s) {
			t.Fatalf("message %q holds a secret or the presented credential %q", e.Message, s)
		}
	}
}

func TestHMAC(t *testing.T) {
	gh := config.Auth{HMAC: &config.HMACAuth{Secrets: []string{ghSecret}}}
	rotating := config.Auth{HMAC: &config.HMACAuth{Secrets: []string{oldSecret, newSecret}}}
	sha1OK := config.Auth{HMAC: &config.HMACAuth{Secrets: []string{newSecret}, AllowSHA1: true}}
	custom := config.Auth{HMAC: &config.HMACAuth{Secrets: []string{ghSecret}, Header: "x-hub-signature-256"}}
	body := `{"event":"stack.create"}`
	tests := []struct {
		name    string
		cfg     config.Auth
		headers map[string]string
		body    string
		want    string
	}{
		{"github test vector", gh, map[string]string{"X-Signature-256": ghSig}, ghPayload, ""},
		{"github test vector, upper-case hex", gh, map[string]string{"X-Signature-256": "sha256=" + strings.ToUpper(ghSig[7:])}, ghPayload, ""},
		{"github test vector, other body", gh, map[string]string{"X-Signature-256": ghSig}, ghPayload + " ", ReasonBadSignature},
		{"github test vector, custom header", custom, map[string]string{"X-Hub-Signature-256": ghSig}, ghPayload, ""},
		{"custom header, default header sent", custom, map[string]string{"X-Signature-256": ghSig}, ghPayload, ReasonMissingCredentials},
		{"rotation: old secret", rotating, map[string]string{"X-Signature-256": sign256(oldSecret, body)}, body, ""},
		{"rotation: new secret", rotating, map[string]string{"X-Signature-256": sign256(newSecret, body)}, body, ""},
		{"wrong secret", rotating, map[string]string{"X-Signature-256": sign256("another-secret-0123456", body)}, body, ReasonBadSignature},
		{"empty body signed", rotating, map[string]string{"X-Signature-256": sign256(newSecret, "")}, "", ""},
		{"unsigned", rotating, nil, body, ReasonMissingCredentials},
		{"sha1 not allowed", rotating, map[string]string{"X-Signature": sign1(newSecret, body)}, body, ReasonSHA1NotAllowed},
		{"sha1 allowed", sha1OK, map[string]string{"X-Signature": sign1(newSecret, body)}, body, ""},
		{"sha1 allowed, wrong secret", sha1OK, map[string]string{"X-Signature": sign1(oldSecret, body)}, body, ReasonBadSignature},
		{"sha1 in the sha256 header, not allowed", rotating, map[string]string{"X-Signature-256": sign1(newSecret, body)}, body, ReasonSHA1NotAllowed},
		{"both headers: a bad sha256 is not downgraded to sha1", sha1OK,
			map[string]string{"X-Signature-256": sign256(oldSecret, body), "X-Signature": sign1(newSecret, body)}, body, ReasonBadSignature},
		{"malformed hex", rotating, map[string]string{"X-Signature-256": "sha256=" + strings.Repeat("zz", 32)}, body, ReasonMalformedSignature},
		{"short hex", rotating, map[string]string{"X-Signature-256": sign256(newSecret, body)[:70]}, body, ReasonMalformedSignature},
		{"long hex", rotating, map[string]string{"X-Signature-256": sign256(newSecret, body) + "00"}, body, ReasonMalformedSignature},
		{"no algorithm", rotating, map[string]string{"X-Signature-256": sign256(newSecret, body)[7:]}, body, ReasonMalformedSignature},
		{"unknown algorithm", rotating, map[string]string{"X-Signature-256": "md5=" + strings.Repeat("0", 32)}, body, ReasonMalformedSignature},
		{"sha1 length in the sha256 scheme", rotating, map[string]string{"X-Signature-256": "sha256=" + sign1(newSecret, body)[5:]}, body, ReasonMalformedSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := mustNew(t, tt.cfg)
			err := v.Verify(request(tt.headers), []byte(tt.body))
			presented := make([]string, 0, len(tt.headers))
			for _, h := range tt.headers {
				presented = append(presented, h[strings.IndexByte(h, '=')+1:])
			}
			checkResult(t, err, tt.want, append(presented, ghSecret, oldSecret, newSecret)...)
			if err != nil && err.(*Error).Method != "hmac" {
				t.Errorf("method %q, want hmac", err.(*Error).Method)
			}
		})
	}
}

func basicHeader(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestBearer(t *testing.T) {
	cfg := config.Auth{Bearer: &config.BearerAuth{Tokens: []string{"tok-old-abcdef", "tok-new-ghijkl"}}}
	tests := []struct {
		name  string
		authz string
		want  string
	}{
		{"right token", "Bearer tok-new-ghijkl", ""},
		{"second token (rotation)", "Bearer tok-old-abcdef", ""},
		{"scheme is case-insensitive", "bearer tok-new-ghijkl", ""},
		{"wrong token", "Bearer tok-new-ghijkX", ReasonBadToken},
		{"prefix of a token", "Bearer tok-new", ReasonBadToken},
		{"token plus suffix", "Bearer tok-new-ghijkl0", ReasonBadToken},
		{"empty token", "Bearer ", ReasonBadToken},
		{"scheme only", "Bearer", ReasonBadToken},
		{"missing", "", ReasonMissingCredentials},
		{"wrong scheme", basicHeader("tok-new-ghijkl", ""), ReasonMissingCredentials},
		{"token without scheme", "tok-new-ghijkl", ReasonMissingCredentials},
	}
	v := mustNew(t, cfg)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{}
			if tt.authz != "" {
				h["Authorization"] = tt.authz
			}
			err := v.Verify(request(h), nil)
			checkResult(t, err, tt.want, "tok-old-abcdef", "tok-new-ghijkl", "tok-new-ghijkX")
		})
	}
}

func TestBasic(t *testing.T) {
	cfg := config.Auth{Basic: &config.BasicAuth{Username: "alertmanager", Password: "pa$s: #w'o\"rd"}}
	tests := []struct {
		name  string
		authz string
		want  string
	}{
		{"right", basicHeader("alertmanager", "pa$s: #w'o\"rd"), ""},
		{"wrong password", basicHeader("alertmanager", "pa$s: #w'o\"rX"), ReasonBadPassword},
		{"wrong user", basicHeader("alertmanagex", "pa$s: #w'o\"rd"), ReasonBadPassword},
		{"empty password", basicHeader("alertmanager", ""), ReasonBadPassword},
		{"missing", "", ReasonMissingCredentials},
		{"bearer instead", "Bearer pa$s", ReasonMissingCredentials},
		{"malformed base64", "Basic !!!", ReasonMissingCredentials},
	}
	v := mustNew(t, cfg)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{}
			if tt.authz != "" {
				h["Authorization"] = tt.authz
			}
			err := v.Verify(request(h), nil)
			checkResult(t, err, tt.want, "pa$s: #w'o\"rd", "pa$s: #w'o\"rX", "alertmanagex")
		})
	}
}

func TestNone(t *testing.T) {
	v := mustNew(t, config.Auth{None: true})
	if err := v.Verify(request(nil), []byte("x")); err != nil {
		t.Fatal(err)
	}
}

// TestAnyOf: with several methods, any one authenticates, and a wrong
// credential is reported over missing ones.
func TestAnyOf(t *testing.T) {
	cfg := config.Auth{
		HMAC:   &config.HMACAuth{Secrets: []string{newSecret}},
		Bearer: &config.BearerAuth{Tokens: []string{"tok-new-ghijkl"}},
		Basic:  &config.BasicAuth{Username: "u", Password: "p"},
	}
	body := "payload"
	tests := []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{"signature only", map[string]string{"X-Signature-256": sign256(newSecret, body)}, ""},
		{"bearer only", map[string]string{"Authorization": "Bearer tok-new-ghijkl"}, ""},
		{"basic only", map[string]string{"Authorization": basicHeader("u", "p")}, ""},
		{"bad signature, good token", map[string]string{"X-Signature-256": sign256(oldSecret, body), "Authorization": "Bearer tok-new-ghijkl"}, ""},
		{"bad token", map[string]string{"Authorization": "Bearer nope"}, ReasonBadToken},
		{"bad password", map[string]string{"Authorization": basicHeader("u", "x")}, ReasonBadPassword},
		{"bad signature", map[string]string{"X-Signature-256": sign256(oldSecret, body)}, ReasonBadSignature},
		{"nothing", nil, ReasonMissingCredentials},
	}
	v := mustNew(t, cfg)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Verify(request(tt.headers), []byte(body))
			checkResult(t, err, tt.want, newSecret, oldSecret, "tok-new-ghijkl", "nope")
			if tt.want == ReasonMissingCredentials {
				msg := err.Error()
				for _, s := range []string{"X-Signature-256", "Bearer", "Basic"} {
					if !strings.Contains(msg, s) {
						t.Errorf("message %q does not name %s", msg, s)
					}
				}
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	const secret = "short-secret"
	tests := []struct {
		name string
		cfg  config.Auth
		want string
	}{
		{"nothing", config.Auth{}, "auth: at least one method required"},
		{"none with bearer", config.Auth{None: true, Bearer: &config.BearerAuth{Tokens: []string{"t"}}}, "auth.none: cannot be combined with bearer"},
		{"hmac without secrets", config.Auth{HMAC: &config.HMACAuth{}}, "auth.hmac.secrets: at least one required"},
		{"short hmac secret", config.Auth{HMAC: &config.HMACAuth{Secrets: []string{newSecret, secret}}}, "auth.hmac.secrets[1]: too short: at least 16 bytes"},
		{"bad header name", config.Auth{HMAC: &config.HMACAuth{Secrets: []string{newSecret}, Header: "X Sig"}}, `auth.hmac.header: "X Sig" is not a valid header name`},
		{"bearer without tokens", config.Auth{Bearer: &config.BearerAuth{}}, "auth.bearer.tokens: at least one required"},
		{"bearer token with a newline", config.Auth{Bearer: &config.BearerAuth{Tokens: []string{secret + "\n"}}}, "auth.bearer.tokens[0]: contains white space"},
		{"basic without password", config.Auth{Basic: &config.BasicAuth{Username: "u"}}, "auth.basic.password: required"},
		{"basic user with a colon", config.Auth{Basic: &config.BasicAuth{Username: "a:b", Password: secret}}, "auth.basic.username: must not contain ':'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error %q holds the secret", err)
			}
		})
	}
}

// TestOverHTTP sends real requests through a loopback server, so header
// canonicalisation and body handling are those of net/http.
func TestOverHTTP(t *testing.T) {
	v := mustNew(t, config.Auth{
		HMAC:   &config.HMACAuth{Secrets: []string{ghSecret}, Header: "X-Hub-Signature-256"},
		Bearer: &config.BearerAuth{Tokens: []string{"tok-new-ghijkl"}},
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := v.Verify(r, body); err != nil {
			http.Error(w, err.(*Error).Reason+": "+err.Error(), http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	tests := []struct {
		name    string
		headers map[string]string
		body    string
		status  int
		reason  string
	}{
		{"github vector, lower-case header name", map[string]string{"x-hub-signature-256": ghSig}, ghPayload, http.StatusNoContent, ""},
		{"bearer", map[string]string{"Authorization": "Bearer tok-new-ghijkl"}, "{}", http.StatusNoContent, ""},
		{"tampered body", map[string]string{"X-Hub-Signature-256": ghSig}, ghPayload + "!", http.StatusUnauthorized, ReasonBadSignature},
		{"nothing", nil, "{}", http.StatusUnauthorized, ReasonMissingCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, val := range tt.headers {
				req.Header[k] = []string{val} // as sent, not canonicalised
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || !bytes.HasPrefix(got, []byte(tt.reason)) {
				t.Fatalf("got %d %q, want %d %s", resp.StatusCode, got, tt.status, tt.reason)
			}
		})
	}
}

// FuzzVerify feeds arbitrary header values to every method: Verify must
// not panic, must accept only the right credential, and its message must
// depend on the configuration alone, never on what was presented.
func FuzzVerify(f *testing.F) {
	const secret, token = "fuzz-secret-0123456789", "fuzz-token-abcdef"
	body := []byte(`{"a":1}`)
	good := sign256(secret, string(body))
	for _, s := range []string{good, sign1(secret, string(body)), "sha256=", "sha256=zz", "=", "", " sha256=" + strings.Repeat("0", 64) + " ",
		"Bearer " + token, "bearer  " + token, "Basic Zm9vOmJhcg==", "Basic", "Bearer", "SHA1=" + strings.Repeat("a", 40)} {
		f.Add(s, s, s)
	}
	cfg := config.Auth{
		HMAC:   &config.HMACAuth{Secrets: []string{secret}, AllowSHA1: true},
		Bearer: &config.BearerAuth{Tokens: []string{token}},
	}
	v := mustNew(f, cfg)
	// Every message the verifier can produce, from canonical inputs.
	messages := map[string]bool{}
	for _, h := range []map[string]string{
		nil, {"X-Signature-256": "x"}, {"X-Signature-256": "md5=00"}, {"X-Signature-256": "sha256=" + strings.Repeat("0", 64)},
		{"Authorization": "Bearer x"}, {"Authorization": "Basic x"},
	} {
		messages[v.Verify(request(h), body).Error()] = true
	}
	mac1 := hmac.New(sha1.New, []byte(secret))
	mac1.Write(body)
	want1 := mac1.Sum(nil)
	mac256 := hmac.New(sha256.New, []byte(secret))
	mac256.Write(body)
	want256 := mac256.Sum(nil)
	f.Fuzz(func(t *testing.T, sig256, sig1, authz string) {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header["X-Signature-256"] = []string{sig256}
		r.Header["X-Signature"] = []string{sig1}
		r.Header["Authorization"] = []string{authz}
		err := v.Verify(r, body)
		if err == nil {
			// Only a correct signature or the token may authenticate.
			sigOK := func(v string, want []byte) bool {
				_, hx, _ := strings.Cut(strings.TrimSpace(v), "=")
				got, derr := hex.DecodeString(hx)
				return derr == nil && bytes.Equal(got, want)
			}
			presented := sig256
			if presented == "" {
				presented = sig1
			}
			scheme, tok, _ := strings.Cut(authz, " ")
			if !sigOK(presented, want256) && !sigOK(presented, want1) && (!strings.EqualFold(scheme, "bearer") || strings.Trim(tok, " ") != token) {
				t.Fatalf("accepted X-Signature-256=%q X-Signature=%q Authorization=%q", sig256, sig1, authz)
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("%T %v, want *Error", err, err)
		}
		if !messages[e.Message] {
			t.Fatalf("message %q depends on the presented values", e.Message)
		}
	})
}

func BenchmarkHMAC1KB(b *testing.B) {
	body := bytes.Repeat([]byte(`{"k":"v"},`), 103)[:1024]
	for _, n := range []int{1, 2} {
		secrets := []string{newSecret, oldSecret}[:n]
		b.Run([]string{"", "1secret", "2secrets"}[n], func(b *testing.B) {
			v := mustNew(b, config.Auth{HMAC: &config.HMACAuth{Secrets: secrets}})
			r := request(map[string]string{"X-Signature-256": sign256(newSecret, string(body))})
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := v.Verify(r, body); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
		})
	}
}
