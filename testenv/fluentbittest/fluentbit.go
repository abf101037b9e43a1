package fluentbittest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvBinary names the environment variable holding the Fluent Bit
// executable's path.
const EnvBinary = "FLB_BIN"

// Binary returns the Fluent Bit executable named by FLB_BIN. ok is false
// when FLB_BIN is unset; err is set when it names something that does not
// run.
func Binary() (path string, ok bool, err error) {
	path = os.Getenv(EnvBinary)
	if path == "" {
		return "", false, nil
	}
	out, err := exec.Command(path, "--version").CombinedOutput()
	if err != nil {
		return path, true, fmt.Errorf("fluentbittest: %s=%s --version: %w\n%s", EnvBinary, path, err, out)
	}
	return path, true, nil
}

// Require returns the Fluent Bit executable. Without FLB_BIN the test is
// skipped (a user's machine need not have Fluent Bit; CI sets it when it
// has one); a FLB_BIN that does not run fails the test.
func Require(t testing.TB) string {
	t.Helper()
	path, ok, err := Binary()
	if !ok {
		t.Skipf("%s is not set: no Fluent Bit to run the plugin in (.ci/run sets it from ../shared/tools/fluent-bit.xz)", EnvBinary)
	}
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// Format is the configuration file format.
type Format int

const (
	// Classic is the INI-like format ([SERVICE], [INPUT], [OUTPUT]).
	Classic Format = iota
	// YAML is the YAML format (service, plugins, pipeline).
	YAML
)

func (f Format) String() string {
	if f == YAML {
		return "yaml"
	}
	return "classic"
}

// Load is how Fluent Bit is told to load the plugin.
type Load int

const (
	// Flag passes the library with -e on the command line.
	Flag Load = iota
	// PluginsFile names a classic [PLUGINS] file (Path <library>) with the
	// service key plugins_file; both formats accept it.
	PluginsFile
	// PluginsSection lists the library under the YAML format's top-level
	// plugins key (YAML only).
	PluginsSection
)

func (l Load) String() string {
	switch l {
	case PluginsFile:
		return "plugins_file"
	case PluginsSection:
		return "plugins_section"
	}
	return "flag"
}

// Section is one section's keys, in order. Keys are written as given
// (Fluent Bit's keys are case-insensitive in both formats).
type Section []Prop

// Prop is one key and its value.
type Prop struct{ Key, Value string }

// S makes a Section of key, value pairs.
func S(kv ...string) Section {
	if len(kv)%2 != 0 {
		panic("fluentbittest.S: odd number of arguments") // a bug in the test, not a runtime condition
	}
	s := make(Section, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		s = append(s, Prop{kv[i], kv[i+1]})
	}
	return s
}

// With returns a copy of s with more keys.
func (s Section) With(kv ...string) Section {
	return append(append(Section{}, s...), S(kv...)...)
}

// Config is one Fluent Bit pipeline.
type Config struct {
	// Format is the file format; Load how the plugin is loaded.
	Format Format
	Load   Load
	// Service holds the service keys. Start adds plugins_file and
	// parsers_file when needed, and the HTTP server's keys with HTTP.
	Service Section
	// Inputs and Outputs are the pipeline's sections.
	Inputs, Outputs []Section
	// Parsers are written to parsers.conf (classic format), named by the
	// service key parsers_file.
	Parsers []Section
	// HTTP turns on Fluent Bit's HTTP server on a free loopback port
	// (Process.HTTPURL); hot reload's POST /api/v2/reload needs it.
	HTTP bool
}

// Options are what Start needs besides the Config.
type Options struct {
	// Binary is the Fluent Bit executable (Require) and Plugin the
	// plugin's shared library.
	Binary, Plugin string
	// Dir holds the configuration files and is the working directory.
	Dir string
	// Args are more command-line arguments (--dry-run).
	Args []string
}

// Process is a running (or exited) Fluent Bit.
type Process struct {
	t       testing.TB
	opts    Options
	cfg     Config
	file    string
	httpURL string
	cmd     *exec.Cmd
	log     *syncBuffer
	done    chan struct{}
	state   *os.ProcessState
}

// Start writes cfg into opts.Dir and starts Fluent Bit on it. The process
// is killed when the test ends, if it is still running, and its log is
// written to the test's output when the test failed.
func Start(t testing.TB, opts Options, cfg Config) *Process {
	t.Helper()
	p := &Process{t: t, opts: opts, cfg: cfg, log: &syncBuffer{}, done: make(chan struct{})}
	if cfg.HTTP {
		port := FreePort(t)
		p.cfg.Service = p.cfg.Service.With("http_server", "on", "http_listen", "127.0.0.1", "http_port", strconv.Itoa(port))
		p.httpURL = "http://127.0.0.1:" + strconv.Itoa(port)
	}
	file, err := p.write(p.cfg)
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	if cfg.Load == Flag {
		args = []string{"-e", opts.Plugin}
	}
	p.run(file, args)
	return p
}

// StartFile starts Fluent Bit on a configuration file written elsewhere
// (an example of the repository, say), which loads the plugin itself; the
// process is handled as Start's is.
func StartFile(t testing.TB, opts Options, file string) *Process {
	t.Helper()
	p := &Process{t: t, opts: opts, log: &syncBuffer{}, done: make(chan struct{})}
	p.run(file, nil)
	return p
}

func (p *Process) run(file string, args []string) {
	t, opts := p.t, p.opts
	t.Helper()
	p.file = file
	args = append(append([]string{"-c", file}, args...), opts.Args...)
	p.cmd = exec.Command(opts.Binary, args...)
	p.cmd.Dir = opts.Dir
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("fluentbittest: start %s: %v", opts.Binary, err)
	}
	go func() {
		_ = p.cmd.Wait() // the exit status is in ProcessState
		p.state = p.cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("fluent-bit %s log:\n%s", file, tail(p.Log(), 16<<10))
		}
	})
}

// Rewrite writes cfg over the configuration the process was started with
// (same file, format and HTTP port), for a hot reload to pick up.
func (p *Process) Rewrite(cfg Config) {
	p.t.Helper()
	if p.httpURL != "" {
		cfg.Service = cfg.Service.With("http_server", "on", "http_listen", "127.0.0.1", "http_port", p.httpURL[strings.LastIndexByte(p.httpURL, ':')+1:])
	}
	if _, err := p.write(cfg); err != nil {
		p.t.Fatal(err)
	}
}

// write renders cfg into the directory and returns the main file's path.
func (p *Process) write(cfg Config) (string, error) {
	dir := p.opts.Dir
	service := append(Section{}, cfg.Service...)
	if cfg.Load == PluginsFile {
		pf := filepath.Join(dir, "plugins.conf")
		if err := os.WriteFile(pf, []byte("[PLUGINS]\n    Path "+p.opts.Plugin+"\n"), 0o644); err != nil {
			return "", err
		}
		service = service.With("plugins_file", pf)
	}
	if len(cfg.Parsers) > 0 {
		pf := filepath.Join(dir, "parsers.conf")
		if err := os.WriteFile(pf, classic("PARSER", cfg.Parsers), 0o644); err != nil {
			return "", err
		}
		service = service.With("parsers_file", pf)
	}
	var data []byte
	var name string
	switch cfg.Format {
	case Classic:
		if cfg.Load == PluginsSection {
			return "", errors.New("fluentbittest: the plugins section is YAML only")
		}
		name = "fluent-bit.conf"
		data = append(data, classic("SERVICE", []Section{service})...)
		data = append(data, classic("INPUT", cfg.Inputs)...)
		data = append(data, classic("OUTPUT", cfg.Outputs)...)
	case YAML:
		name = "fluent-bit.yaml"
		var plugins []string
		if cfg.Load == PluginsSection {
			plugins = []string{p.opts.Plugin}
		}
		var err error
		if data, err = yamlConfig(service, plugins, cfg.Inputs, cfg.Outputs); err != nil {
			return "", err
		}
	}
	file := filepath.Join(dir, name)
	return file, os.WriteFile(file, data, 0o644)
}

func classic(kind string, sections []Section) []byte {
	var b bytes.Buffer
	for _, s := range sections {
		fmt.Fprintf(&b, "[%s]\n", kind)
		for _, kv := range s {
			fmt.Fprintf(&b, "    %s %s\n", kv.Key, kv.Value)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// yamlConfig builds the YAML document as a node tree, so that keys keep
// their order and every value is a quoted-when-needed string.
func yamlConfig(service Section, plugins []string, inputs, outputs []Section) ([]byte, error) {
	str := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }
	mapping := func(s Section) *yaml.Node {
		n := &yaml.Node{Kind: yaml.MappingNode}
		for _, kv := range s {
			n.Content = append(n.Content, str(kv.Key), str(kv.Value))
		}
		return n
	}
	seq := func(ss []Section) *yaml.Node {
		n := &yaml.Node{Kind: yaml.SequenceNode}
		for _, s := range ss {
			n.Content = append(n.Content, mapping(s))
		}
		return n
	}
	root := &yaml.Node{Kind: yaml.MappingNode}
	root.Content = append(root.Content, str("service"), mapping(service))
	if len(plugins) > 0 {
		pl := &yaml.Node{Kind: yaml.SequenceNode}
		for _, p := range plugins {
			pl.Content = append(pl.Content, str(p))
		}
		root.Content = append(root.Content, str("plugins"), pl)
	}
	pipeline := &yaml.Node{Kind: yaml.MappingNode}
	pipeline.Content = append(pipeline.Content, str("inputs"), seq(inputs), str("outputs"), seq(outputs))
	root.Content = append(root.Content, str("pipeline"), pipeline)
	return yaml.Marshal(root)
}

// File is the main configuration file's path.
func (p *Process) File() string { return p.file }

// HTTPURL is the base URL of Fluent Bit's HTTP server (Config.HTTP).
func (p *Process) HTTPURL() string { return p.httpURL }

// Log is everything Fluent Bit and the plugin wrote so far.
func (p *Process) Log() string { return p.log.String() }

// Count is how many times s occurs in the log.
func (p *Process) Count(s string) int { return strings.Count(p.Log(), s) }

// WaitLog polls the log until cond holds, failing the test after within or
// when the process exits first.
func (p *Process) WaitLog(within time.Duration, what string, cond func(log string) bool) {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for {
		if cond(p.Log()) {
			return
		}
		if p.Exited() {
			if cond(p.Log()) {
				return
			}
			p.t.Fatalf("fluent-bit exited (%v) while waiting for %s", p.state, what)
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// WaitCount waits until s occurs at least n times in the log.
func (p *Process) WaitCount(within time.Duration, s string, n int) {
	p.t.Helper()
	p.WaitLog(within, fmt.Sprintf("%d× %q in the log", n, s), func(log string) bool { return strings.Count(log, s) >= n })
}

// Signal sends sig to Fluent Bit.
func (p *Process) Signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to exit, failing the test after within.
func (p *Process) Wait(within time.Duration) *os.ProcessState {
	p.t.Helper()
	select {
	case <-p.done:
		return p.state
	case <-time.After(within):
		p.t.Fatalf("fluent-bit still running %v after it was told to stop", within)
		return nil
	}
}

// Kill kills the process with SIGKILL, as a crash or the OOM killer would,
// and waits for it.
func (p *Process) Kill() {
	p.t.Helper()
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Reload asks for a hot reload through the HTTP server (POST
// /api/v2/reload) and returns the answer's status and body.
func (p *Process) Reload(ctx context.Context) (int, string, error) {
	if p.httpURL == "" {
		return 0, "", errors.New("fluentbittest: Reload needs Config.HTTP")
	}
	// Fluent Bit 5.1.1 closes the connection without an answer when the
	// POST has no body; a JSON object is what its docs send.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.httpURL+"/api/v2/reload", strings.NewReader("{}"))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// FreePort returns a loopback TCP port that was free a moment ago, for
// the listeners Fluent Bit cannot be told to pick itself (port 0 is
// refused).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Killed reports whether st is the state of a process ended by sig.
func Killed(st *os.ProcessState, sig syscall.Signal) bool {
	ws, ok := st.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}
