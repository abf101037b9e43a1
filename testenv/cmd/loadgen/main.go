// Command loadgen measures the sidecar as its senders see it: it starts an
// in-process Kafka broker (kafkatest), runs `auditpipe sidecar` as a child
// process with fsync on and Kafka as the only output, posts signed Spacelift
// payloads from N concurrent clients for a while, and reports requests/s,
// events/s, acknowledgement latency (p50, p99), the sidecar's idle and peak
// RSS, and whether every accepted event reached Kafka.
//
//	make build && go run ./testenv/cmd/loadgen --sidecar build/auditpipe --clients 64 --duration 10s
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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
	payload  string
	fsync    bool
	keep     bool
	sign     string
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&o.sidecar, "sidecar", "build/auditpipe", "the auditpipe binary to run")
	fs.IntVar(&o.clients, "clients", 64, "concurrent clients, each posting one payload at a time")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to measure")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "load before measuring starts")
	fs.StringVar(&o.payload, "payload", "examples/payloads/spacelift-stack-create.json", "Spacelift payload to post (its timestamp is varied so every request is a new event)")
	fs.BoolVar(&o.fsync, "fsync", true, "queue.fsync of the sidecar")
	fs.BoolVar(&o.keep, "keep", false, "keep the sidecar's data directory")
	fs.StringVar(&o.sign, "integrity", "off", "tamper evidence: off, batch or every_event (integrity.sign, with a key made for the run)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	seed, err := os.ReadFile(o.payload)
	if err != nil {
		return err
	}
	bodies, err := variants(seed, 50000)
	if err != nil {
		return err
	}

	broker, err := kafkatest.Start(kafkatest.Config{Topics: []string{"audit.spacelift"}, Partitions: 3})
	if err != nil {
		return err
	}
	defer broker.Close()
	dir, err := os.MkdirTemp("", "loadgen-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	conf := fmt.Sprintf(`data_dir: %s
server: {listen: %q}
queue: {fsync: %t}
log: {level: warn, format: text}
sources:
  - name: spacelift
    format: spacelift
    auth: {hmac: {secrets: [%q]}}
outputs:
  - name: kafka
    type: kafka
    kafka: {brokers: [%q], topic: "audit.{source}"}
`, dir, addr, o.fsync, secret, broker.Addrs()[0])
	if o.sign != "off" {
		priv, _, err := integrity.GenerateKey(nil)
		if err != nil {
			return err
		}
		key := filepath.Join(dir, "signing.pem")
		if err := os.WriteFile(key, priv, 0o600); err != nil {
			return err
		}
		conf += fmt.Sprintf("integrity: {signing_key_file: %q, sign: %s}\n", key, o.sign)
	}
	confPath := filepath.Join(dir, "sidecar.yaml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(o.sidecar, "sidecar", "--config", confPath)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	base := "http://" + addr
	if err := waitReady(ctx, base+"/readyz"); err != nil {
		return err
	}
	idle := rss(cmd.Process.Pid, "VmRSS")

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.clients, MaxConnsPerHost: o.clients}}
	var (
		next      atomic.Int64
		measuring atomic.Bool
		mu        sync.Mutex
		lat       []time.Duration
		failures  atomic.Int64
		accepted  atomic.Int64
		wg        sync.WaitGroup
	)
	loadCtx, stopLoad := context.WithTimeout(ctx, o.warmup+o.duration)
	defer stopLoad()
	for range o.clients {
		wg.Go(func() {
			var mine []time.Duration
			for loadCtx.Err() == nil {
				b := bodies[int(next.Add(1))%len(bodies)]
				start := time.Now()
				ok := post(loadCtx, client, base+"/v1/sources/spacelift", b)
				d := time.Since(start)
				if ok {
					accepted.Add(1)
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
	case <-time.After(o.warmup):
	case <-loadCtx.Done():
	}
	measuring.Store(true)
	t0 := time.Now()
	wg.Wait()
	elapsed := time.Since(t0)
	peak := rss(cmd.Process.Pid, "VmHWM")

	// Everything acknowledged must reach Kafka.
	want := accepted.Load()
	drainCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var got int64
	for drainCtx.Err() == nil {
		if got = broker.Count("audit.spacelift"); got >= want {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	n := len(lat)
	fmt.Fprintf(out, "clients %d, fsync %t, measured %s after %s warm-up\n", o.clients, o.fsync, elapsed.Round(time.Millisecond), o.warmup)
	fmt.Fprintf(out, "requests/s %.0f (one event each)\n", float64(n)/elapsed.Seconds())
	fmt.Fprintf(out, "ack latency p50 %s, p99 %s, max %s\n", pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), pct(1).Round(10*time.Microsecond))
	fmt.Fprintf(out, "failed requests %d\n", failures.Load())
	fmt.Fprintf(out, "sidecar RSS idle %.1f MiB, peak %.1f MiB\n", float64(idle)/(1<<20), float64(peak)/(1<<20))
	fmt.Fprintf(out, "accepted %d, in Kafka %d\n", want, got)
	if got < want {
		return fmt.Errorf("%d accepted events missing from Kafka", want-got)
	}
	return nil
}

// variants makes n copies of a Spacelift payload with distinct timestamps
// (so distinct ids), each with its signature.
func variants(seed []byte, n int) ([][2][]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(seed, &m); err != nil {
		return nil, err
	}
	ts, _ := m["timestamp"].(float64)
	out := make([][2][]byte, n)
	for i := range out {
		m["timestamp"] = int64(ts) + int64(i)
		b, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(b)
		out[i] = [2][]byte{b, []byte("sha256=" + hex.EncodeToString(mac.Sum(nil)))}
	}
	return out, nil
}

func post(ctx context.Context, c *http.Client, url string, b [2][]byte) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b[0]))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Signature-256", string(b[1]))
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func waitReady(ctx context.Context, url string) error {
	deadline := time.Now().Add(20 * time.Second)
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
	return errors.New("sidecar not ready after 20s")
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
