package external_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/examples/transformer-plugin/githubaudit"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/external"
)

// benchEntry is one GitHub audit-log entry as the streaming API sends it
// (compact, 590 bytes).
const benchEntry = `{"@timestamp":1732185600123,"_document_id":"Xy9pLq2bS0aT1uV3wZ4cDe","action":"repo.create","actor":"octocat","actor_id":583231,"actor_ip":"203.0.113.24","actor_location":{"country_code":"US"},"business":"octo-business","business_id":1234,"created_at":1732185600123,"operation_type":"create","org":"octo-org","org_id":9919,"repo":"octo-org/hello-world","repo_id":1296269,"user_agent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36","visibility":"private"}`

var benchBatches = []int{1, 10, 100}

// BenchmarkExternal: events/s through the example plugin, one GitHub
// entry per payload, batch payloads per call. The plugin is its own
// process: -cpu bounds the host only.
func BenchmarkExternal(b *testing.B) {
	example, _ := external.Plugins(b)
	tr, err := external.New(context.Background(), external.Config{Path: example}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	for _, n := range benchBatches {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			ins := make([]transformers.Input, n)
			for i := range ins {
				ins[i] = input(benchEntry)
			}
			b.ReportAllocs()
			host0, plugin0 := cpuTimes(tr.PID())
			for b.Loop() {
				res, err := tr.TransformBatch(context.Background(), ins)
				if err != nil || len(res) != n || len(res[n-1].Events) != 1 {
					b.Fatalf("TransformBatch: %v", err)
				}
			}
			host1, plugin1 := cpuTimes(tr.PID())
			events := float64(b.N * n)
			b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
			// CPU time per event on each side: what the plugin costs
			// whatever else the machine is doing.
			b.ReportMetric(float64(host1-host0)/events, "host-cpu-ns/event")
			if plugin0 >= 0 && plugin1 >= 0 {
				b.ReportMetric(float64(plugin1-plugin0)/events, "plugin-cpu-ns/event")
			}
		})
	}
}

// BenchmarkInProcess: the same function on the same payloads in this
// process, with the SDK's finishing and validation: the cost the plugin
// boundary adds to is this.
func BenchmarkInProcess(b *testing.B) {
	gh, err := githubaudit.New()
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range benchBatches {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			in := external.Payload{Body: []byte(benchEntry), SourceName: "src", ReceivedAt: receivedAt}
			b.ReportAllocs()
			for b.Loop() {
				for range n {
					events, err := gh.Transform(context.Background(), in)
					if err != nil || len(events) != 1 {
						b.Fatalf("Transform: %v", err)
					}
					external.Finish(&events[0], in)
					if err := external.Validate(&events[0]); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// cpuTimes is the CPU time (user and system) this process and the plugin
// process pid have used so far; the plugin's is -1 where /proc cannot tell
// (not Linux).
func cpuTimes(pid int) (host, plugin time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		host = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	plugin = -1
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return host, plugin
	}
	// Fields 14 and 15 (utime, stime) in clock ticks, counted after the
	// command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return host, plugin
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return host, plugin
	}
	const ticksPerSecond = 100 // USER_HZ on every Linux architecture Go supports
	return host, time.Duration(ut+st) * time.Second / ticksPerSecond
}
