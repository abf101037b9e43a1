// Command loadgen measures the sidecar as its senders see it: it starts an
// in-process Kafka broker (kafkatest), runs `auditpipe sidecar` as a child
// process with fsync on and Kafka as the only output, posts authenticated
// payloads of one source (Spacelift, Alertmanager or yoq entries) from N
// concurrent clients for a while or for a number of requests, and reports
// requests/s, events/s, acknowledgement latency (p50, p99), the sidecar's
// CPU per request, its idle and peak RSS, and whether every accepted event
// reached Kafka.
//
//	make build && go run ./testenv/cmd/loadgen --sidecar build/auditpipe --clients 64 --duration 10s
//
// Wall-clock figures drift on a shared machine; two modes do not:
//
//	--icount: runs the sidecar under valgrind's callgrind twice, with
//	  --requests N and 3N, and prints the instructions the sidecar process
//	  executed per request (the difference over 2N), GOGC=off;
//	--profile FILE: writes a CPU profile of the sidecar over the measured
//	  period (the sidecar runs with --pprof).
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/auditpipe/auditpipe/integrity"
	"github.com/auditpipe/auditpipe/testenv/kafkatest"
)

const secret = "loadgen-hmac-secret-0123456789"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type options struct {
	sidecar  string
	clients  int
	duration time.Duration
	warmup   time.Duration
	requests int
	source   string
	payload  string
	fsync    bool
	keep     bool
	sign     string
	profile  string
	icount   bool
	// wrap is a command the sidecar runs under (valgrind), and env its
	// extra environment.
	wrap []string
	env  []string
	// dump is callgrind's output file, when wrap is callgrind.
	dump string
}

// sources are the payloads loadgen can post: the path of each source's
// endpoint, its seed payload and the credentials it is configured with.
var sources = map[string]struct {
	payload string
	header  func(body []byte) (string, string)
}{
	"spacelift":    {"examples/payloads/spacelift-stack-create.json", func(b []byte) (string, string) { return "X-Signature-256", sign(b) }},
	"alertmanager": {"examples/payloads/alertmanager-audit.json", func([]byte) (string, string) { return "Authorization", "Bearer " + token }},
	"app":          {"examples/payloads/yoq-entries.json", func([]byte) (string, string) { return "Authorization", "Bearer " + token }},
}

const token = "loadgen-bearer-token-0123456789"

// topics are the Kafka topics the sidecar's output writes (audit.{source}).
var topics = []string{"audit.spacelift", "audit.alertmanager", "audit.app"}

func run(ctx context.Context, args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&o.sidecar, "sidecar", "build/auditpipe", "the auditpipe binary to run")
	fs.IntVar(&o.clients, "clients", 64, "concurrent clients, each posting one payload at a time")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to measure")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before measuring starts")
	fs.IntVar(&o.requests, "requests", 0, "post this many requests, then stop (no warm-up); 0: for --duration")
	fs.StringVar(&o.source, "source", "spacelift", "the source to post to: spacelift (one event a request), alertmanager (6 alerts) or app (12 yoq entries)")
	fs.StringVar(&o.payload, "payload", "", "payload to post instead of the source's seed (a Spacelift payload's timestamp is varied so every request is a new event)")
	fs.StringVar(&o.profile, "profile", "", "write a CPU profile of the sidecar over the measured period to this file")
	fs.BoolVar(&o.icount, "icount", false, "count the sidecar's instructions per request under callgrind (--requests N, default 1000: runs N and 3N)")
	fs.BoolVar(&o.fsync, "fsync", true, "queue.fsync of the sidecar")
	fs.BoolVar(&o.keep, "keep", false, "keep the sidecar's data directory")
	fs.StringVar(&o.sign, "integrity", "off", "tamper evidence: off, batch or every_event (integrity.sign, with a key made for the run)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	src, ok := sources[o.source]
	if !ok {
		return fmt.Errorf("--source %q: want spacelift, alertmanager or app", o.source)
	}
	if o.payload == "" {
		o.payload = src.payload
	}
	seed, err := os.ReadFile(o.payload)
	if err != nil {
		return err
	}
	bodies, err := variants(o.source, seed, 50000, src.header)
	if err != nil {
		return err
	}
	if o.icount {
		return icount(ctx, o, bodies, out)
	}
	_, err = load(ctx, o, bodies, out)
	return err
}

// icount runs the sidecar under callgrind for N and 3N requests and
// prints the instructions per request. GOGC=off keeps the collector's
// timing out of the count; asyncpreemptoff because Go's preemption
// signals crash valgrind 3.19.
func icount(ctx context.Context, o options, bodies [][3][]byte, out io.Writer) error {
	if o.requests == 0 {
		o.requests = 1000
	}
	dir, err := os.MkdirTemp("", "loadgen-icount-")
	if err != nil {
		return err
	}
	if o.keep {
		// For callgrind_annotate: the 3N run's counters are in
		// callgrind.<3N>.1.
		fmt.Fprintf(out, "callgrind output kept in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	var totals [2]int64
	for i, n := range []int{o.requests, 3 * o.requests} {
		file := filepath.Join(dir, fmt.Sprintf("callgrind.%d", n))
		o := o
		o.requests = n
		o.keep = false
		o.wrap = []string{"valgrind", "--tool=callgrind", "--callgrind-out-file=" + file}
		o.dump = file
		o.env = []string{"GOGC=off", "GODEBUG=asyncpreemptoff=1"}
		var log bytes.Buffer
		if _, err := load(ctx, o, bodies, &log); err != nil {
			out.Write(log.Bytes())
			return err
		}
		if totals[i], err = callgrindTotal(file + ".1"); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s: %d requests: %d instructions\n", o.source, n, totals[i])
	}
	fmt.Fprintf(out, "%s: %d instructions per request (clients %d, fsync %t, integrity %s)\n",
		o.source, (totals[1]-totals[0])/int64(2*o.requests), o.clients, o.fsync, o.sign)
	return nil
}

// dumpCallgrind asks the callgrind running as pid to dump its counters,
// and waits until file.1 holds them.
func dumpCallgrind(ctx context.Context, pid int, file string) error {
	if b, err := exec.CommandContext(ctx, "callgrind_control", "-d", strconv.Itoa(pid)).CombinedOutput(); err != nil {
		return fmt.Errorf("callgrind_control: %v: %s", err, b)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if _, err := callgrindTotal(file + ".1"); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("callgrind wrote no %s.1", file)
}

// callgrindTotal reads the total instruction count of a callgrind output
// file (its "summary:" or "totals:" line).
func callgrindTotal(file string) (int64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		for _, p := range []string{"summary: ", "totals: "} {
			if v, ok := strings.CutPrefix(l, p); ok {
				return strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("%s: no totals", file)
}

// result is what one load run measured.
type result struct {
	requests int64
}

func load(ctx context.Context, o options, bodies [][3][]byte, out io.Writer) (result, error) {
	var res result
	broker, err := kafkatest.Start(kafkatest.Config{Topics: topics, Partitions: 3})
	if err != nil {
		return res, err
	}
	defer broker.Close()
	dir, err := os.MkdirTemp("", "loadgen-")
	if err != nil {
		return res, err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	addr, err := freeAddr()
	if err != nil {
		return res, err
	}
	conf := fmt.Sprintf(`data_dir: %s
server: {listen: %q}
queue: {fsync: %t}
log: {level: warn, format: text}
sources:
  - name: spacelift
    format: spacelift
    auth: {hmac: {secrets: [%q]}}
  - name: alertmanager
    format: alertmanager
    auth: {bearer: {tokens: [%q]}}
  - name: app
    format: app
    auth: {bearer: {tokens: [%q]}}
outputs:
  - name: kafka
    type: kafka
    kafka: {brokers: [%q], topic: "audit.{source}"}
`, dir, addr, o.fsync, secret, token, token, broker.Addrs()[0])
	if o.sign != "off" {
		priv, _, err := integrity.GenerateKey(nil)
		if err != nil {
			return res, err
		}
		key := filepath.Join(dir, "signing.pem")
		if err := os.WriteFile(key, priv, 0o600); err != nil {
			return res, err
		}
		conf += fmt.Sprintf("integrity: {signing_key_file: %q, sign: %s}\n", key, o.sign)
	}
	confPath := filepath.Join(dir, "sidecar.yaml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return res, err
	}
	argv := append(slices.Clone(o.wrap), o.sidecar, "sidecar", "--config", confPath)
	var pprofAddr string
	if o.profile != "" {
		if pprofAddr, err = freeAddr(); err != nil {
			return res, err
		}
		argv = append(argv, "--pprof", pprofAddr)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), o.env...)
	cmd.Stderr = os.Stderr
	if o.wrap != nil {
		cmd.Stderr = io.Discard // valgrind's own report
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	}()
	base := "http://" + addr
	ready := 20 * time.Second
	if o.wrap != nil {
		ready = 5 * time.Minute
	}
	if err := waitReady(ctx, base+"/readyz", ready); err != nil {
		return res, err
	}
	// VmRSS and its two parts: anonymous memory is the process's own;
	// file pages are the binary's, shared with every process that maps the
	// same file and how many of them a start-up maps depends on the
	// kernel's fault-around and page-cache folio sizes.
	idle := rss(cmd.Process.Pid, "VmRSS")
	idleAnon, idleFile := rss(cmd.Process.Pid, "RssAnon"), rss(cmd.Process.Pid, "RssFile")

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.clients, MaxConnsPerHost: o.clients}}
	var (
		next      atomic.Int64
		measuring atomic.Bool
		mu        sync.Mutex
		lat       []time.Duration
		failures  atomic.Int64
		accepted  atomic.Int64 // events
		requests  atomic.Int64 // accepted requests
		wg        sync.WaitGroup
	)
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	warmup := o.warmup
	if o.requests > 0 {
		warmup = 0
	} else {
		loadCtx, stopLoad = context.WithTimeout(ctx, o.warmup+o.duration)
		defer stopLoad()
	}
	url := base + "/v1/sources/" + o.source
	for range o.clients {
		wg.Go(func() {
			var mine []time.Duration
			for loadCtx.Err() == nil {
				i := int(next.Add(1))
				if o.requests > 0 && i > o.requests {
					break
				}
				b := bodies[i%len(bodies)]
				start := time.Now()
				n, ok := post(loadCtx, client, url, b)
				d := time.Since(start)
				if ok {
					accepted.Add(int64(n))
					requests.Add(1)
				} else if loadCtx.Err() == nil {
					failures.Add(1)
				}
				if measuring.Load() && ok {
					mine = append(mine, d)
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	select {
	case <-time.After(warmup):
	case <-loadCtx.Done():
	}
	measuring.Store(true)
	t0 := time.Now()
	cpu0 := cpuTime(cmd.Process.Pid)
	req0 := requests.Load()
	profDone := make(chan error, 1)
	if o.profile != "" {
		go func() { profDone <- fetchProfile(ctx, pprofAddr, o.duration, o.profile) }()
	} else {
		profDone <- nil
	}
	wg.Wait()
	elapsed := time.Since(t0)
	peak := rss(cmd.Process.Pid, "VmHWM")

	// Everything acknowledged must reach Kafka.
	want := accepted.Load()
	drainTime := 2 * time.Minute
	if o.wrap != nil {
		drainTime = 30 * time.Minute
	}
	drainCtx, cancel := context.WithTimeout(ctx, drainTime)
	defer cancel()
	var got int64
	for drainCtx.Err() == nil {
		got = 0
		for _, t := range topics {
			got += broker.Count(t)
		}
		if got >= want {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The delivery of what was accepted counts too.
	cpu := cpuTime(cmd.Process.Pid) - cpu0
	measured := requests.Load() - req0
	res.requests = requests.Load()
	if err := <-profDone; err != nil {
		return res, fmt.Errorf("profile: %w", err)
	}
	stopped = true
	if o.dump != "" {
		// callgrind 3.19 dies on an assertion when the sidecar takes
		// SIGTERM, so its counters are dumped on request and the
		// process killed.
		if err := dumpCallgrind(ctx, cmd.Process.Pid, o.dump); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return res, err
		}
		cmd.Process.Kill()
	} else {
		cmd.Process.Signal(syscall.SIGTERM)
	}
	cmd.Wait()

	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	n := len(lat)
	fmt.Fprintf(out, "source %s, clients %d, fsync %t, measured %s after %s warm-up\n", o.source, o.clients, o.fsync, elapsed.Round(time.Millisecond), warmup)
	fmt.Fprintf(out, "requests/s %.0f, events/s %.0f\n", float64(n)/elapsed.Seconds(), float64(want)/float64(max(res.requests, 1))*float64(n)/elapsed.Seconds())
	fmt.Fprintf(out, "ack latency p50 %s, p99 %s, max %s\n", pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), pct(1).Round(10*time.Microsecond))
	if measured > 0 {
		fmt.Fprintf(out, "sidecar CPU per request %.0f µs (user+system, delivery included)\n", cpu.Seconds()*1e6/float64(measured))
	}
	fmt.Fprintf(out, "failed requests %d\n", failures.Load())
	fmt.Fprintf(out, "sidecar RSS idle %.1f MiB (anonymous %.1f, file %.1f), peak %.1f MiB\n",
		float64(idle)/(1<<20), float64(idleAnon)/(1<<20), float64(idleFile)/(1<<20), float64(peak)/(1<<20))
	fmt.Fprintf(out, "accepted %d events, in Kafka %d\n", want, got)
	if got < want {
		return res, fmt.Errorf("%d accepted events missing from Kafka", want-got)
	}
	return res, nil
}

// fetchProfile writes a CPU profile of d from the sidecar's pprof server.
func fetchProfile(ctx context.Context, addr string, d time.Duration, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, max(1, int(d.Seconds()))), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

// cpuTime is the user and system time a process has used so far
// (/proc/<pid>/stat fields 14 and 15).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields count from after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / 100 // USER_HZ, 100 on Linux
}

// variants makes n copies of a payload, each with its credentials
// header. Spacelift payloads get distinct timestamps (so distinct ids); the
// others are posted as they are.
func variants(source string, seed []byte, n int, header func([]byte) (string, string)) ([][3][]byte, error) {
	if source != "spacelift" {
		k, v := header(seed)
		return [][3][]byte{{seed, []byte(k), []byte(v)}}, nil
	}
	var m map[string]any
	if err := json.Unmarshal(seed, &m); err != nil {
		return nil, err
	}
	ts, _ := m["timestamp"].(float64)
	out := make([][3][]byte, n)
	for i := range out {
		m["timestamp"] = int64(ts) + int64(i)
		b, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		k, v := header(b)
		out[i] = [3][]byte{b, []byte(k), []byte(v)}
	}
	return out, nil
}

func sign(b []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(b)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// post sends one payload and returns the events the sidecar accepted.
func post(ctx context.Context, c *http.Client, url string, b [3][]byte) (int, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b[0]))
	if err != nil {
		return 0, false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(string(b[1]), string(b[2]))
	resp, err := c.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var a struct {
		Accepted int `json:"accepted"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return 0, false
	}
	io.Copy(io.Discard, resp.Body)
	return a.Accepted, resp.StatusCode == http.StatusOK
}

func waitReady(ctx context.Context, url string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("sidecar not ready after %s", wait)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// rss reads a size field (VmRSS, VmHWM) of /proc/<pid>/status, in bytes.
func rss(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
