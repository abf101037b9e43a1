package splunkhec

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe/keypath"
	"github.com/auditpipe/auditpipe/outputs"
)

// Config configures the splunk_hec output; it sits under the `splunk_hec`
// key of an output entry.
type Config struct {
	// URL is the HEC base URL, scheme://host:port (Splunk Cloud:
	// https://http-inputs-<stack>.splunkcloud.com). Required. The output
	// appends /services/collector/event and /services/collector/ack; a
	// path given here is kept in front of them (a proxy's prefix).
	URL string `yaml:"url"`
	// Token is the HEC token, sent as "Authorization: Splunk <token>".
	// Required. It is never logged.
	Token string `yaml:"token"`
	// Index is a template (see outputs.Template) for each event's index.
	// Default empty: the token's default index.
	Index string `yaml:"index"`
	// Sourcetype is a template for each event's sourcetype. Default
	// "auditpipe:{source}".
	Sourcetype string `yaml:"sourcetype"`
	// Source is a template for each event's source. Default
	// "auditpipe:{source_name}".
	Source string `yaml:"source"`
	// Host is a template for each event's host. Default empty: Splunk
	// uses the address the request came from.
	Host string `yaml:"host"`
	// Fields names the labels sent as indexed fields (fields: {name:
	// value}); a label an event lacks is left out. Default none.
	Fields []string `yaml:"fields"`
	// Gzip compresses request bodies (Content-Encoding: gzip). Default
	// false.
	Gzip bool `yaml:"gzip"`
	// TLS is the client TLS configuration for an https:// URL.
	TLS outputs.TLSConfig `yaml:"tls"`
	// Timeout bounds one request, from dialling to reading the answer.
	// Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// Ack turns indexer acknowledgement on: a batch counts as delivered
	// only once /services/collector/ack reports its ackId true. The token
	// must have indexer acknowledgement enabled. Default true.
	Ack *bool `yaml:"ack"`
	// AckTimeout is how long a batch's acknowledgement is waited for
	// before the batch is re-sent. Default 60s.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	// AckPollInterval is the wait between two queries of the ack
	// endpoint; the first query is made as soon as the events are
	// accepted. Default 500ms.
	AckPollInterval time.Duration `yaml:"ack_poll_interval"`
	// Channel is the data channel (X-Splunk-Request-Channel), a GUID.
	// Default: a random one per output instance.
	Channel string `yaml:"channel"`
	// Version is the program's version, sent as User-Agent
	// auditpipe/<version>. It is set by the program, not in YAML.
	Version string `yaml:"-"`
}

// The defaults.
const (
	DefaultSourcetype      = "auditpipe:{source}"
	DefaultSource          = "auditpipe:{source_name}"
	DefaultTimeout         = 10 * time.Second
	DefaultAckTimeout      = 60 * time.Second
	DefaultAckPollInterval = 500 * time.Millisecond
)

// AckOn reports whether indexer acknowledgement is on.
func (c Config) AckOn() bool { return c.Ack == nil || *c.Ack }

// WithDefaults returns c with every zero field set to its default. The
// channel is not chosen here: New picks a random one.
func (c Config) WithDefaults() Config {
	if c.Sourcetype == "" {
		c.Sourcetype = DefaultSourcetype
	}
	if c.Source == "" {
		c.Source = DefaultSource
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Ack == nil {
		on := true
		c.Ack = &on
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.AckPollInterval == 0 {
		c.AckPollInterval = DefaultAckPollInterval
	}
	return c
}

var channelGUID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Validate reports the first invalid field by its YAML key. Zero values
// are valid where they stand for a default.
func (c Config) Validate() error {
	u, err := outputs.ParseHTTPURL(c.URL, "token")
	if err != nil {
		return err
	}
	switch {
	case u.RawQuery != "":
		return keypath.Errorf("url", "a query string is not allowed; the token goes in token")
	case strings.Contains(u.Path, "/services/collector"):
		return keypath.Errorf("url", "give the HEC base URL (scheme://host:port), without /services/collector")
	}
	if c.Token == "" {
		return keypath.Errorf("token", "required")
	}
	if strings.ContainsAny(c.Token, " \r\n\t\x00") {
		return keypath.Errorf("token", "holds white space or a control character")
	}
	for _, t := range []struct{ key, v string }{
		{"index", c.Index}, {"sourcetype", c.Sourcetype}, {"source", c.Source}, {"host", c.Host},
	} {
		if _, err := outputs.ParseTemplate(t.v); err != nil {
			return keypath.Errorf(t.key, "%v", err)
		}
	}
	if c.Index != "" {
		if t, _ := outputs.ParseTemplate(c.Index); t.IsConstant() && !validIndex(c.Index) {
			return keypath.Errorf("index", "%q is not a Splunk index name (lower-case letters, digits, _ and -)", c.Index)
		}
	}
	for i, f := range c.Fields {
		if f == "" {
			return keypath.Errorf("fields["+strconv.Itoa(i)+"]", "empty label name")
		}
	}
	if err := c.TLS.Validate(); err != nil {
		return err
	}
	if !c.TLS.IsZero() && u.Scheme != "https" {
		return keypath.Errorf("tls", "set, but url is http://; use https://")
	}
	switch {
	case c.Timeout < 0:
		return keypath.Errorf("timeout", "must be positive")
	case c.AckTimeout < 0:
		return keypath.Errorf("ack_timeout", "must be positive")
	case c.AckPollInterval < 0:
		return keypath.Errorf("ack_poll_interval", "must be positive")
	case c.AckTimeout > 0 && c.AckPollInterval > c.AckTimeout:
		return keypath.Errorf("ack_poll_interval", "longer than ack_timeout %s", c.AckTimeout)
	}
	if c.Channel != "" && !channelGUID.MatchString(c.Channel) {
		return keypath.Errorf("channel", "%q is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", c.Channel)
	}
	return nil
}

// validIndex reports whether name is a Splunk index name: lower-case
// letters, digits, "_" and "-", not starting with "-" (the internal
// indexes start with "_"), at most 80 bytes.
func validIndex[T string | []byte](name T) bool {
	if len(name) == 0 || len(name) > 80 || name[0] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
