package fluentbittest_test

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	fbt "github.com/auditpipe/auditpipe/testenv/fluentbittest"
	"github.com/auditpipe/auditpipe/testenv/webhooktest"
)

// down makes the sink answer 503 until ClearFaults: a destination that is
// down, as far as any sender can tell.
func down(s *webhooktest.Sink) {
	codes := make([]int, 100000)
	for i := range codes {
		codes[i] = http.StatusServiceUnavailable
	}
	s.SetStatusSequence(codes...)
}

// webhookOutput is an auditpipe output to the sink that gives up on a
// flush quickly (Retry_Max_Elapsed), so the retries are Fluent Bit's.
func webhookOutput(e env, s *webhooktest.Sink, extra ...string) fbt.Section {
	return fbt.S("Name", "auditpipe", "Match", "*", "Output", "webhook", "Webhook_URL", s.URL(),
		"DLQ_Dir", e.path("dlq"), "Retry_Max_Elapsed", "200ms", "Retry_Limit", "no_limits").With(extra...)
}

// retryService is the service section of the retry tests: Fluent Bit
// schedules a retry 1 to 2 s after FLB_RETRY instead of its default 5 s and
// more.
func retryService(extra ...string) fbt.Section {
	return fbt.S("flush", "0.2", "grace", "2", "log_level", "info", "scheduler.base", "1", "scheduler.cap", "2").With(extra...)
}

func httpInput(port int, extra ...string) fbt.Section {
	return fbt.S("Name", "http", "Listen", "127.0.0.1", "Port", strconv.Itoa(port)).With(extra...)
}

// postSeeds posts every seed to the http input, one request (and so one
// chunk: the URL is the tag) per seed, and returns the ids expected.
func postSeeds(t *testing.T, port int, prefix string) []string {
	t.Helper()
	for _, s := range seeds {
		post(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/"+prefix+s.name, "["+strings.Join(s.records, ",")+"]", http.StatusCreated)
	}
	return allIDs()
}

func rawIDs(s *webhooktest.Sink) []string {
	var ids []string
	for _, ev := range s.RawEvents() {
		ids = append(ids, ev.ID)
	}
	return sorted(ids)
}

var failedChunk = regexp.MustCompile(`failed to flush chunk '([^']+)', retry in`)

// A destination that is down: the plugin answers FLB_RETRY, Fluent Bit
// re-sends each chunk on its schedule (Retry_Limit no_limits), and when the
// destination is back every event arrives, once.
func TestDestinationDownThenBack(t *testing.T) {
	t.Parallel()
	e := need(t)
	sink := webhooktest.NewSink(t)
	down(sink)
	port := fbt.FreePort(t)
	fb := e.start(fbt.Config{Format: fbt.Classic, Load: fbt.Flag, Service: retryService(),
		Inputs: []fbt.Section{httpInput(port)}, Outputs: []fbt.Section{webhookOutput(e, sink)}})
	fb.WaitCount(startup, `msg="instance started"`, 1)
	want := postSeeds(t, port, "down.")

	// Every chunk failed at least twice: FLB_RETRY, and Fluent Bit's retry
	// of it, answered FLB_RETRY again.
	fb.WaitLog(delivery, "every chunk retried", func(log string) bool {
		n := map[string]int{}
		for _, m := range failedChunk.FindAllStringSubmatch(log, -1) {
			n[m[1]]++
		}
		for _, c := range n {
			if c < 2 {
				return false
			}
		}
		return len(n) == len(seeds)
	})
	if st := sink.Stats(); st.Accepted != 0 || st.Requests < 2*len(seeds) {
		t.Fatalf("while down: %d requests, %d accepted; want >= %d and 0", st.Requests, st.Accepted, 2*len(seeds))
	}

	sink.ClearFaults()
	eventually(t, delivery, "every event at the destination once it is back", func() bool { return len(sink.RawEvents()) >= len(want) })
	fb.WaitCount(delivery, "succeeded at retry", len(seeds))
	fb.Signal(syscall.SIGTERM)
	if st := fb.Wait(startup); st.ExitCode() != 0 {
		t.Errorf("exit after SIGTERM: %v, want status 0", st)
	}
	if got := rawIDs(sink); !slices.Equal(got, want) {
		t.Errorf("events accepted by the destination (every copy):\n got %v\nwant %v", got, want)
	}
	if n := dlqCount(t, e.path("dlq")); n != 0 {
		t.Errorf("%d dead letters, want none: a destination that is down is retried, not dead-lettered", n)
	}
}

// With storage.type filesystem, chunks waiting for a retry survive kill -9,
// and SIGTERM (which, with the chunks safe on disk, exits at once): the
// restarted Fluent Bit finds them on disk and delivers every event, once,
// and removes them.
func TestRestartWhileChunksWait(t *testing.T) {
	for _, stop := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		name := map[syscall.Signal]string{syscall.SIGKILL: "kill-9", syscall.SIGTERM: "SIGTERM"}[stop]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := need(t)
			sink := webhooktest.NewSink(t)
			down(sink)
			port := fbt.FreePort(t)
			storage := e.path("storage")
			cfg := fbt.Config{Format: fbt.YAML, Load: fbt.PluginsFile,
				Service: retryService("storage.path", storage, "storage.sync", "full"),
				Inputs:  []fbt.Section{httpInput(port, "storage.type", "filesystem")},
				Outputs: []fbt.Section{webhookOutput(e, sink)}}
			fb := e.start(cfg)
			fb.WaitCount(startup, `msg="instance started"`, 1)
			want := postSeeds(t, port, "restart.")

			// Stop only once every chunk on disk has been tried and is
			// waiting for its retry.
			fb.WaitLog(delivery, "every chunk on disk waiting for a retry", func(log string) bool {
				files := chunkFiles(t, storage)
				if len(files) != len(seeds) {
					return false
				}
				for _, f := range files {
					if !strings.Contains(log, "failed to flush chunk '"+filepath.Base(f)+"'") {
						return false
					}
				}
				return true
			})
			fb.Signal(stop)
			st := fb.Wait(startup)
			switch {
			case stop == syscall.SIGKILL && !fbt.Killed(st, syscall.SIGKILL):
				t.Fatalf("fluent-bit ended with %v, want killed by SIGKILL", st)
			case stop == syscall.SIGTERM && st.ExitCode() != 0:
				t.Fatalf("exit after SIGTERM: %v, want status 0", st)
			}
			if n := len(chunkFiles(t, storage)); n != len(seeds) {
				t.Fatalf("%d chunks on disk after %v, want %d", n, stop, len(seeds))
			}
			if st := sink.Stats(); st.Accepted != 0 {
				t.Fatalf("the destination accepted %d requests while down", st.Accepted)
			}

			sink.ClearFaults()
			fb = e.start(cfg)
			eventually(t, delivery, "every event after the restart", func() bool { return len(sink.RawEvents()) >= len(want) })
			eventually(t, delivery, "the delivered chunks removed from disk", func() bool { return len(chunkFiles(t, storage)) == 0 })
			fb.Signal(syscall.SIGTERM)
			if st := fb.Wait(startup); st.ExitCode() != 0 {
				t.Errorf("exit after SIGTERM: %v, want status 0", st)
			}
			if got := rawIDs(sink); !slices.Equal(got, want) {
				t.Errorf("events accepted by the destination (every copy):\n got %v\nwant %v", got, want)
			}
			if !strings.Contains(fb.Log(), "flush backlog chunk") {
				t.Errorf("the restarted Fluent Bit did not say it flushed its backlog")
			}
		})
	}
}

// chunkFiles lists Fluent Bit's chunk files under its storage.path.
func chunkFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".flb") {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
