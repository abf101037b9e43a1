package sidecar_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/sidecar"
	"github.com/auditpipe/auditpipe/sidecar/config"
)

// startupConfig is a minimal configuration; %DIR%, %LISTEN% and %TLS%
// are filled in per case.
const startupConfig = `
data_dir: %DIR%
server: {listen: "%LISTEN%"%TLS%}
log: {level: info, format: json}
sources:
  - {name: k8s, format: k8s, auth: {none: true}}
outputs:
  - {name: events, type: file, file: {path: "%OUT%/events.ndjson"}}
`

// startupCases are the ways a sidecar can fail to start. Each must come
// back as an error naming the cause, never a panic, and leave nothing
// open (the holder of the lock keeps running).
func startupCases(t *testing.T) []struct {
	name, dir, listen, tls, want string
} {
	base := t.TempDir()
	file := filepath.Join(base, "a-file")
	os.WriteFile(file, []byte("x"), 0o600)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() })
	return []struct{ name, dir, listen, tls, want string }{
		{"data_dir is a file", file, "127.0.0.1:0", "", "not a directory"},
		{"port in use", filepath.Join(base, "port"), busy.Addr().String(), "", "server.listen"},
		{"missing TLS file", filepath.Join(base, "tls"), "127.0.0.1:0", `, tls: {cert_file: /nonexistent/cert.pem, key_file: /nonexistent/key.pem}`, "server.tls.cert_file"},
	}
}

func fill(conf, dir, listen, tls, out string) string {
	return strings.NewReplacer("%DIR%", dir, "%LISTEN%", listen, "%TLS%", tls, "%OUT%", out).Replace(conf)
}

func TestStartupErrors(t *testing.T) {
	for _, tc := range startupCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(fill(startupConfig, tc.dir, tc.listen, tc.tls, t.TempDir())), nil)
			if err != nil {
				t.Fatal(err)
			}
			s, err := sidecar.New(context.Background(), cfg, sidecar.Options{})
			if err == nil || s != nil {
				t.Fatalf("New = %v, %v; want an error", s, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
	t.Run("data_dir in use", func(t *testing.T) {
		dir, out := t.TempDir(), t.TempDir()
		cfg, err := config.Parse([]byte(fill(startupConfig, dir, "127.0.0.1:0", "", out)), nil)
		if err != nil {
			t.Fatal(err)
		}
		first, err := sidecar.New(context.Background(), cfg, sidecar.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- first.Run(ctx) }()
		defer func() { cancel(); <-done }()
		// Removing the LOCK file must not let a second sidecar in: the
		// lock is on something that cannot be unlinked from under it.
		os.Remove(filepath.Join(dir, "queue", "LOCK"))
		second, err := sidecar.New(context.Background(), cfg, sidecar.Options{})
		if err == nil {
			done, stop := context.WithCancel(context.Background())
			stop()
			second.Run(done)
			t.Fatal("a second sidecar opened a data_dir in use")
		}
		if !strings.Contains(err.Error(), "lock") {
			t.Errorf("error %q does not say the queue is locked", err)
		}
	})
}

// The binary exits 1 with one log line naming the cause, and no panic.
func TestStartupErrorsExitWithOneLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	run := func(conf string) (int, string) {
		path := filepath.Join(t.TempDir(), "sidecar.yaml")
		os.WriteFile(path, []byte(conf), 0o600)
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "sidecar", "--config", path)
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), stderr.String()
	}
	cases := startupCases(t)
	// A second process on a data_dir in use.
	dir := t.TempDir()
	holder := exec.Command(bin, "sidecar", "--config", filepath.Join(dir, "holder.yaml"))
	os.WriteFile(filepath.Join(dir, "holder.yaml"), []byte(fill(startupConfig, dir, "127.0.0.1:0", "", dir)), 0o600)
	stderr := &lockedBuffer{}
	holder.Stderr = stderr
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	waitFor(t, "the first sidecar listening", func() bool { return strings.Contains(stderr.String(), "sidecar listening") })
	os.Remove(filepath.Join(dir, "queue", "LOCK"))
	cases = append(cases, struct{ name, dir, listen, tls, want string }{"data_dir in use", dir, "127.0.0.1:0", "", "lock"})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out := run(fill(startupConfig, tc.dir, tc.listen, tc.tls, t.TempDir()))
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if code != 1 || len(lines) != 1 || !strings.Contains(out, tc.want) || strings.Contains(out, "panic") {
				t.Fatalf("exit %d, %d lines, want 1 and one line naming %q:\n%s", code, len(lines), tc.want, out)
			}
		})
	}
}
