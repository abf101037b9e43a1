package elastictest

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// SigV4 are the credentials and scope a server requires requests to be
// signed with (Config.SigV4).
type SigV4 struct {
	// Region and Service are the credential scope: "us-east-1" and "es"
	// (Amazon OpenSearch Service) or "aoss" (Serverless).
	Region, Service string
	// AccessKeyID and SecretAccessKey are the only credentials accepted.
	AccessKeyID, SecretAccessKey string
}

// sigv4Skew is how far a request's X-Amz-Date may be from now, as AWS
// allows.
const sigv4Skew = 5 * time.Minute

// verify recomputes r's signature with the AWS SDK's signer from the
// headers r says it signed, and answers 403 with AWS's messages when it is
// missing or does not match.
func (c *SigV4) verify(w http.ResponseWriter, r *http.Request, body []byte) bool {
	deny := func(msg string) bool {
		writeJSON(w, http.StatusForbidden, map[string]string{"message": msg})
		return false
	}
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return deny("Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization=" + auth)
	}
	var cred, signed, sig string
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			sig = v
		}
	}
	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return deny("Credential should be scoped to a valid region.")
	}
	if scope[0] != c.AccessKeyID {
		return deny("The security token included in the request is invalid.")
	}
	if scope[2] != c.Region || scope[3] != c.Service {
		return deny("Credential should be scoped to correct service: '" + c.Service + "' and region '" + c.Region + "'.")
	}
	t, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return deny("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	if d := time.Since(t); d > sigv4Skew || d < -sigv4Skew {
		return deny("Signature expired: " + t.Format("20060102T150405Z") + " is now earlier or later than the allowed skew.")
	}
	hash := r.Header.Get("X-Amz-Content-Sha256")
	if hash == "" || hash == "UNSIGNED-PAYLOAD" {
		sum := sha256.Sum256(body)
		hash = hex.EncodeToString(sum[:])
	}
	// The request as the client signed it: same method, path, query,
	// host and signed headers.
	req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	if err != nil {
		return deny(err.Error())
	}
	req.Host = r.Host
	req.ContentLength = r.ContentLength
	for _, h := range strings.Split(signed, ";") {
		if h == "host" || h == "content-length" {
			continue
		}
		if vs := r.Header.Values(h); vs != nil {
			req.Header[http.CanonicalHeaderKey(h)] = vs
		}
	}
	creds := aws.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(r.Context(), creds, req, hash, c.Service, c.Region, t); err != nil {
		return deny(err.Error())
	}
	_, want, _ := strings.Cut(req.Header.Get("Authorization"), "Signature=")
	if !eq(want, sig) {
		return deny("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	return true
}
