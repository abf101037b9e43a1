package outputs

import (
	"net/url"

	"github.com/auditpipe/auditpipe/keypath"
)

// ParseHTTPURL checks the url key of an HTTP output: set, parseable,
// http or https, with a host, and without credentials in it (they would
// end up in logs; credentialsKey names where they belong). Errors never
// quote the URL, which may hold a token.
func ParseHTTPURL(raw, credentialsKey string) (*url.URL, error) {
	if raw == "" {
		return nil, keypath.Errorf("url", "required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse quotes the URL in its error.
		return nil, keypath.Errorf("url", "not a valid URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, keypath.Errorf("url", "scheme %q is not http or https", u.Scheme)
	case u.Host == "":
		return nil, keypath.Errorf("url", "no host")
	case u.User != nil:
		return nil, keypath.Errorf("url", "credentials in the URL would end up in logs; use %s", credentialsKey)
	}
	return u, nil
}
