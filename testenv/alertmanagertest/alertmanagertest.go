// Package alertmanagertest runs a real Prometheus Alertmanager (Debian's
// prometheus-alertmanager) as a child process, routing alerts named
// "audit" to a webhook, so the sidecar is tested against the sender it
// will meet: its retries, its grouping, its resolved notifications.
//
// The process listens on 127.0.0.1 only: the cluster listener is turned
// off (--cluster.listen-address=), since by default it binds a gossip port
// on every interface.
package alertmanagertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// DefaultBinary is where Debian installs Alertmanager.
const DefaultBinary = "/usr/bin/prometheus-alertmanager"

// EnvBinary overrides the binary's path.
const EnvBinary = "AUDITPIPE_ALERTMANAGER"

// Binary returns the Alertmanager executable to run.
func Binary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		return p, nil
	}
	if _, err := os.Stat(DefaultBinary); err == nil {
		return DefaultBinary, nil
	}
	if p, err := exec.LookPath("alertmanager"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("alertmanager not found (install Debian's prometheus-alertmanager: make testdeps, or set %s)", EnvBinary)
}

// Require skips the test when Alertmanager is missing, except under
// CI=true, where a missing peer is a failure.
func Require(t testing.TB) string {
	t.Helper()
	p, err := Binary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return p
}

// Config says how to run Alertmanager.
type Config struct {
	// WebhookURL receives notifications for alertname="audit".
	WebhookURL string
	// Username and Password, when set, are sent with basic auth
	// (http_config.basic_auth).
	Username, Password string
	// Dir holds the configuration and the data; a temporary directory by
	// default.
	Dir string
	// GroupWait, GroupInterval and RepeatInterval tune notification timing.
	// Defaults 0s, 1s and 1h: the first notification goes out at once.
	GroupWait, GroupInterval, RepeatInterval time.Duration
	// SendResolved asks for resolved notifications too. Default false.
	SendResolved bool
}

// Server is a running Alertmanager.
type Server struct {
	cmd  *exec.Cmd
	url  string
	dir  string
	tmp  bool
	done chan struct{}
	log  *bytes.Buffer
}

// Start runs Alertmanager and waits until it answers.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	s := &Server{dir: cfg.Dir, done: make(chan struct{}), log: &bytes.Buffer{}}
	if s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "alertmanagertest-"); err != nil {
			return nil, err
		}
		s.tmp = true
	}
	if cfg.GroupInterval == 0 {
		cfg.GroupInterval = time.Second
	}
	if cfg.RepeatInterval == 0 {
		cfg.RepeatInterval = time.Hour
	}
	auth := ""
	if cfg.Username != "" {
		auth = fmt.Sprintf("\n        http_config:\n          basic_auth: {username: %q, password: %q}", cfg.Username, cfg.Password)
	}
	conf := fmt.Sprintf(`route:
  receiver: blackhole
  group_by: ['...']
  group_wait: %s
  group_interval: %s
  repeat_interval: %s
  routes:
    - matchers: ['alertname="audit"']
      receiver: auditpipe
receivers:
  - name: blackhole
  - name: auditpipe
    webhook_configs:
      - url: %q
        send_resolved: %t
        max_alerts: 0%s
`, dur(cfg.GroupWait), dur(cfg.GroupInterval), dur(cfg.RepeatInterval), cfg.WebhookURL, cfg.SendResolved, auth)
	confPath := filepath.Join(s.dir, "alertmanager.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s.url = "http://" + addr
	s.cmd = exec.Command(bin,
		"--config.file="+confPath,
		"--storage.path="+filepath.Join(s.dir, "data"),
		"--web.listen-address="+addr,
		"--web.external-url="+s.url,
		"--cluster.listen-address=",
		"--log.level=debug",
	)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("alertmanager: %w", err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("alertmanager exited: %s", s.log.String())
		case <-ctx.Done():
			s.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Close()
			return nil, errors.New("alertmanager not ready after 20s")
		}
	}
}

func dur(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// URL is Alertmanager's base URL.
func (s *Server) URL() string { return s.url }

// Log is what the process has printed so far.
func (s *Server) Log() string { return s.log.String() }

// Alert is one alert of POST /api/v2/alerts.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	StartsAt    time.Time         `json:"startsAt,omitzero"`
	EndsAt      time.Time         `json:"endsAt,omitzero"`
}

// PostAlerts sends alerts as Prometheus would.
func (s *Server) PostAlerts(ctx context.Context, alerts ...Alert) error {
	body, err := json.Marshal(alerts)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/api/v2/alerts", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /api/v2/alerts: %s", resp.Status)
	}
	return nil
}

// Close stops the process and removes a temporary directory.
func (s *Server) Close() error {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
	}
	if s.tmp {
		return os.RemoveAll(s.dir)
	}
	return nil
}
