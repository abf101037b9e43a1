package tlsfiles

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// ClientConfig is a TLS client's settings and the files it re-reads.
type ClientConfig struct {
	// CAFile is a PEM bundle of the CAs to trust instead of the system's;
	// CAField names it in errors and logs (tls.ca_file).
	CAFile, CAField string
	// CertFile and KeyFile are a client certificate for mutual TLS;
	// CertField names them (tls.cert_file).
	CertFile, KeyFile, CertField string
	// ServerName, MinVersion and InsecureSkipVerify are those of
	// tls.Config.
	ServerName         string
	MinVersion         uint16
	InsecureSkipVerify bool
	Options
}

// Client makes the TLS configurations of one client, with the files'
// current content. A nil *Client is plain TCP, or the HTTP client's
// defaults.
type Client struct {
	cfg    ClientConfig
	ca     *Pool
	pair   *KeyPair
	adjust []func(*tls.Config) *tls.Config
}

// NewClient loads the files cfg names. Errors name the bad file's field.
func NewClient(cfg ClientConfig) (*Client, error) {
	c := &Client{cfg: cfg}
	var err error
	if cfg.CAFile != "" {
		if c.ca, err = NewPool(cfg.CAField, cfg.CAFile, cfg.Options); err != nil {
			return nil, err
		}
	}
	if cfg.CertFile != "" {
		if c.pair, err = NewKeyPair(cfg.CertField, cfg.CertFile, cfg.KeyFile, cfg.Options); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// With returns a client whose configurations are passed through fn as
// they are made, e.g. to add a VerifyConnection that pins a certificate.
// It shares c's files.
func (c *Client) With(fn func(*tls.Config) *tls.Config) *Client {
	d := *c
	d.adjust = append(d.adjust[:len(d.adjust):len(d.adjust)], fn)
	return &d
}

// Config returns a new configuration with the CA pool loaded last and a
// GetClientCertificate that presents the key pair loaded last; nil for a
// nil c. The caller owns it: HTTP/2 adds to its NextProtos.
func (c *Client) Config() *tls.Config {
	cfg, _ := c.config()
	return cfg
}

func (c *Client) config() (*tls.Config, uint64) {
	if c == nil {
		return nil, 0
	}
	cfg := &tls.Config{
		MinVersion:         c.cfg.MinVersion,
		ServerName:         c.cfg.ServerName,
		InsecureSkipVerify: c.cfg.InsecureSkipVerify, //nolint:gosec // opt-in, logged by the caller
	}
	var gen uint64
	if c.ca != nil {
		cfg.RootCAs, gen = c.ca.Current()
	}
	if c.pair != nil {
		cfg.GetClientCertificate = c.pair.GetClientCertificate
	}
	for _, fn := range c.adjust {
		cfg = fn(cfg)
	}
	return cfg, gen
}

// caGeneration is the CA pool's generation, 0 without one.
func (c *Client) caGeneration() uint64 {
	if c == nil || c.ca == nil {
		return 0
	}
	_, gen := c.ca.Current()
	return gen
}

// DialContext returns a dialer that connects with dial and does the TLS
// handshake with a configuration made for this connection (see Config),
// so that a new CA bundle applies to the next connection with Go's own
// verification. The server name is ServerName or else the address's
// host. A nil c returns dial itself: no TLS.
func (c *Client) DialContext(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if c == nil {
		return dial
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cfg := c.Config()
		if cfg.ServerName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				host = addr
			}
			cfg.ServerName = host
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		return tc, nil
	}
}

// Transport is an HTTP transport whose TLS follows the client's files:
// a certificate through GetClientCertificate, and a changed CA bundle by
// moving new requests to a copy of the transport made with the new pool
// (a transport's TLS configuration cannot change once in use); the old
// copy's idle connections are closed, those in use finish their requests.
type Transport struct {
	client *Client
	base   *http.Transport
	cur    atomic.Pointer[transportGen]

	mu      sync.Mutex
	retired []*http.Transport
}

type transportGen struct {
	tr  *http.Transport
	gen uint64
}

// Transport returns a transport that sends with t, or a copy of t made
// after the CA bundle changed. It sets t.TLSClientConfig (left as it is
// for a nil c). t must not be used otherwise.
func (c *Client) Transport(t *http.Transport) *Transport {
	tr := &Transport{client: c, base: t.Clone()}
	cfg, gen := c.config()
	if cfg != nil {
		t.TLSClientConfig = cfg
	}
	tr.cur.Store(&transportGen{tr: t, gen: gen})
	return tr
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.current().RoundTrip(req)
}

func (t *Transport) current() *http.Transport {
	gen := t.client.caGeneration()
	if cur := t.cur.Load(); cur.gen == gen {
		return cur.tr
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := t.cur.Load()
	if cur.gen == gen {
		return cur.tr
	}
	cfg, gen := t.client.config()
	next := t.base.Clone()
	next.TLSClientConfig = cfg
	t.cur.Store(&transportGen{tr: next, gen: gen})
	t.retired = append(t.retired, cur.tr)
	for _, old := range t.retired {
		old.CloseIdleConnections()
	}
	return next
}

// CloseIdleConnections closes the idle connections of the transport in
// use and of those it replaced.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cur.Load().tr.CloseIdleConnections()
	for _, old := range t.retired {
		old.CloseIdleConnections()
	}
}
