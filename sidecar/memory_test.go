package sidecar_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// peakRSS reads a process's peak resident set (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}

// startBinary runs the sidecar binary with conf and waits until /readyz
// answers 200.
func startBinary(t *testing.T, conf string) (*exec.Cmd, string, *lockedBuffer) {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	path := filepath.Join(dir, "sidecar.yaml")
	conf = strings.NewReplacer("${DIR}", dir, "${ADDR}", addr).Replace(conf)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, stderr := runBinary(t, bin, path, addr)
	return cmd, "http://" + addr, stderr
}

// runBinary starts bin as a sidecar with the configuration file conf,
// listening on addr, and waits until /readyz answers 200.
func runBinary(t *testing.T, bin, conf, addr string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command(bin, "sidecar", "--config", conf)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, "/readyz 200", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return cmd, stderr
}

// bigNDJSON is an NDJSON body of Kubernetes audit events just under size
// bytes, each with an id of its own.
func bigNDJSON(t *testing.T, size int, tag string) []byte {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(seed(t, "k8s-audit-event.json"), &ev); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for i := 0; ; i++ {
		ev["auditID"] = fmt.Sprintf("%s-%08d", tag, i)
		line, _ := json.Marshal(ev)
		if buf.Len()+len(line)+1 > size {
			return buf.Bytes()
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
}

// TestMemoryBoundedUnderBigBodies posts 64 NDJSON bodies of 8 MB at once
// to a sidecar with default limits. Each is answered 200, or 503 with
// Retry-After (the in-flight bound), and the process's peak RSS stays
// within 256 MiB; /healthz keeps answering meanwhile (its latency is
// reported, not asserted: timings drift on shared machines).
func TestMemoryBoundedUnderBigBodies(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	cmd, base, stderr := startBinary(t, `
data_dir: ${DIR}
server: {listen: "${ADDR}"}
log: {level: warn, format: text}
sources:
  - {name: k8s, format: k8s, auth: {none: true}}
outputs:
  - {name: events, type: file, file: {path: "${DIR}/events.ndjson"}}
`)
	const clients = 64
	bodies := make([][]byte, 4) // distinct ids per body would cost 512 MB in the test itself
	for i := range bodies {
		bodies[i] = bigNDJSON(t, 8_000_000, fmt.Sprintf("big%d", i))
	}
	var (
		mu       sync.Mutex
		codes    = map[int]int{}
		problems []string
		wg       sync.WaitGroup
	)
	stop := make(chan struct{})
	var health []time.Duration
	healthDone := make(chan struct{})
	go func() {
		defer close(healthDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			resp, err := http.Get(base + "/healthz")
			if err != nil {
				mu.Lock()
				problems = append(problems, "healthz: "+err.Error())
				mu.Unlock()
				return
			}
			resp.Body.Close()
			health = append(health, time.Since(t0))
			time.Sleep(20 * time.Millisecond) // a probe's period, not synchronisation
		}
	}()
	for c := range clients {
		wg.Go(func() {
			resp, err := http.Post(base+"/v1/sources/k8s", "application/x-ndjson", bytes.NewReader(bodies[c%len(bodies)]))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				problems = append(problems, err.Error())
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			codes[resp.StatusCode]++
			switch {
			case resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "":
				problems = append(problems, "503 without Retry-After")
			case resp.StatusCode != 200 && resp.StatusCode != 503:
				problems = append(problems, fmt.Sprintf("%d %.200s", resp.StatusCode, b))
			}
		})
	}
	wg.Wait()
	close(stop)
	<-healthDone
	rss := peakRSS(t, cmd.Process.Pid)
	slices.Sort(health)
	if len(health) == 0 {
		t.Fatal("/healthz never answered")
	}
	t.Logf("64 x 8 MB: answers %v, peak RSS %d MiB, /healthz median %v, slowest %v of %d",
		codes, rss>>20, health[len(health)/2], health[len(health)-1], len(health))
	for _, p := range problems {
		t.Error(p)
	}
	if codes[200] == 0 {
		t.Errorf("no request accepted: %v\n%s", codes, stderr.String())
	}
	if rss > 256<<20 {
		t.Errorf("peak RSS %d MiB, want at most 256 MiB", rss>>20)
	}

	// One object of 600,000 keys (5.9 MB) is refused by limits.max_members
	// before any tree is built, with a short message naming the limit.
	var wide bytes.Buffer
	wide.WriteString(`{"kind":"Event"`)
	for i := range 600_000 {
		fmt.Fprintf(&wide, `,"k%d":1`, i)
	}
	wide.WriteString("}")
	before := peakRSS(t, cmd.Process.Pid)
	resp, err := http.Post(base+"/v1/sources/k8s", "application/json", bytes.NewReader(wide.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "too many members") || len(b) > 2048 {
		t.Errorf("600,000-key object: %d %.300s (%d bytes)", resp.StatusCode, b, len(b))
	}
	if after := peakRSS(t, cmd.Process.Pid); after > 256<<20 {
		t.Errorf("peak RSS %d MiB after the 600,000-key object (%d MiB before)", after>>20, before>>20)
	}
}
