package fluentbittest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	fbt "github.com/auditpipe/auditpipe/testenv/fluentbittest"
	"github.com/auditpipe/auditpipe/testenv/webhooktest"
)

// barrier holds each request until two are in flight at once (or wait
// has passed), then hands it to next: the proof that flushes run
// concurrently, without guessing at timing.
type barrier struct {
	next http.Handler
	wait time.Duration
	met  chan struct{}
	once sync.Once

	mu             sync.Mutex
	inFlight, peak int
}

func (b *barrier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.inFlight++
	b.peak = max(b.peak, b.inFlight)
	if b.inFlight >= 2 {
		b.once.Do(func() { close(b.met) })
	}
	b.mu.Unlock()
	select {
	case <-b.met:
	case <-time.After(b.wait):
	}
	b.next.ServeHTTP(w, r)
	b.mu.Lock()
	b.inFlight--
	b.mu.Unlock()
}

func (b *barrier) Peak() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peak
}

// Workers 2: Fluent Bit flushes a Go output's chunks on two threads at
// once, and the plugin delivers them concurrently, every event once.
// Fluent Bit 5.1.1 starts a Go output's worker pool twice (the proxy's
// init and the engine each call flb_output_enable_multi_threading): Workers
// N starts 2N threads, of which N work and are stopped at exit and N stay
// idle until the process ends. Held here so that a Fluent Bit that fixes it
// shows up; plugin/README.md says so.
func TestWorkersFlushConcurrently(t *testing.T) {
	t.Parallel()
	e := need(t)
	sink := webhooktest.NewSink(t)
	b := &barrier{next: sink, wait: 10 * time.Second, met: make(chan struct{})}
	front := httptest.NewServer(b)
	t.Cleanup(front.Close)
	port := fbt.FreePort(t)
	fb := e.start(fbt.Config{Format: fbt.Classic, Load: fbt.PluginsFile, Service: retryService(),
		Inputs: []fbt.Section{httpInput(port)},
		Outputs: []fbt.Section{fbt.S("Name", "auditpipe", "Alias", "siem", "Match", "*", "Workers", "2",
			"Output", "webhook", "Webhook_URL", front.URL+"/webhook", "DLQ_Dir", e.path("dlq"))}})
	fb.WaitCount(startup, `msg="instance started"`, 1)
	want := postSeeds(t, port, "w.")
	eventually(t, delivery, "every event", func() bool { return len(sink.RawEvents()) >= len(want) })
	if p := b.Peak(); p < 2 {
		t.Errorf("at most %d delivery in flight at once, want 2 with Workers 2", p)
	}
	fb.Signal(syscall.SIGTERM)
	if st := fb.Wait(startup); st.ExitCode() != 0 {
		t.Errorf("exit after SIGTERM: %v, want status 0", st)
	}
	if got := rawIDs(sink); !slices.Equal(got, want) {
		t.Errorf("events accepted (every copy):\n got %v\nwant %v", got, want)
	}
	for w := range 2 {
		started := fb.Count("[output:auditpipe:siem] worker #" + strconv.Itoa(w) + " started")
		stopped := fb.Count("[output:auditpipe:siem] thread worker #" + strconv.Itoa(w) + " stopped")
		if started != 2 || stopped != 1 {
			t.Errorf("worker #%d: started %d times, stopped %d; Fluent Bit 5.1.1 starts a Go output's pool twice and stops one (2, 1): update plugin/README.md if this changed", w, started, stopped)
		}
	}
	if n := fb.Count(`msg="instance closed"`); n != 1 {
		t.Errorf("%d instances closed, want 1", n)
	}
}

// Two [OUTPUT] sections of the plugin in one Fluent Bit are two instances
// with their own format, destination and dead-letter store: each gets only
// the records its Match selects, Fluent Bit counts them apart
// (auditpipe.0, auditpipe.1), and exit closes both.
func TestTwoInstances(t *testing.T) {
	t.Parallel()
	e := need(t)
	sink := webhooktest.NewSink(t)
	port := fbt.FreePort(t)
	fb := e.start(fbt.Config{Format: fbt.YAML, Load: fbt.PluginsSection, Service: retryService(), HTTP: true,
		Inputs: []fbt.Section{httpInput(port)},
		Outputs: []fbt.Section{
			fbt.S("name", "auditpipe", "match", "sl.*", "format", "spacelift", "output", "file", "file_path", e.path("spacelift.ndjson"), "dlq_dir", e.path("dlq-sl")),
			fbt.S("name", "auditpipe", "match", "k8s.*", "format", "k8s", "output", "webhook", "webhook_url", sink.URL(), "dlq_dir", e.path("dlq-k8s")),
		}})
	fb.WaitCount(startup, `msg="instance started"`, 2)
	var wantSL, wantK8s []string
	records := map[string]int{}
	for _, s := range seeds {
		var prefix, out string
		switch {
		case strings.HasPrefix(s.name, "spacelift"):
			prefix, out = "sl.", "auditpipe.0"
			wantSL = append(wantSL, s.ids...)
		case strings.HasPrefix(s.name, "k8s"):
			prefix, out = "k8s.", "auditpipe.1"
			wantK8s = append(wantK8s, s.ids...)
		default:
			continue
		}
		records[out] += len(s.records)
		post(t, "http://127.0.0.1:"+strconv.Itoa(port)+"/"+prefix+s.name, "["+strings.Join(s.records, ",")+"]", http.StatusCreated)
	}
	wantSL, wantK8s = sorted(wantSL), sorted(wantK8s)
	eventually(t, delivery, "both instances' events", func() bool {
		return len(fileEvents(t, e.path("spacelift.ndjson"))) >= len(wantSL) && len(sink.RawEvents()) >= len(wantK8s)
	})
	var gotSL []string
	for _, ev := range fileEvents(t, e.path("spacelift.ndjson")) {
		gotSL = append(gotSL, ev.ID)
	}
	if got := sorted(gotSL); !slices.Equal(got, wantSL) {
		t.Errorf("instance 1 (spacelift, file):\n got %v\nwant %v", got, wantSL)
	}
	if got := rawIDs(sink); !slices.Equal(got, wantK8s) {
		t.Errorf("instance 2 (k8s, webhook):\n got %v\nwant %v", got, wantK8s)
	}

	var metrics struct {
		Output map[string]struct {
			ProcRecords int `json:"proc_records"`
		} `json:"output"`
	}
	eventually(t, delivery, "Fluent Bit's metrics counting both instances", func() bool {
		resp, err := http.Get(fb.HTTPURL() + "/api/v1/metrics")
		if err != nil {
			return false // the HTTP server starts after the plugin
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&metrics); err != nil {
			return false
		}
		for out, n := range records {
			if metrics.Output[out].ProcRecords != n {
				return false
			}
		}
		return true
	})

	fb.Signal(syscall.SIGTERM)
	if st := fb.Wait(startup); st.ExitCode() != 0 {
		t.Errorf("exit after SIGTERM: %v, want status 0", st)
	}
	for _, id := range []string{"instance=1", "instance=2"} {
		if !strings.Contains(fb.Log(), `msg="instance closed" plugin=auditpipe `+id) {
			t.Errorf("no %q closed at exit", id)
		}
	}
}

// A configuration the plugin refuses: the user sees the plugin's lines,
// one per problem starting with the key, then Fluent Bit's own, and Fluent
// Bit 5.1.1 exits with status 255 (no crash). `fluent-bit --dry-run` does
// not run a Go plugin's init, so it calls the same file valid.
func TestBadConfig(t *testing.T) {
	for _, v := range []struct {
		format fbt.Format
		load   fbt.Load
	}{{fbt.Classic, fbt.Flag}, {fbt.YAML, fbt.PluginsSection}} {
		t.Run(v.format.String(), func(t *testing.T) {
			t.Parallel()
			e := need(t)
			cfg := fbt.Config{Format: v.format, Load: v.load, Service: fbt.S("flush", "0.2", "grace", "1"),
				Inputs: []fbt.Section{fbt.S("Name", "dummy", "Tag", "x")},
				Outputs: []fbt.Section{fbt.S("Name", "auditpipe", "Match", "*", "Output", "kafka",
					"Kafka_Topic", "audit", "Webhook_URL", "http://127.0.0.1:1/")}}
			dry := fbt.Start(t, fbt.Options{Binary: fluentBit, Plugin: pluginSO, Dir: e.dir, Args: []string{"--dry-run"}}, cfg)
			if st := dry.Wait(startup); st.ExitCode() != 0 || !strings.Contains(dry.Log(), "configuration test is successful") {
				t.Errorf("--dry-run: %v, want status 0 and 'configuration test is successful' (it does not run the plugin's init)", st)
			}

			fb := e.start(cfg)
			st := fb.Wait(startup)
			if st.ExitCode() != 255 {
				t.Errorf("exit %v, want status 255", st)
			}
			log := fb.Log()
			for _, want := range []string{
				"[error] [output:auditpipe] invalid configuration:\n",
				"\n  DLQ_Dir: required with Output kafka",
				"\n  Webhook_URL: set, but Output is kafka",
				"[error] [go proxy]: plugin 'auditpipe' failed to initialize",
				"[error] [engine] output initialization failed",
			} {
				if !strings.Contains(log, want) {
					t.Errorf("the log lacks %q", want)
				}
			}
			for _, bad := range []string{"SIGSEGV", "panic", "Fluent Bit Dump"} {
				if strings.Contains(log, bad) {
					t.Errorf("the log holds %q: a crash, not a clean exit", bad)
				}
			}
		})
	}
}

// SIGTERM: Fluent Bit flushes what its inputs hold (here a 30 s Flush has
// not come round yet), then calls the plugin's exit callback, which closes
// the outputs and says what the instance did; the process exits 0.
func TestSIGTERMFlushesAndCallsExit(t *testing.T) {
	t.Parallel()
	e := need(t)
	port := fbt.FreePort(t)
	fb := e.start(fbt.Config{Format: fbt.Classic, Load: fbt.PluginsFile, Service: fbt.S("flush", "30", "grace", "5"),
		Inputs: []fbt.Section{httpInput(port)},
		Outputs: []fbt.Section{fbt.S("Name", "auditpipe", "Match", "*", "Output", "file",
			"File_Path", e.path("events.ndjson"), "DLQ_Dir", e.path("dlq"))}})
	fb.WaitCount(startup, `msg="instance started"`, 1)
	want := postSeeds(t, port, "term.")
	if n := len(fileEvents(t, e.path("events.ndjson"))); n != 0 {
		t.Fatalf("%d events before SIGTERM: the 30 s flush came round", n)
	}
	fb.Signal(syscall.SIGTERM)
	if st := fb.Wait(startup); st.ExitCode() != 0 {
		t.Errorf("exit after SIGTERM: %v, want status 0", st)
	}
	var got []string
	for _, ev := range fileEvents(t, e.path("events.ndjson")) {
		got = append(got, ev.ID)
	}
	if got = sorted(got); !slices.Equal(got, want) {
		t.Errorf("events written:\n got %v\nwant %v", got, want)
	}
	// The exit callback ran after the last flush: its line counts every
	// record. (Its place among Fluent Bit's own lines says nothing: those
	// go through Fluent Bit's logger thread, the plugin's straight to
	// stderr.)
	total := 0
	for _, s := range seeds {
		total += len(s.records)
	}
	if wantLine := `msg="instance closed" plugin=auditpipe instance=1 records=` + strconv.Itoa(total) + " events=" + strconv.Itoa(len(want)); !strings.Contains(fb.Log(), wantLine) {
		t.Errorf("the log lacks %q", wantLine)
	}
}

// Hot reload, by SIGHUP and by POST /api/v2/reload, while chunks wait for
// a destination that is down (Fluent Bit issue #9733 lost a Go plugin's
// pending chunks here). Fluent Bit 5.1.1 keeps the old pipeline and its
// plugin instance flushing until every pending chunk is delivered (the
// reload waits for the destination: without Hot_Reload.Timeout, for as
// long as it takes), then calls the old instance's exit and starts the new
// configuration. Nothing is lost or duplicated: the pending events arrive
// once, from the old instance, and what comes after from the new one.
func TestHotReloadKeepsPendingChunks(t *testing.T) {
	for _, v := range []struct {
		name   string
		format fbt.Format
		load   fbt.Load
	}{{"SIGHUP", fbt.Classic, fbt.Flag}, {"POST", fbt.YAML, fbt.PluginsFile}} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			e := need(t)
			sink := webhooktest.NewSink(t)
			down(sink)
			port := fbt.FreePort(t)
			cfg := func(source string) fbt.Config {
				return fbt.Config{Format: v.format, Load: v.load, HTTP: true, Service: retryService("hot_reload", "on"),
					Inputs: []fbt.Section{httpInput(port)}, Outputs: []fbt.Section{webhookOutput(e, sink, "Source_Name", source)}}
			}
			fb := e.start(cfg("before"))
			fb.WaitCount(startup, `msg="instance started"`, 1)
			want := postSeeds(t, port, "a.")
			fb.WaitLog(delivery, "every chunk waiting for a retry", func(log string) bool {
				n := map[string]bool{}
				for _, m := range failedChunk.FindAllStringSubmatch(log, -1) {
					n[m[1]] = true
				}
				return len(n) == len(seeds)
			})

			fb.Rewrite(cfg("after"))
			if v.name == "SIGHUP" {
				fb.Signal(syscall.SIGHUP)
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), startup)
				defer cancel()
				// Fluent Bit answers at once, before the reload is done.
				code, body, err := fb.Reload(ctx)
				if err != nil || code != http.StatusOK || !strings.Contains(body, `"status":0`) {
					t.Fatalf("POST /api/v2/reload: %d %q %v", code, body, err)
				}
			}
			fb.WaitCount(startup, "[engine] service will shutdown when all remaining tasks are flushed", 1)
			// The old pipeline keeps retrying its chunks through the old
			// instance while the reload waits.
			before := len(failedChunk.FindAllString(fb.Log(), -1))
			fb.WaitLog(delivery, "a retry during the reload", func(log string) bool {
				return len(failedChunk.FindAllString(log, -1)) > before
			})
			if strings.Contains(fb.Log(), "[reload] successful reload done") {
				t.Fatal("the reload finished while chunks were pending")
			}
			sink.ClearFaults()
			fb.WaitCount(delivery, "[reload] successful reload done.", 1)
			log := fb.Log()
			closed, restarted := strings.Index(log, `msg="instance closed" plugin=auditpipe instance=1 `), strings.Index(log, `msg="instance started" plugin=auditpipe instance=2 `)
			if closed < 0 || restarted < closed {
				t.Errorf("want the old instance closed (exit callback), then a new one started")
			}

			want = append(want, postSeeds(t, port, "b.")...)
			eventually(t, delivery, "the events from before and after the reload", func() bool { return len(sink.RawEvents()) >= len(want) })
			resp, err := http.Get(fb.HTTPURL() + "/api/v2/reload")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), `"hot_reload_count":1`) {
				t.Errorf("GET /api/v2/reload: %s, want hot_reload_count 1", body)
			}
			fb.Signal(syscall.SIGTERM)
			if st := fb.Wait(startup); st.ExitCode() != 0 {
				t.Errorf("exit after SIGTERM: %v, want status 0", st)
			}

			if got := rawIDs(sink); !slices.Equal(got, sorted(want)) {
				t.Errorf("events accepted (every copy):\n got %v\nwant %v", got, sorted(want))
			}
			bySource := map[string]int{}
			for _, ev := range sink.RawEvents() {
				bySource[ev.Source.Name]++
			}
			if n := len(allIDs()); bySource["before"] != n || bySource["after"] != n {
				t.Errorf("events by source.name %v, want %d before the reload (old instance) and %d after", bySource, n, n)
			}
		})
	}
}

// A hot reload to a configuration the plugin refuses: Fluent Bit 5.1.1
// stops the old pipeline (its instance closes after its last flush), then
// fails to start the new one and exits with status 255; nothing delivered
// before is lost. Users must check a configuration by starting it.
func TestHotReloadToRefusedConfigExits(t *testing.T) {
	t.Parallel()
	e := need(t)
	port := fbt.FreePort(t)
	out := fbt.S("Name", "auditpipe", "Match", "*", "Output", "file", "File_Path", e.path("events.ndjson"), "DLQ_Dir", e.path("dlq"))
	cfg := fbt.Config{Format: fbt.Classic, Load: fbt.Flag, Service: retryService("hot_reload", "on"),
		Inputs: []fbt.Section{httpInput(port)}, Outputs: []fbt.Section{out}}
	fb := e.start(cfg)
	fb.WaitCount(startup, `msg="instance started"`, 1)
	want := postSeeds(t, port, "r.")
	eventually(t, delivery, "every event", func() bool { return len(fileEvents(t, e.path("events.ndjson"))) >= len(want) })

	cfg.Outputs = []fbt.Section{out.With("Kafka_Topic", "audit")}
	fb.Rewrite(cfg)
	fb.Signal(syscall.SIGHUP)
	if st := fb.Wait(startup); st.ExitCode() != 255 {
		t.Errorf("exit %v, want status 255", st)
	}
	for _, want := range []string{
		`msg="instance closed" plugin=auditpipe instance=1 `,
		"\n  Kafka_Topic: set, but Output is file",
		"[reload] loaded configuration contains error(s). Reloading is aborted",
	} {
		if !strings.Contains(fb.Log(), want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	var got []string
	for _, ev := range fileEvents(t, e.path("events.ndjson")) {
		got = append(got, ev.ID)
	}
	if got = sorted(got); !slices.Equal(got, want) {
		t.Errorf("events written:\n got %v\nwant %v", got, want)
	}
}

// Hot_Reload.Timeout: when the reload waits longer for chunks a down
// destination holds, Fluent Bit 5.1.1 aborts the process (SIGABRT). With
// storage.type filesystem the chunks are still on disk, and the next start
// delivers every event, once.
func TestHotReloadTimeoutAborts(t *testing.T) {
	t.Parallel()
	e := need(t)
	sink := webhooktest.NewSink(t)
	down(sink)
	port := fbt.FreePort(t)
	storage := e.path("storage")
	cfg := fbt.Config{Format: fbt.YAML, Load: fbt.PluginsSection,
		Service: retryService("hot_reload", "on", "hot_reload.timeout", "2", "storage.path", storage),
		Inputs:  []fbt.Section{httpInput(port, "storage.type", "filesystem")},
		Outputs: []fbt.Section{webhookOutput(e, sink)}}
	fb := e.start(cfg)
	fb.WaitCount(startup, `msg="instance started"`, 1)
	want := postSeeds(t, port, "t.")
	fb.WaitLog(delivery, "every chunk waiting for a retry", func(log string) bool {
		n := map[string]bool{}
		for _, m := range failedChunk.FindAllStringSubmatch(log, -1) {
			n[m[1]] = true
		}
		return len(n) == len(seeds)
	})
	fb.Signal(syscall.SIGHUP)
	if st := fb.Wait(delivery); !fbt.Killed(st, syscall.SIGABRT) {
		t.Fatalf("fluent-bit ended with %v, want aborted (SIGABRT)", st)
	}
	if !strings.Contains(fb.Log(), "Hot reload timeout exceeded") {
		t.Errorf("the log does not say why it aborted")
	}
	if n := len(chunkFiles(t, storage)); n != len(seeds) {
		t.Fatalf("%d chunks on disk after the abort, want %d", n, len(seeds))
	}

	sink.ClearFaults()
	fb = e.start(cfg)
	eventually(t, delivery, "every event after the restart", func() bool { return len(sink.RawEvents()) >= len(want) })
	fb.Signal(syscall.SIGTERM)
	if st := fb.Wait(startup); st.ExitCode() != 0 {
		t.Errorf("exit after SIGTERM: %v, want status 0", st)
	}
	if got := rawIDs(sink); !slices.Equal(got, want) {
		t.Errorf("events accepted (every copy):\n got %v\nwant %v", got, want)
	}
}
