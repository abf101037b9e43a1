package fluentbithost

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Return codes of the Fluent Bit output API (flb_plugin.h).
const (
	FLBError = 0
	FLBOK    = 1
	FLBRetry = 2
)

// ModuleRoot returns the directory holding the go.mod of the working
// directory's module, found by walking up.
func ModuleRoot() (string, error) {
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
			return "", errors.New("fluentbithost: no go.mod above the working directory")
		}
		dir = parent
	}
}

// BuildHost compiles host.c into dir with the system's gcc and returns the
// binary's path.
func BuildHost(dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	src := filepath.Join(root, "testenv", "fluentbithost", "host.c")
	bin := filepath.Join(dir, "host")
	out, err := exec.Command("gcc", "-O2", "-Wall", "-o", bin, src, "-ldl", "-lpthread").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("fluentbithost: gcc: %w\n%s", err, out)
	}
	return bin, nil
}

// BuildPluginPackage builds pkg (a path relative to the module root, such
// as "./plugin") with -buildmode=c-shared into dir/name and returns the
// library's path.
func BuildPluginPackage(dir, pkg, name string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	// One c-shared build at a time across test processes: go test runs
	// this package's and fluentbittest's TestMain at once, and two builds
	// of the same plugin started together both compile every dependency
	// (the build cache only shares finished work). Serialized, the second
	// links from the cache: on a cold cache that saves minutes.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "auditpipe-c-shared-build.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", fmt.Errorf("fluentbithost: %w", err)
	}
	defer lock.Close() // releases the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("fluentbithost: lock %s: %w", lock.Name(), err)
	}
	so := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", so, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("fluentbithost: go build -buildmode=c-shared %s: %w\n%s", pkg, err, out)
	}
	return so, nil
}

// Build compiles the host into a temporary directory of t.
func Build(t testing.TB) string {
	t.Helper()
	bin, err := BuildHost(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// BuildPlugin builds ./plugin as out_auditpipe.so into a temporary
// directory of t. When it does not build, the test is skipped, unless CI
// is "true" where it fails.
func BuildPlugin(t testing.TB) string {
	t.Helper()
	so, err := BuildPluginPackage(t.TempDir(), "./plugin", "out_auditpipe.so")
	if err != nil {
		SkipOrFail(t, err)
	}
	return so
}

// SkipOrFail skips t because of err, or fails it under CI=true, where a
// missing plugin must not pass unnoticed.
func SkipOrFail(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("plugin unavailable: %v", err)
	}
	t.Skipf("plugin unavailable (the test fails under CI=true): %v", err)
}

// Instance is one [OUTPUT] section: its name in the host and its keys.
type Instance struct {
	Name  string
	Props map[string]string
}

// Registration is what FLBPluginRegister filled in.
type Registration struct {
	Code  int
	Type  int
	Proxy int
	Name  string
}

// Host is a running host process with a loaded plugin.
type Host struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	answers *bufio.Reader
	pipe    *os.File // read end of the answers
	done    chan error

	mu       sync.Mutex // serialises commands
	closed   bool
	register Registration
	init     map[string]int
	exit     map[string]int
	stdout   *syncBuffer
	stderr   *syncBuffer
}

// Start runs the host binary on the plugin library, registers it and
// initialises each instance in order. It fails t on a protocol failure,
// not on an init that returns FLB_ERROR: InitCode tells. The host is
// closed when t ends.
func Start(t testing.TB, hostBin, plugin string, instances ...Instance) *Host {
	t.Helper()
	h, err := start(hostBin, plugin, instances...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := h.Close(); err != nil {
			t.Errorf("host close: %v", err)
		}
		if t.Failed() {
			t.Logf("host stderr:\n%s", h.Stderr())
		}
	})
	return h
}

func start(hostBin, plugin string, instances ...Instance) (*Host, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	h := &Host{
		init:   map[string]int{},
		stdout: &syncBuffer{},
		stderr: &syncBuffer{},
		done:   make(chan error, 1),
	}
	h.cmd = exec.Command(hostBin, plugin)
	h.cmd.Stdout = h.stdout
	h.cmd.Stderr = h.stderr
	h.cmd.ExtraFiles = []*os.File{w} // fd 3: the answers
	h.stdin, err = h.cmd.StdinPipe()
	if err != nil {
		return nil, errors.Join(err, r.Close(), w.Close())
	}
	if err := h.cmd.Start(); err != nil {
		return nil, errors.Join(err, r.Close(), w.Close())
	}
	_ = w.Close() // the child holds its copy; EOF on r means it exited
	h.pipe = r
	h.answers = bufio.NewReader(r)
	go func() {
		h.done <- h.cmd.Wait()
	}()

	line, err := h.read()
	if err != nil {
		return nil, h.fail(err)
	}
	var reg Registration
	if _, err := fmt.Sscanf(line, "register %d %d %d %s", &reg.Code, &reg.Type, &reg.Proxy, &reg.Name); err != nil {
		return nil, h.fail(fmt.Errorf("bad register answer %q: %w", line, err))
	}
	h.register = reg
	for _, in := range instances {
		keys := make([]string, 0, len(in.Props))
		for k := range in.Props {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			v := in.Props[k]
			if strings.ContainsAny(k+v+in.Name, "\n") || strings.ContainsAny(k+in.Name, " ") {
				return nil, h.fail(fmt.Errorf("property %q of %q: no newline, and no space in names or keys", k, in.Name))
			}
			if _, err := h.command(fmt.Sprintf("prop %s %s %s\n", in.Name, k, v), nil, "ok"); err != nil {
				return nil, h.fail(err)
			}
		}
		f, err := h.command(fmt.Sprintf("init %s\n", in.Name), nil, "init")
		if err != nil {
			return nil, h.fail(err)
		}
		code, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, h.fail(fmt.Errorf("bad init answer %q", f))
		}
		h.init[in.Name] = code
	}
	return h, nil
}

func (h *Host) fail(err error) error {
	_ = h.stdin.Close()
	if h.cmd.Process != nil {
		_ = h.cmd.Process.Kill()
	}
	<-h.done
	_ = h.pipe.Close()
	h.closed = true
	return fmt.Errorf("fluentbithost: %w\nhost stderr:\n%s", err, h.stderr.String())
}

func (h *Host) read() (string, error) {
	line, err := h.answers.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("host answer: %w (host exited? stderr:\n%s)", err, h.stderr.String())
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// command writes cmd and payload and returns the rest of the answer line
// after want.
func (h *Host) command(cmd string, payload []byte, want string) (string, error) {
	if _, err := io.WriteString(h.stdin, cmd); err != nil {
		return "", fmt.Errorf("host command: %w", err)
	}
	if len(payload) > 0 {
		if _, err := h.stdin.Write(payload); err != nil {
			return "", fmt.Errorf("host command payload: %w", err)
		}
	}
	line, err := h.read()
	if err != nil {
		return "", err
	}
	rest, ok := strings.CutPrefix(line, want)
	if !ok {
		return "", fmt.Errorf("host answered %q to %q", line, strings.TrimSpace(cmd))
	}
	return strings.TrimSpace(rest), nil
}

// Registration returns what FLBPluginRegister reported.
func (h *Host) Registration() Registration { return h.register }

// InitCode returns FLBPluginInit's return code for instance, -1 when it
// was not initialised.
func (h *Host) InitCode(instance string) int {
	if c, ok := h.init[instance]; ok {
		return c
	}
	return -1
}

// Flush hands chunk to instance's flush callback with tag and returns the
// plugin's return code.
func (h *Host) Flush(instance, tag string, chunk []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return 0, errors.New("fluentbithost: closed")
	}
	rest, err := h.command(fmt.Sprintf("flush %s %s %d\n", instance, tag, len(chunk)), chunk, "flush ")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(rest)
}

// FlushConcurrent flushes every chunk to instance at the same time, one
// native thread each as Fluent Bit's output workers do, and returns the
// codes in the order of chunks.
func (h *Host) FlushConcurrent(instance, tag string, chunks ...[]byte) ([]int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("fluentbithost: closed")
	}
	var cmd strings.Builder
	fmt.Fprintf(&cmd, "flushmt %s %s %d", instance, tag, len(chunks))
	for _, c := range chunks {
		fmt.Fprintf(&cmd, " %d", len(c))
	}
	cmd.WriteByte('\n')
	rest, err := h.command(cmd.String(), bytes.Join(chunks, nil), "flushmt")
	if err != nil {
		return nil, err
	}
	fields := strings.Fields(rest)
	codes := make([]int, 0, len(fields))
	for _, f := range fields {
		c, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("bad flushmt answer %q", rest)
		}
		codes = append(codes, c)
	}
	if len(codes) != len(chunks) {
		return nil, fmt.Errorf("flushmt answered %d codes for %d chunks", len(codes), len(chunks))
	}
	return codes, nil
}

// Close runs the exit callback of every initialised instance, waits for
// the host to end and returns the exit codes by instance. Calling it again
// returns the same codes.
func (h *Host) Close() (map[string]int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return h.exit, nil
	}
	h.closed = true
	h.exit = map[string]int{}
	rest, cmdErr := h.command("exit\n", nil, "exit")
	if cmdErr == nil {
		for _, f := range strings.Fields(rest) {
			name, code, _ := strings.Cut(f, "=")
			c, err := strconv.Atoi(code)
			if err != nil {
				cmdErr = fmt.Errorf("bad exit answer %q", rest)
				break
			}
			h.exit[name] = c
		}
	}
	_ = h.stdin.Close()
	var waitErr error
	select {
	case waitErr = <-h.done:
	case <-time.After(time.Minute):
		_ = h.cmd.Process.Kill()
		waitErr = errors.Join(errors.New("host did not exit within a minute after exit"), <-h.done)
	}
	_ = h.pipe.Close()
	if waitErr != nil {
		waitErr = fmt.Errorf("host process: %w\nstderr:\n%s", waitErr, h.stderr.String())
	}
	return h.exit, errors.Join(cmdErr, waitErr)
}

// Stderr returns what the host and the plugin wrote on standard error so
// far: the plugin's log.
func (h *Host) Stderr() string { return h.stderr.String() }

// WaitStderr waits until cond holds for Stderr or timeout passes, and
// returns the last Stderr seen and whether cond held. The plugin's output
// travels through a pipe, so what it wrote before a call returned may
// arrive a moment later.
func (h *Host) WaitStderr(timeout time.Duration, cond func(string) bool) (string, bool) {
	deadline := time.Now().Add(timeout)
	for {
		s := h.stderr.String()
		if cond(s) {
			return s, true
		}
		if time.Now().After(deadline) {
			return s, false
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// Stdout returns what the plugin wrote on standard output so far (the
// host answers on another descriptor).
func (h *Host) Stdout() string { return h.stdout.String() }

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// HaveToolchain reports why the host cannot be built here, or nil: gcc
// and cgo are needed.
func HaveToolchain() error {
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		return fmt.Errorf("fluentbithost: unsupported OS %s", runtime.GOOS)
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		return fmt.Errorf("fluentbithost: gcc not found: %w", err)
	}
	return nil
}
