package auth

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Spacelift's legacy signature, only when allow_sha1 is set
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"hash"
	"net/http"
	"strings"
	"sync"

	"github.com/auditpipe/auditpipe/sidecar/config"
)

// Verifier authenticates one request. body is the raw request body, as
// read (signatures are computed over exactly these bytes). Implementations
// are safe for concurrent use.
type Verifier interface {
	Verify(r *http.Request, body []byte) error
}

// Reasons an authentication fails, for metric labels.
const (
	ReasonMissingCredentials = "missing_credentials" // no credential for any configured method
	ReasonBadSignature       = "bad_signature"       // a well-formed signature that no secret produces
	ReasonMalformedSignature = "malformed_signature" // not sha256=<64 hex digits> (or sha1=<40>)
	ReasonSHA1NotAllowed     = "sha1_not_allowed"    // a SHA-1 signature without allow_sha1
	ReasonBadToken           = "bad_token"           // a bearer token that is not configured
	ReasonBadPassword        = "bad_password"        // basic credentials that do not match
)

// Error is an authentication failure.
type Error struct {
	// Reason is one of the Reason constants.
	Reason string
	// Method is the yaml key of the method that failed (hmac, bearer,
	// basic), or "" when no method found its credential.
	Method string
	// Message explains the failure to the client. It names headers and
	// schemes, never a secret or the presented credential.
	Message string
}

func (e *Error) Error() string { return e.Message }

// LegacySignatureHeader is Spacelift's SHA-1 signature header, accepted
// when allow_sha1 is set.
const LegacySignatureHeader = "X-Signature"

// New returns the verifier for cfg: none accepts every request; otherwise
// a request is authenticated when any configured method (tried in the order
// hmac, bearer, basic) accepts it. cfg is validated first (see
// config.Auth.Validate); an empty hmac.header means X-Signature-256.
func New(cfg config.Auth) (Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.None {
		return none{}, nil
	}
	var vs []method
	if cfg.HMAC != nil {
		vs = append(vs, newHMAC(*cfg.HMAC))
	}
	if cfg.Bearer != nil {
		vs = append(vs, newBearer(*cfg.Bearer))
	}
	if cfg.Basic != nil {
		vs = append(vs, newBasic(*cfg.Basic))
	}
	if len(vs) == 1 {
		return vs[0], nil
	}
	return anyOf(vs), nil
}

// method is one authentication method.
type method interface {
	Verifier
	// expects describes the credential the method wants, for the message
	// of a request that has none.
	expects() string
}

type none struct{}

func (none) Verify(*http.Request, []byte) error { return nil }

// anyOf accepts a request any of its methods accepts.
type anyOf []method

func (a anyOf) Verify(r *http.Request, body []byte) error {
	var first *Error
	for _, m := range a {
		err := m.Verify(r, body)
		if err == nil {
			return nil
		}
		// A credential that was presented and is wrong explains the
		// failure better than the methods whose credential is absent.
		if e, ok := err.(*Error); ok && e.Reason != ReasonMissingCredentials && first == nil {
			first = e
		}
	}
	if first != nil {
		return first
	}
	wants := make([]string, len(a))
	for i, m := range a {
		wants[i] = m.expects()
	}
	return &Error{Reason: ReasonMissingCredentials, Message: "missing credentials: expected " + strings.Join(wants, ", or ")}
}

// hmacVerifier checks "<header>: sha256=<hex>" (and the legacy
// "X-Signature: sha1=<hex>" when allowed) against every secret.
type hmacVerifier struct {
	// macs hold, per secret, keyed HMAC states ready for reuse: hmac.New
	// costs allocations and two key blocks per secret per request.
	sha256MACs, sha1MACs []*sync.Pool
	header               string // canonical
	allowSHA1            bool

	// Messages, built once: they depend only on the configuration.
	missing, malformed, bad, sha1Refused string
}

func newHMAC(c config.HMACAuth) *hmacVerifier {
	h := &hmacVerifier{header: http.CanonicalHeaderKey(c.Header), allowSHA1: c.AllowSHA1}
	if h.header == "" {
		h.header = config.DefaultHMACHeader
	}
	for _, s := range c.Secrets {
		key := []byte(s)
		h.sha256MACs = append(h.sha256MACs, &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }})
		h.sha1MACs = append(h.sha1MACs, &sync.Pool{New: func() any { return hmac.New(sha1.New, key) }})
	}
	h.missing = "missing signature: expected " + h.expects()
	h.malformed = "malformed signature: expected " + h.header + ": sha256=<64 hex digits>"
	if h.allowSHA1 {
		h.malformed += " or " + LegacySignatureHeader + ": sha1=<40 hex digits>"
	}
	h.bad = "signature does not match the body"
	h.sha1Refused = "SHA-1 signatures are not accepted: sign with HMAC-SHA256 in " + h.header + ": sha256=<hex>"
	return h
}

func (h *hmacVerifier) expects() string {
	return h.header + ": sha256=<hex HMAC-SHA256 of the body>"
}

func (h *hmacVerifier) fail(reason, msg string) error {
	return &Error{Reason: reason, Method: "hmac", Message: msg}
}

func (h *hmacVerifier) Verify(r *http.Request, body []byte) error {
	// The configured header wins: a request with both is judged by the
	// stronger signature, never downgraded to SHA-1.
	v := r.Header.Get(h.header)
	if v == "" {
		v = r.Header.Get(LegacySignatureHeader)
	}
	if v == "" {
		return h.fail(ReasonMissingCredentials, h.missing)
	}
	algo, sig, ok := strings.Cut(strings.TrimSpace(v), "=")
	if !ok {
		return h.fail(ReasonMalformedSignature, h.malformed)
	}
	var macs []*sync.Pool
	var size int
	switch strings.ToLower(algo) {
	case "sha256":
		macs, size = h.sha256MACs, sha256.Size
	case "sha1":
		if !h.allowSHA1 {
			return h.fail(ReasonSHA1NotAllowed, h.sha1Refused)
		}
		macs, size = h.sha1MACs, sha1.Size
	default:
		return h.fail(ReasonMalformedSignature, h.malformed)
	}
	var buf [sha256.Size]byte
	want := buf[:size]
	if len(sig) != hex.EncodedLen(size) {
		return h.fail(ReasonMalformedSignature, h.malformed)
	}
	if _, err := hex.Decode(want, []byte(sig)); err != nil {
		return h.fail(ReasonMalformedSignature, h.malformed)
	}
	// Every secret is tried, so the time taken does not tell which one
	// matched.
	match := false
	var sum [sha256.Size]byte
	for _, pool := range macs {
		m := pool.Get().(hash.Hash)
		m.Reset()
		m.Write(body)
		match = hmac.Equal(m.Sum(sum[:0]), want) || match
		pool.Put(m)
	}
	if !match {
		return h.fail(ReasonBadSignature, h.bad)
	}
	return nil
}

// bearerVerifier checks "Authorization: Bearer <token>".
type bearerVerifier struct {
	digests [][sha256.Size]byte
}

func newBearer(c config.BearerAuth) *bearerVerifier {
	b := &bearerVerifier{}
	for _, t := range c.Tokens {
		b.digests = append(b.digests, sha256.Sum256([]byte(t)))
	}
	return b
}

func (b *bearerVerifier) expects() string { return "Authorization: Bearer <token>" }

func (b *bearerVerifier) Verify(r *http.Request, _ []byte) error {
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return &Error{Reason: ReasonMissingCredentials, Method: "bearer", Message: "missing credentials: expected " + b.expects()}
	}
	scheme, token, _ := strings.Cut(authz, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return &Error{Reason: ReasonMissingCredentials, Method: "bearer", Message: "the Authorization header is not a Bearer token: expected " + b.expects()}
	}
	token = strings.Trim(token, " ")
	d := sha256.Sum256([]byte(token))
	match := 0
	for i := range b.digests {
		match |= subtle.ConstantTimeCompare(d[:], b.digests[i][:])
	}
	if match != 1 || token == "" {
		return &Error{Reason: ReasonBadToken, Method: "bearer", Message: "invalid bearer token"}
	}
	return nil
}

// basicVerifier checks HTTP basic credentials.
type basicVerifier struct {
	user, pass [sha256.Size]byte
}

func newBasic(c config.BasicAuth) *basicVerifier {
	return &basicVerifier{user: sha256.Sum256([]byte(c.Username)), pass: sha256.Sum256([]byte(c.Password))}
}

func (b *basicVerifier) expects() string { return "Authorization: Basic <credentials>" }

func (b *basicVerifier) Verify(r *http.Request, _ []byte) error {
	user, pass, ok := r.BasicAuth()
	if !ok {
		msg := "missing credentials: expected " + b.expects()
		if r.Header.Get("Authorization") != "" {
			msg = "the Authorization header holds no valid Basic credentials: expected " + b.expects()
		}
		return &Error{Reason: ReasonMissingCredentials, Method: "basic", Message: msg}
	}
	u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
	// Both are compared whatever the first gives, so the time taken does
	// not tell whether the user name was right.
	if subtle.ConstantTimeCompare(u[:], b.user[:])&subtle.ConstantTimeCompare(p[:], b.pass[:]) != 1 {
		return &Error{Reason: ReasonBadPassword, Method: "basic", Message: "invalid user name or password"}
	}
	return nil
}
