package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/auditpipe/auditpipe/outputs"
)

// kind is how a failed upload is treated.
type kind int

const (
	kindRetryable   kind = iota // connectivity, throttling, server errors
	kindCredentials             // retryable, loud: an operator must fix the credentials
	kindNoBucket                // retryable, loud: an operator must create the bucket
	kindMisrouted               // retryable, loud: wrong region or endpoint
	kindPermanent               // the store rejects this object as it is
)

// codeKind sorts S3 error codes. Codes it does not know fall back to the
// HTTP status (outputs.ClassifyHTTP's rules).
func codeKind(code string) (kind, bool) {
	switch code {
	case "SlowDown", "ServiceUnavailable", "InternalError", "OperationAborted",
		"Throttling", "ThrottlingException", "RequestLimitExceeded",
		// A 400, but S3 means "send it again".
		"RequestTimeout",
		// The body was damaged on the way: sending it again fixes that.
		"BadDigest", "XAmzContentSHA256Mismatch", "IncompleteBody":
		return kindRetryable, true
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "TokenRefreshRequired",
		"InvalidToken", "AccessDenied", "AllAccessDisabled", "AccountProblem", "RequestTimeTooSkewed",
		"KMS.DisabledException", "KMS.NotFoundException", "KMS.KMSInvalidStateException",
		// versitygw's InvalidAccessKeyId.
		"XAdminUserNotFound":
		return kindCredentials, true
	case "NoSuchBucket":
		return kindNoBucket, true
	case "PermanentRedirect", "TemporaryRedirect", "AuthorizationHeaderMalformed",
		"IllegalLocationConstraintException":
		return kindMisrouted, true
	case "InvalidRequest", "InvalidArgument", "EntityTooLarge", "EntityTooSmall", "KeyTooLongError",
		"MetadataTooLarge", "InvalidStorageClass", "InvalidObjectState", "InvalidDigest", "MalformedXML":
		return kindPermanent, true
	}
	return kindRetryable, false
}

// classify turns a PutObject error into the error Write reports: retryable
// unless S3 refused the object itself, with a message that says what an
// operator should look at.
func (o *Output) classify(obj *object, err error) (kind, error) {
	where := fmt.Sprintf("s3: put s3://%s/%s (%d events)", o.bucket, obj.key, len(obj.idx))
	var api smithy.APIError
	var resp *awshttp.ResponseError
	code, status := "", 0
	if errors.As(err, &api) {
		code = api.ErrorCode()
	}
	if errors.As(err, &resp) {
		status = resp.HTTPStatusCode()
	}
	k, known := codeKind(code)
	if !known {
		switch {
		case status == 0:
			k = kindRetryable // no answer: network, timeout, credential lookup
		case status >= 300 && status < 400:
			k = kindMisrouted
		case status == http.StatusNotFound:
			// A PUT creates the key, so a 404 is about something an
			// operator sets up (the bucket, the user on stores that
			// name it their own way): keep the data.
			k = kindRetryable
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			k = kindCredentials
		case outputs.IsPermanent(outputs.ClassifyHTTP(status, nil, "")):
			k = kindPermanent
		}
	}
	var retryAfter time.Duration
	if resp != nil && resp.Response != nil {
		retryAfter = outputs.ParseRetryAfter(resp.Response.Header.Get("Retry-After"), time.Now())
	}
	switch k {
	case kindCredentials:
		return k, fmt.Errorf("%s: credentials or permissions rejected (%s): %w", where, code, err)
	case kindNoBucket:
		return k, fmt.Errorf("%s: bucket %q does not exist: %w", where, o.bucket, err)
	case kindMisrouted:
		return k, fmt.Errorf("%s: wrong region or endpoint (%s): %w", where, code, err)
	case kindPermanent:
		return k, outputs.Permanent(fmt.Errorf("%s: refused (%s): %w", where, code, err))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return k, fmt.Errorf("%s: timed out: %w", where, err)
	}
	return k, outputs.RetryAfter(fmt.Errorf("%s: %w", where, err), retryAfter)
}

// logFailures logs, once per Write and kind, the failures only an
// operator can end: retrying keeps the data but fixes nothing by itself.
// Plain retryable failures are left to the Deliverer's retry log.
func (o *Output) logFailures(results []result) {
	var objects [kindPermanent + 1]int
	var first [kindPermanent + 1]error
	for _, r := range results {
		if r.err != nil {
			objects[r.kind]++
			if first[r.kind] == nil {
				first[r.kind] = r.err
			}
		}
	}
	for k, err := range first {
		if err == nil {
			continue
		}
		n := objects[k]
		switch kind(k) {
		case kindCredentials:
			o.log.Error("s3: the store rejected the credentials or permissions; events are kept and retried", "bucket", o.bucket, "objects", n, "err", err)
		case kindNoBucket:
			o.log.Error("s3: bucket does not exist; events are kept and retried until it is created", "bucket", o.bucket, "objects", n, "err", err)
		case kindMisrouted:
			o.log.Error("s3: the store redirected the request, check region and endpoint; events are kept and retried", "bucket", o.bucket, "objects", n, "err", err)
		case kindPermanent:
			o.log.Warn("s3: the store refused objects; their events go to the dead-letter store", "bucket", o.bucket, "objects", n, "err", err)
		}
	}
}
