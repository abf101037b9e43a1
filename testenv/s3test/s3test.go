package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Region is the region the server answers for and signatures are made in.
const Region = "us-east-1"

// The root credentials a Server uses unless Config says otherwise. They
// are test values, never real ones.
const (
	DefaultAccessKey = "auditpipe-test"
	DefaultSecretKey = "auditpipe-test-secret-key"
)

// EnvBinary names the environment variable that points at the versitygw
// binary, ahead of build/tools/versitygw and $PATH.
const EnvBinary = "AUDITPIPE_VERSITYGW"

// readyTimeout bounds how long Start waits for the server to answer. A cold
// start takes well under a second; the margin is for loaded CI machines.
const readyTimeout = 30 * time.Second

// Binary returns the path of the versitygw binary: $AUDITPIPE_VERSITYGW,
// else build/tools/versitygw under the module root (the directory holding
// go.mod, found by walking up from the working directory), else versitygw
// on $PATH.
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvBinary, p, err)
		}
		return p, nil
	}
	if root, err := moduleRoot(); err == nil {
		p := filepath.Join(root, "build", "tools", "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath("versitygw")
	if err != nil {
		return "", fmt.Errorf("versitygw not found (set %s, or build it with `go install github.com/versity/versitygw/cmd/versitygw@v1.8.0` into build/tools): %w", EnvBinary, err)
	}
	return p, nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Require returns the versitygw binary's path. When there is none it skips
// the test with the reason, or, under CI=true, fails it: CI installs the
// peers, so a missing one there is a broken setup, not a reason to pass.
func Require(t testing.TB) string {
	t.Helper()
	p, err := Binary()
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("S3 peer required under CI=true: %v", err)
	}
	t.Skipf("skipping: no S3 peer: %v", err)
	return ""
}

// Config says how to run a Server. The zero value is a plain-HTTP server
// on a free loopback port with a temporary directory.
type Config struct {
	// Dir is the posix backend's root; each bucket is a directory in it.
	// Default: a temporary directory, removed by Close. A Dir given here
	// is left in place.
	Dir string
	// TLS serves HTTPS with a certificate for 127.0.0.1 and localhost,
	// signed by a CA made for this server (CAFile).
	TLS bool
	// Addr is the host:port to listen on. Default 127.0.0.1 and a free
	// port. Tests that start the server late (peer down, then up) pick the
	// port first with FreeAddr.
	Addr string
	// AccessKey and SecretKey are the root credentials. Defaults
	// DefaultAccessKey and DefaultSecretKey.
	AccessKey, SecretKey string
	// Binary is the versitygw executable. Default Binary().
	Binary string
	// CA signs the server's certificate with TLS. Default: a CA made for
	// this server. A test that builds its client before the server starts
	// makes the CA first with NewCA.
	CA *CA
}

// Server is a running versitygw.
type Server struct {
	cfg      Config
	work     string // certificates and the log; always ours to remove
	caFile   string
	logFile  string
	endpoint string
	httpc    *http.Client

	healthPath string
	cmd        *exec.Cmd
	exited     chan struct{}
	waitErr    error

	closeOnce sync.Once
	closeErr  error
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago, for a server started later.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", err
	}
	return addr, nil
}

// Start runs versitygw and returns once it answers HTTP requests. ctx
// bounds the start only; the server runs until Close.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.AccessKey == "" {
		cfg.AccessKey = DefaultAccessKey
	}
	if cfg.SecretKey == "" {
		cfg.SecretKey = DefaultSecretKey
	}
	if cfg.Binary == "" {
		b, err := Binary()
		if err != nil {
			return nil, err
		}
		cfg.Binary = b
	}
	work, err := os.MkdirTemp("", "s3test-")
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, work: work, logFile: filepath.Join(work, "versitygw.log"),
		healthPath: "/s3test-health-" + rand.Text()}
	if s.cfg.Dir == "" {
		s.cfg.Dir = filepath.Join(work, "data")
		if err := os.Mkdir(s.cfg.Dir, 0o755); err != nil {
			_ = os.RemoveAll(work)
			return nil, err
		}
	}
	var certFile, keyFile string
	if cfg.TLS {
		ca := cfg.CA
		if ca == nil {
			ca, err = NewCA(work)
		}
		if err == nil {
			s.caFile = ca.File
			certFile, keyFile, err = ca.writeServerCert(work)
		}
		if err != nil {
			_ = os.RemoveAll(work)
			return nil, fmt.Errorf("s3test: certificates: %w", err)
		}
	}
	if err := s.buildClient(); err != nil {
		_ = os.RemoveAll(work)
		return nil, err
	}

	// A port picked by FreeAddr can be taken by someone else before
	// versitygw binds it; when we picked it, pick again.
	attempts := 1
	if cfg.Addr == "" {
		attempts = 3
	}
	for i := 0; ; i++ {
		addr := cfg.Addr
		if addr == "" {
			if addr, err = FreeAddr(); err != nil {
				break
			}
		}
		err = s.run(ctx, addr, certFile, keyFile)
		if err == nil || i+1 >= attempts || !errors.Is(err, errExited) {
			break
		}
	}
	if err != nil {
		s.httpc.CloseIdleConnections()
		_ = os.RemoveAll(work)
		return nil, err
	}
	return s, nil
}

var errExited = errors.New("versitygw exited")

func (s *Server) run(ctx context.Context, addr, certFile, keyFile string) error {
	scheme := "http"
	if s.cfg.TLS {
		scheme = "https"
	}
	s.endpoint = scheme + "://" + addr
	args := []string{
		"--port", addr,
		"--access", s.cfg.AccessKey,
		"--secret", s.cfg.SecretKey,
		"--region", Region,
		"--quiet",
		// S3 keeps connections alive; without this flag versitygw closes
		// each after one request, which hides a client's pooling
		// behaviour (and its leaks) from tests.
		"--keep-alive",
		// A path only this process answers 200 on: readiness must not be
		// fooled by another server already holding the port.
		"--health", s.healthPath,
	}
	if s.cfg.TLS {
		args = append(args, "--cert", certFile, "--key", keyFile)
	}
	args = append(args, "posix", s.cfg.Dir)

	logf, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child holds its own descriptor
	// Not exec.CommandContext: ctx bounds the start, not the server's life.
	cmd := exec.Command(s.cfg.Binary, args...) //nolint:gosec // the binary is ours to choose
	cmd.Stdout = logf                          // an *os.File, so exec starts no copying goroutines
	cmd.Stderr = logf
	// Credentials come from the flags only: the gateway must not pick up
	// the developer's ROOT_ACCESS_KEY or VGW_* settings.
	cmd.Env = filterEnv(os.Environ())
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("s3test: start %s: %w", s.cfg.Binary, err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(ctx); err != nil {
		_ = cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("s3test: versitygw on %s: %w\n%s", addr, err, s.logTail())
	}
	return nil
}

func filterEnv(env []string) []string {
	return slices.DeleteFunc(env, func(kv string) bool {
		return strings.HasPrefix(kv, "VGW_") || strings.HasPrefix(kv, "ROOT_") ||
			strings.HasPrefix(kv, "WEBHOOK=") || strings.HasPrefix(kv, "LOGFILE=")
	})
}

// waitReady polls the health path until it answers 200.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.endpoint+s.healthPath, nil)
		if err != nil {
			return err
		}
		resp, err := s.httpc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("health check: HTTP %d (another server on the port?)", resp.StatusCode)
		}
		last = err
		select {
		case <-s.exited:
			return fmt.Errorf("%w: %v", errExited, s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w (last: %v)", ctx.Err(), last)
		case <-tick.C:
		}
	}
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logFile)
	if err != nil {
		return ""
	}
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(bytes.TrimSpace(b))
}

func (s *Server) buildClient() error {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // loopback only; a developer's HTTPS_PROXY must not intercept
	if s.cfg.TLS {
		pem, err := os.ReadFile(s.caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	s.httpc = &http.Client{Transport: tr}
	return nil
}

// Endpoint is the server's base URL, http://127.0.0.1:PORT or https://...
func (s *Server) Endpoint() string { return s.endpoint }

// Addr is the host:port the server listens on.
func (s *Server) Addr() string {
	_, rest, _ := strings.Cut(s.endpoint, "://")
	return rest
}

// AccessKey is the root access key id.
func (s *Server) AccessKey() string { return s.cfg.AccessKey }

// SecretKey is the root secret access key.
func (s *Server) SecretKey() string { return s.cfg.SecretKey }

// Region is the region the server signs for (Region).
func (s *Server) Region() string { return Region }

// CAFile is the PEM file of the CA that signed the server's certificate,
// for clients to trust; "" without TLS.
func (s *Server) CAFile() string { return s.caFile }

// Dir is the posix backend's root directory.
func (s *Server) Dir() string { return s.cfg.Dir }

// LogFile is where the server's output goes.
func (s *Server) LogFile() string { return s.logFile }

// Client returns an S3 client for the server with the root credentials,
// path-style addressing and the server's CA, for tests to inspect what
// arrived.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.cfg.AccessKey, s.cfg.SecretKey, ""),
		HTTPClient:   s.httpc,
	})
}

// BucketOption changes how CreateBucket makes a bucket.
type BucketOption func(*s3.CreateBucketInput)

// WithObjectLock creates the bucket with Object Lock enabled, so that
// uploads may carry a retention mode and retain-until date.
func WithObjectLock() BucketOption {
	return func(in *s3.CreateBucketInput) { in.ObjectLockEnabledForBucket = aws.Bool(true) }
}

// CreateBucket creates a bucket.
func (s *Server) CreateBucket(ctx context.Context, name string, opts ...BucketOption) error {
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	for _, o := range opts {
		o(in)
	}
	if _, err := s.Client().CreateBucket(ctx, in); err != nil {
		return fmt.Errorf("s3test: create bucket %s: %w", name, err)
	}
	return nil
}

// ListKeys returns the keys in bucket under prefix, sorted.
func (s *Server) ListKeys(ctx context.Context, bucket, prefix string) ([]string, error) {
	c := s.Client()
	var keys []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3test: list %s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// GetObject returns an object's bytes as stored (still compressed when it
// was uploaded with Content-Encoding: gzip: the test client asks for no
// decoding).
func (s *Server) GetObject(ctx context.Context, bucket, key string) ([]byte, error) {
	out, err := s.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("s3test: get %s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("s3test: read %s/%s: %w", bucket, key, err)
	}
	return b, nil
}

// Close stops the server, waits for the process to end and removes the
// temporary files it made.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			s.closeErr = err
		}
		<-s.exited
		s.httpc.CloseIdleConnections()
		if err := os.RemoveAll(s.work); err != nil && s.closeErr == nil {
			s.closeErr = err
		}
	})
	return s.closeErr
}
