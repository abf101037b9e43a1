package config

import (
	"github.com/auditpipe/auditpipe/integrity"
	"maps"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/dlq"
	"github.com/auditpipe/auditpipe/outputs/fanout"
	"github.com/auditpipe/auditpipe/sidecar/kafkasource"
	"github.com/auditpipe/auditpipe/sidecar/queue"
	"github.com/auditpipe/auditpipe/transformers/external"
	"github.com/auditpipe/auditpipe/transformers/formats"
)

// Defaults that are not derived from another key.
const (
	DefaultDataDir           = "./data"
	DefaultListen            = "127.0.0.1:8080"
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	// DefaultMaxInflightBytes admits two bodies of the default 8 MiB at
	// once: a body, its transform (about twice its size) and its encoded
	// events are alive together, and on two cores a third body would only
	// wait for CPU. Measured by TestMemoryBoundedUnderBigBodies: 64
	// concurrent 8 MB bodies peak at 172-204 MiB RSS with it.
	DefaultMaxInflightBytes = 16 << 20
	DefaultWriteTimeout     = 30 * time.Second
	DefaultIdleTimeout      = 120 * time.Second
	// DefaultShutdownGrace leaves 5s of Kubernetes' default
	// terminationGracePeriodSeconds (30) for closing outputs before SIGKILL.
	DefaultShutdownGrace = 25 * time.Second
	DefaultTLSMinVersion = "1.2"
	DefaultFormat        = "auto"
	DefaultHMACHeader    = "X-Signature-256"
	DefaultPullLimit     = 100
	DefaultPullInterval  = 10 * time.Second
	DefaultPullTimeout   = 10 * time.Second
	DefaultLogLevel      = "info"
	DefaultLogFormat     = "json"
	DefaultReadyMaxFill  = 0.9
)

// Config is the sidecar's configuration file.
type Config struct {
	// DataDir holds the queue, the dead-letter store and pull watermarks
	// unless those say otherwise. Default "./data".
	DataDir string `yaml:"data_dir"`
	// Server is the HTTP listener sources are posted to.
	Server Server `yaml:"server"`
	// Sources are the named endpoints events arrive at. At least one is
	// required.
	Sources []Source `yaml:"sources"`
	// Queue is the durable on-disk queue between sources and outputs.
	// Default dir: data_dir/queue; the other defaults are the queue
	// package's.
	Queue queue.Config `yaml:"queue"`
	// Outputs are where events go (outputs/fanout). Default: one stdout
	// output, applied when the outputs are built.
	Outputs []fanout.OutputConfig `yaml:"outputs"`
	// DeadLetter stores events an output rejected for good. Default dir:
	// data_dir/dlq.
	DeadLetter dlq.Config `yaml:"dead_letter"`
	// Labels are static labels added to every event (cluster,
	// environment). Keys are Prometheus-style label names. Default none.
	Labels map[string]string `yaml:"labels"`
	// PodLabels adds labels from the downward API environment: POD_NAME ->
	// pod, POD_NAMESPACE -> namespace, NODE_NAME -> node, when set.
	// Default true.
	PodLabels *bool `yaml:"pod_labels"`
	// Common holds redact (the detail keys whose values are removed) and
	// limits (what decoding one payload may cost), as the formats declare
	// them.
	formats.Common `yaml:",inline"`
	// Log configures the sidecar's own logs.
	Log Log `yaml:"log"`
	// Ready configures when /readyz reports not ready.
	Ready Ready `yaml:"ready"`
	// Integrity turns on tamper evidence: with a signing key, every
	// output (but those with `integrity: false`) seals what it delivers
	// into its own signed hash chain. Default off.
	Integrity integrity.Config `yaml:"integrity"`
}

// Server is the HTTP listener.
type Server struct {
	// Listen is the address to listen on. Default "127.0.0.1:8080" (set
	// ":8080" to accept from other pods).
	Listen string `yaml:"listen"`
	// TLS serves HTTPS (and optionally requires client certificates).
	// Default off: plain HTTP.
	TLS ServerTLS `yaml:"tls"`
	// MaxBodyBytes is the largest request body accepted (413 above it).
	// Default limits.max_payload_bytes (8 MiB unless set).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxInflightBytes bounds the request bodies being read and
	// transformed at once, across all sources: a request that would pass
	// it is answered 503 with Retry-After before its body is read, so
	// memory stays bounded however many senders post at once. A request
	// counts its Content-Length, or its source's max_body_bytes when the
	// length is unknown or the body is compressed. Default 16 MiB, or the
	// largest max_body_bytes when that is more.
	MaxInflightBytes int64 `yaml:"max_inflight_bytes"`
	// ReadHeaderTimeout bounds reading request headers. Default 5s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request. Default 30s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds handling a request and writing its answer.
	// Default 30s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes idle keep-alive connections. Default 120s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ShutdownGrace is how long requests in flight may take to finish
	// after SIGTERM. Default 25s (Kubernetes' default
	// terminationGracePeriodSeconds is 30).
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
}

// ServerTLS is the listener's TLS configuration. The files are re-read
// when they change (a renewed certificate needs no restart).
type ServerTLS struct {
	// CertFile and KeyFile are the server's certificate chain and key
	// (PEM). Set both to serve HTTPS. Default unset: plain HTTP.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile turns on mTLS: client certificates are required and
	// verified against these CAs (PEM). Requires cert_file. Default unset.
	ClientCAFile string `yaml:"client_ca_file"`
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string `yaml:"min_version"`
}

// Enabled reports whether HTTPS is configured.
func (t ServerTLS) Enabled() bool { return t.CertFile != "" }

// Source is one named endpoint.
type Source struct {
	// Name identifies the source: [a-z0-9][a-z0-9_-]*, unique. It is
	// served at POST /v1/sources/<name> and becomes source.name of its
	// events. Required.
	Name string `yaml:"name"`
	// Format is the decoder: spacelift, alertmanager, app, k8s, auto
	// (detect per payload), or external (a transformer plugin, configured
	// under transformer). Default "auto".
	Format string `yaml:"format"`
	// Auth authenticates requests: at least one method, or none: true.
	// Required.
	Auth Auth `yaml:"auth"`
	// MaxBodyBytes is this source's largest body. Default
	// server.max_body_bytes.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// RateLimit limits requests to this source. Default unlimited.
	RateLimit RateLimit `yaml:"rate_limit"`
	// Labels are added to this source's events, over the global labels.
	// Default none.
	Labels map[string]string `yaml:"labels"`
	// Sections holds alertmanager, app and k8s, the settings of those
	// formats (also read by auto), as the formats declare them.
	formats.Sections `yaml:",inline"`
	// Pull makes this a pull source: instead of being posted to, the
	// sidecar polls an endpoint. Only with format app or auto. Default
	// unset.
	Pull *Pull `yaml:"pull"`
	// Transformer is the external transformer plugin of format external:
	// {path, args, env, checksum, timeout, auto_mtls, max_batch}. Required
	// with format external, refused otherwise.
	Transformer *external.Config `yaml:"transformer"`

	// Kafka makes this a Kafka source: instead of being posted to, the
	// sidecar consumes the topics as a member of a consumer group, one
	// payload per message (sidecar/kafkasource). A Kafka source is not
	// served over HTTP and takes no auth or rate_limit. Default unset.
	Kafka *kafkasource.Config `yaml:"kafka"`
}

// Auth lists the accepted authentication methods: any configured method
// that succeeds authenticates the request.
type Auth struct {
	// None explicitly accepts unauthenticated requests (local examples).
	// Not together with another method. Default false.
	None bool `yaml:"none"`
	// HMAC verifies a signature of the raw body (Spacelift, GitHub style).
	HMAC *HMACAuth `yaml:"hmac"`
	// Bearer accepts "Authorization: Bearer <token>".
	Bearer *BearerAuth `yaml:"bearer"`
	// Basic accepts HTTP basic authentication.
	Basic *BasicAuth `yaml:"basic"`
}

// HMACAuth verifies "<header>: sha256=<hex HMAC-SHA256 of the raw body>".
type HMACAuth struct {
	// Secrets are the shared secrets, at least 16 bytes each; a signature
	// made with any of them is accepted, so a secret can be rotated
	// without downtime. Required.
	Secrets []string `yaml:"secrets"`
	// Header carries the signature. Default "X-Signature-256".
	Header string `yaml:"header"`
	// AllowSHA1 also accepts "X-Signature: sha1=<hex>" (Spacelift's legacy
	// header). Default false: SHA-1 signatures are rejected.
	AllowSHA1 bool `yaml:"allow_sha1"`
}

// BearerAuth accepts "Authorization: Bearer <token>" for any of Tokens.
type BearerAuth struct {
	// Tokens are the accepted tokens; several allow rotation. Required.
	Tokens []string `yaml:"tokens"`
}

// BasicAuth accepts HTTP basic authentication with one user.
type BasicAuth struct {
	// Username is required and must not contain ':'.
	Username string `yaml:"username"`
	// Password is required.
	Password string `yaml:"password"`
}

// Methods returns the configured methods' yaml keys, in the order they are
// tried.
func (a Auth) Methods() []string {
	var m []string
	if a.HMAC != nil {
		m = append(m, "hmac")
	}
	if a.Bearer != nil {
		m = append(m, "bearer")
	}
	if a.Basic != nil {
		m = append(m, "basic")
	}
	return m
}

// RateLimit is a token bucket per source.
type RateLimit struct {
	// RequestsPerSecond is the sustained rate. Default 0: unlimited.
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	// Burst is how many requests may arrive at once. Default
	// max(1, ceil(requests_per_second)).
	Burst int `yaml:"burst"`
}

// Pull polls an HTTP endpoint that serves audit entries (yoq's
// /v1/audit).
type Pull struct {
	// URL is polled with ?limit=N added, e.g. http://yoq:8080/v1/audit.
	// http or https. Required.
	URL string `yaml:"url"`
	// Limit is the most entries asked for per poll, 1..10000. Default 100.
	Limit int `yaml:"limit"`
	// Interval is the time between polls, at least 1s. Default 10s.
	Interval time.Duration `yaml:"interval"`
	// BearerToken is sent as "Authorization: Bearer <token>". Default
	// unset.
	BearerToken string `yaml:"bearer_token"`
	// Headers are added to every poll. Default none.
	Headers map[string]string `yaml:"headers"`
	// TLS configures the client for an https URL. Default: system CAs.
	TLS outputs.TLSConfig `yaml:"tls"`
	// Timeout bounds one poll. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// Log configures the sidecar's logs.
type Log struct {
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
	// Format is json (default) or text.
	Format string `yaml:"format"`
}

// Ready configures /readyz.
type Ready struct {
	// MaxLag fails /readyz when an output's oldest undelivered event is
	// older than this. Default 0: off.
	MaxLag time.Duration `yaml:"max_lag"`
	// MaxFill fails /readyz when the queue holds more than this fraction
	// of queue.max_bytes, in (0, 1]. Default 0.9.
	MaxFill float64 `yaml:"max_fill"`
}

// WithDefaults returns a copy of c with every unset key set to its
// documented default. It is the only place defaults are applied; keys whose
// default derives from another key (queue.dir from data_dir, a source's
// max_body_bytes from server.max_body_bytes) are filled after that key.
// c itself is not modified.
func (c Config) WithDefaults() Config {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	c.Limits = c.Limits.WithDefaults()

	s := &c.Server
	if s.Listen == "" {
		s.Listen = DefaultListen
	}
	if s.MaxBodyBytes == 0 {
		s.MaxBodyBytes = int64(c.Limits.MaxPayloadBytes)
	}
	setDuration(&s.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDuration(&s.ReadTimeout, DefaultReadTimeout)
	setDuration(&s.WriteTimeout, DefaultWriteTimeout)
	setDuration(&s.IdleTimeout, DefaultIdleTimeout)
	setDuration(&s.ShutdownGrace, DefaultShutdownGrace)
	if s.TLS.MinVersion == "" {
		s.TLS.MinVersion = DefaultTLSMinVersion
	}

	if c.Sources != nil {
		c.Sources = append([]Source(nil), c.Sources...)
	}
	for i := range c.Sources {
		c.Sources[i] = c.Sources[i].withDefaults(s.MaxBodyBytes)
	}
	if s.MaxInflightBytes == 0 {
		s.MaxInflightBytes = max(DefaultMaxInflightBytes, s.MaxBodyBytes)
		for _, src := range c.Sources {
			s.MaxInflightBytes = max(s.MaxInflightBytes, src.MaxBodyBytes)
		}
	}

	if c.Queue.Dir == "" {
		c.Queue.Dir = filepath.Join(c.DataDir, "queue")
	}
	if c.DeadLetter.Dir == "" {
		c.DeadLetter.Dir = filepath.Join(c.DataDir, "dlq")
	}
	if c.PodLabels == nil {
		t := true
		c.PodLabels = &t
	}
	if c.Log.Level == "" {
		c.Log.Level = DefaultLogLevel
	}
	if c.Log.Format == "" {
		c.Log.Format = DefaultLogFormat
	}
	if c.Ready.MaxFill == 0 {
		c.Ready.MaxFill = DefaultReadyMaxFill
	}
	return c
}

func (src Source) withDefaults(maxBody int64) Source {
	if src.Format == "" {
		src.Format = DefaultFormat
	}
	if src.MaxBodyBytes == 0 {
		src.MaxBodyBytes = maxBody
	}
	if src.RateLimit.Burst == 0 && src.RateLimit.RequestsPerSecond > 0 && !math.IsInf(src.RateLimit.RequestsPerSecond, 0) {
		src.RateLimit.Burst = int(max(1, math.Ceil(min(src.RateLimit.RequestsPerSecond, math.MaxInt32))))
	}
	if src.Auth.HMAC != nil {
		h := *src.Auth.HMAC
		if h.Header == "" {
			h.Header = DefaultHMACHeader
		}
		src.Auth.HMAC = &h
	}
	if src.Pull != nil {
		p := *src.Pull
		if p.Limit == 0 {
			p.Limit = DefaultPullLimit
		}
		setDuration(&p.Interval, DefaultPullInterval)
		setDuration(&p.Timeout, DefaultPullTimeout)
		src.Pull = &p
	}
	if src.Kafka != nil {
		k := src.Kafka.WithDefaults()
		src.Kafka = &k
	}
	return src
}

func setDuration(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

// Downward API variables and the labels they become.
var podLabelEnv = [...][2]string{{"POD_NAME", "pod"}, {"POD_NAMESPACE", "namespace"}, {"NODE_NAME", "node"}}

// StaticLabels returns the labels added to every event: pod, namespace
// and node from POD_NAME, POD_NAMESPACE and NODE_NAME (when set and not
// empty, unless pod_labels is false), then the configured labels, which
// win over the downward API's when both name the same label. env reads the
// environment; nil means os.LookupEnv. The result is a new map, nil when
// there are no labels.
func (c *Config) StaticLabels(env func(string) (string, bool)) map[string]string {
	if env == nil {
		env = os.LookupEnv
	}
	var out map[string]string
	if c.PodLabels == nil || *c.PodLabels {
		for _, kv := range podLabelEnv {
			if v, ok := env(kv[0]); ok && v != "" {
				if out == nil {
					out = map[string]string{}
				}
				out[kv[1]] = v
			}
		}
	}
	if len(c.Labels) > 0 {
		if out == nil {
			out = make(map[string]string, len(c.Labels))
		}
		maps.Copy(out, c.Labels)
	}
	return out
}
