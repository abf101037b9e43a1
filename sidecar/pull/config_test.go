package pull_test

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/sidecar/pull"
)

func TestConfigValidate(t *testing.T) {
	ok := pull.Config{URL: "http://yoq:8080/v1/audit"}
	tests := []struct {
		name string
		mut  func(c *pull.Config)
		want []string // substrings of the error; none: valid
	}{
		{"minimal", func(*pull.Config) {}, nil},
		{"everything", func(c *pull.Config) {
			c.URL = "https://yoq/v1/audit?node=a"
			c.Limit, c.Interval, c.Timeout = 500, time.Second, time.Second
			c.BearerToken = "t"
			c.Headers = map[string]string{"X-Tenant": "a"}
			c.TLS = outputs.TLSConfig{ServerName: "yoq.internal", MinVersion: "1.3"}
		}, nil},
		{"no url", func(c *pull.Config) { c.URL = "" }, []string{"url: required"}},
		{"relative url", func(c *pull.Config) { c.URL = "/v1/audit" }, []string{"url: scheme must be http or https"}},
		{"no host", func(c *pull.Config) { c.URL = "http:///v1/audit" }, []string{"url: no host"}},
		{"unparsable url", func(c *pull.Config) { c.URL = "http://yoq:port/" }, []string{"url: not a URL"}},
		{"credentials in the url", func(c *pull.Config) { c.URL = "http://user:abc@yoq/v1/audit" }, []string{"url: must not hold credentials"}},
		{"limit in the url", func(c *pull.Config) { c.URL = "http://yoq/v1/audit?limit=5" }, []string{"url: must not set limit (set limit)"}},
		{"tls with http", func(c *pull.Config) { c.TLS.CAFile = "ca.pem" }, []string{"tls: set, but url is http://"}},
		{"bad tls", func(c *pull.Config) { c.URL = "https://yoq/"; c.TLS.MinVersion = "1.1" }, []string{"tls.min_version"}},
		{"negatives", func(c *pull.Config) { c.Limit, c.Interval, c.Timeout = -1, -time.Second, -time.Second },
			[]string{"limit: must not be negative", "interval: must not be negative", "timeout: must not be negative"}},
		{"token with a line break", func(c *pull.Config) { c.BearerToken = "abc\r\nX-Evil: 1" }, []string{"bearer_token: must not contain line breaks"}},
		{"bad header name", func(c *pull.Config) { c.Headers = map[string]string{"X Bad": "v"} }, []string{`headers: "X Bad" is not a valid header name`}},
		{"header value with a line break", func(c *pull.Config) { c.Headers = map[string]string{"X-A": "a\nb"} }, []string{"headers.X-A: value must not contain line breaks"}},
		{"authorization twice", func(c *pull.Config) {
			c.BearerToken = "t"
			c.Headers = map[string]string{"authorization": "Basic x"}
		}, []string{"headers.authorization: conflicts with bearer_token"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mut(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %v, want it to mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "abc") {
				t.Errorf("the error quotes the token: %v", err)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	got := pull.Config{URL: "http://yoq/v1/audit"}.WithDefaults()
	if got.Limit != 100 || got.Interval != 10*time.Second || got.Timeout != 10*time.Second {
		t.Fatalf("defaults = %+v", got)
	}
	kept := pull.Config{Limit: 7, Interval: time.Second, Timeout: time.Minute}.WithDefaults()
	if kept.Limit != 7 || kept.Interval != time.Second || kept.Timeout != time.Minute {
		t.Fatalf("set values changed: %+v", kept)
	}
}

// The yaml keys are sidecar/config.Pull's.
func TestConfigYAML(t *testing.T) {
	const doc = `
url: https://yoq:8080/v1/audit
limit: 200
interval: 5s
bearer_token: tok
headers: {X-Tenant: a}
tls: {ca_file: /etc/yoq/ca.pem, server_name: yoq}
timeout: 3s
`
	var c pull.Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	want := pull.Config{URL: "https://yoq:8080/v1/audit", Limit: 200, Interval: 5 * time.Second, BearerToken: "tok",
		Headers: map[string]string{"X-Tenant": "a"}, TLS: outputs.TLSConfig{CAFile: "/etc/yoq/ca.pem", ServerName: "yoq"}, Timeout: 3 * time.Second}
	if c.URL != want.URL || c.Limit != want.Limit || c.Interval != want.Interval || c.BearerToken != want.BearerToken ||
		c.Headers["X-Tenant"] != "a" || c.TLS != want.TLS || c.Timeout != want.Timeout {
		t.Fatalf("decoded %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
