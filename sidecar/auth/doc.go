// Package auth authenticates the requests posted to the sidecar's sources:
// HMAC signatures of the raw body (Spacelift and GitHub style, several
// secrets for rotation), bearer tokens, HTTP basic authentication, or
// explicitly none.
//
// Every comparison with a configured secret takes the same time whatever
// the presented value: signatures with hmac.Equal, tokens and passwords by
// comparing SHA-256 digests with subtle.ConstantTimeCompare (comparing the
// digests, not the values, so that not even the length of a configured
// token leaks).
//
// A failure is an *Error: a Reason fit for a metric label and a Message fit
// for the client, which never repeats a secret or the credential presented.
package auth
