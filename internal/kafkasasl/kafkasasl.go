package kafkasasl

import (
	"errors"
	"strings"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/auditpipe/auditpipe/keypath"
)

// Config is SASL authentication, under a Kafka client's `sasl` key.
type Config struct {
	// Mechanism is plain, scram-sha-256 or scram-sha-512. Default empty:
	// no SASL.
	Mechanism string `yaml:"mechanism"`
	// Username is required with a mechanism.
	Username string `yaml:"username"`
	// Password is required with a mechanism. It is never logged.
	Password string `yaml:"password"`
}

// Mechanism names, as written in the configuration.
const (
	Plain       = "plain"
	ScramSHA256 = "scram-sha-256"
	ScramSHA512 = "scram-sha-512"
)

// Enabled reports whether a mechanism is set.
func (c Config) Enabled() bool { return c.Mechanism != "" }

// IsPlain reports whether the mechanism sends the password as it is
// (callers warn when that happens without TLS).
func (c Config) IsPlain() bool { return strings.EqualFold(c.Mechanism, Plain) }

// Validate reports every invalid field, each as a keypath.Error from
// `sasl` down (sasl.mechanism, sasl.username). No message holds the
// password.
func (c Config) Validate() error {
	if c.Mechanism == "" {
		if c.Username != "" || c.Password != "" {
			return keypath.Errorf("sasl.mechanism", "required when sasl.username or sasl.password is set")
		}
		return nil
	}
	var errs []error
	switch strings.ToLower(c.Mechanism) {
	case Plain, ScramSHA256, ScramSHA512:
	default:
		errs = append(errs, keypath.Errorf("sasl.mechanism", "%q is not plain, scram-sha-256 or scram-sha-512", c.Mechanism))
	}
	if c.Username == "" {
		errs = append(errs, keypath.Errorf("sasl.username", "required with sasl.mechanism"))
	}
	if c.Password == "" {
		errs = append(errs, keypath.Errorf("sasl.password", "required with sasl.mechanism"))
	}
	return errors.Join(errs...)
}

// Franz returns the franz-go mechanism for c; nil when SASL is off or
// the mechanism is unknown (Validate reports that).
func (c Config) Franz() sasl.Mechanism {
	switch strings.ToLower(c.Mechanism) {
	case Plain:
		return plain.Auth{User: c.Username, Pass: c.Password}.AsMechanism()
	case ScramSHA256:
		return scram.Auth{User: c.Username, Pass: c.Password}.AsSha256Mechanism()
	case ScramSHA512:
		return scram.Auth{User: c.Username, Pass: c.Password}.AsSha512Mechanism()
	}
	return nil
}
