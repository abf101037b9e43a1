package external_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/examples/transformer-plugin/githubaudit"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/external"
)

var receivedAt = time.Date(2026, 11, 21, 9, 30, 0, 0, time.UTC)

// examplePlugin and testPlugin are the plugins the tests drive.
func examplePlugin(t testing.TB) string { p, _ := external.Plugins(t); return p }
func testPlugin(t testing.TB) string    { _, p := external.Plugins(t); return p }

func input(body string) transformers.Input {
	return transformers.Input{Body: []byte(body), Meta: transformers.Meta{SourceName: "src", ReceivedAt: receivedAt}}
}

func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "transformer-plugin", "githubaudit", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// inProcess is what the example's function makes of body in this process,
// finished as the SDK finishes it: what the host must return.
func inProcess(t *testing.T, body []byte) ([]auditpipe.Event, error) {
	t.Helper()
	gh, err := githubaudit.New()
	if err != nil {
		t.Fatal(err)
	}
	in := external.Payload{Body: body, SourceName: "src", ReceivedAt: receivedAt}
	events, err := gh.Transform(context.Background(), in)
	for i := range events {
		external.Finish(&events[i], in)
	}
	return events, err
}

func eventsJSON(evs []auditpipe.Event) string {
	var b []byte
	for i := range evs {
		b = eventjson.Append(b, &evs[i])
		b = append(b, '\n')
	}
	return string(b)
}

// TestHappyPathBatch sends the example's sample payloads in one batch to
// the example plugin: every payload's events are what the function makes
// in-process, per-item errors arrive as *transformers.Error with their
// kinds, and a payload that is not JSON fails alone.
func TestHappyPathBatch(t *testing.T) {
	tr := newHost(t, external.Config{Path: examplePlugin(t)}, nil)
	names := []string{"repo_create.json", "audit_log_page.json", "stream.ndjson", "not_json.txt"}
	var ins []transformers.Input
	for _, n := range names {
		ins = append(ins, input(string(sample(t, n))))
	}
	res, err := tr.TransformBatch(context.Background(), ins)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(names) {
		t.Fatalf("%d results for %d payloads", len(res), len(names))
	}
	for i, n := range names {
		want, wantErr := inProcess(t, sample(t, n))
		r := res[i]
		if r.Format != external.Format {
			t.Errorf("%s: format %q", n, r.Format)
		}
		if got, w := eventsJSON(r.Events), eventsJSON(want); got != w {
			t.Errorf("%s: events through the plugin differ from in-process:\ngot:\n%s\nwant:\n%s", n, got, w)
		}
		var wantErrs []string
		for _, e := range external.Flatten(wantErr) {
			wantErrs = append(wantErrs, e.Error())
		}
		var gotErrs []string
		for _, e := range r.Errors {
			gotErrs = append(gotErrs, e.Error())
		}
		if strings.Join(gotErrs, "\n") != strings.Join(wantErrs, "\n") {
			t.Errorf("%s: errors\n%s\nwant\n%s", n, strings.Join(gotErrs, "\n"), strings.Join(wantErrs, "\n"))
		}
	}
	if n := len(res[0].Events) + len(res[1].Events) + len(res[2].Events); n != 9 {
		t.Errorf("%d events, want 9", n)
	}
	for _, e := range res[2].Errors {
		if e.Item < 0 || e.Line == 0 {
			t.Errorf("NDJSON line error %v: item %d line %d", e, e.Item, e.Line)
		}
	}
	if e := res[3].Errors; len(e) != 1 || e[0].Item != -1 || !errors.Is(e[0], transformers.ErrSyntax) {
		t.Errorf("not JSON: errors %v, want one payload-level ErrSyntax", e)
	}
	if ev := res[0].Events[0]; ev.Source.Name != "src" || !ev.ObservedTime.Equal(receivedAt) {
		t.Errorf("source.name %q observed_time %v: the front door's meta did not reach the event", ev.Source.Name, ev.ObservedTime)
	}
}

// TestTransform is the single-payload transformers.Transformer view: a
// payload failing as a whole is the returned *transformers.Error.
func TestTransform(t *testing.T) {
	var tr transformers.Transformer = newHost(t, external.Config{Path: examplePlugin(t)}, nil)
	res, err := transformers.Run(context.Background(), tr, input(string(sample(t, "repo_create.json"))))
	if err != nil || len(res.Events) != 1 || res.Events[0].ID != "Xy9pLq2bS0aT1uV3wZ4cDe" {
		t.Fatalf("Transform = %d events, %v", len(res.Events), err)
	}
	_, err = transformers.Run(context.Background(), tr, input("<html>502</html>"))
	var te *transformers.Error
	if !errors.As(err, &te) || !errors.Is(err, transformers.ErrSyntax) || te.Item != -1 || te.Format != githubaudit.Format {
		t.Fatalf("Transform(not JSON) error = %v, want a payload-level ErrSyntax of format %s", err, githubaudit.Format)
	}
	if errors.Is(err, external.ErrUnavailable) {
		t.Errorf("a bad payload is not the plugin being unavailable: %v", err)
	}
}

// TestDecodedInput: payloads the front door already decoded (Fluent Bit
// records) reach the plugin as JSON.
func TestDecodedInput(t *testing.T) {
	tr := newHost(t, external.Config{Path: examplePlugin(t)}, nil)
	in := transformers.Input{
		Value: map[string]any{
			"@timestamp": int64(1732185600123), "_document_id": "doc-1", "action": "repo.create",
			"actor": "octocat", "repo": "octo-org/hello-world",
		},
		Meta: transformers.Meta{SourceName: "fluent-bit"},
	}
	res, err := transformers.Run(context.Background(), tr, in)
	if err != nil || len(res.Events) != 1 {
		t.Fatalf("Transform = %+v, %v", res, err)
	}
	if ev := res.Events[0]; ev.ID != "doc-1" || ev.Resource.Name != "octo-org/hello-world" || ev.ObservedTime.IsZero() {
		t.Errorf("event %s", eventjson.Append(nil, &ev))
	}
}

// TestArgsEnvHeaders: args and env from the config, and the request
// headers, reach the plugin.
func TestArgsEnvHeaders(t *testing.T) {
	tr := newHost(t, external.Config{Path: testPlugin(t), Args: []string{"custom."}, Env: map[string]string{"TESTPLUGIN_SOURCE_TYPE": "custom"}}, nil)
	in := input("a")
	in.Meta.Headers = http.Header{"Content-Type": {"text/plain"}}
	res, err := transformers.Run(context.Background(), tr, in)
	if err != nil || len(res.Events) != 1 {
		t.Fatalf("Transform = %+v, %v", res, err)
	}
	ev := res.Events[0]
	if ev.Source.Type != "custom" || ev.Action != "custom.echo" || ev.Labels["content_type"] != "text/plain" {
		t.Errorf("event %s: env, args or headers missing", eventjson.Append(nil, &ev))
	}
}

// TestItemFailures: invalid events, panics, per-item and whole-payload
// errors each fail only what they concern, and the plugin keeps running.
func TestItemFailures(t *testing.T) {
	rec := newRecorder()
	tr := newHost(t, external.Config{Path: testPlugin(t)}, rec)
	pid := tr.PID()
	tests := []struct {
		body   string
		events int
		kinds  []error
		items  []int
	}{
		{body: "a\nb", events: 2},
		{body: "a\ninvalid\nb", events: 2, kinds: []error{transformers.ErrInvalidEvent}, items: []int{1}},
		{body: "a\npanic\nb", kinds: []error{external.ErrPanic}, items: []int{-1}},
		{body: "a\nitemerr\nb", events: 2, kinds: []error{transformers.ErrMissing}, items: []int{1}},
		{body: "a\nfail", kinds: []error{transformers.ErrValue}, items: []int{-1}},
		{body: "c", events: 1},
	}
	ins := make([]transformers.Input, len(tests))
	for i, tt := range tests {
		ins[i] = input(tt.body)
	}
	res, err := tr.TransformBatch(context.Background(), ins)
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		r := res[i]
		if len(r.Events) != tt.events || len(r.Errors) != len(tt.kinds) {
			t.Errorf("%q: %d events, %d errors (%v); want %d, %d", tt.body, len(r.Events), len(r.Errors), r.Errors, tt.events, len(tt.kinds))
			continue
		}
		for j, e := range r.Errors {
			if !errors.Is(e, tt.kinds[j]) || e.Item != tt.items[j] {
				t.Errorf("%q: error %v (item %d), want kind %v item %d", tt.body, e, e.Item, tt.kinds[j], tt.items[j])
			}
		}
	}
	if e := res[1].Errors[0]; !strings.Contains(e.Detail, "actor.type") {
		t.Errorf("invalid event's error %q does not carry the validation message", e)
	}
	if e := res[2].Errors[0]; !errors.Is(e, transformers.ErrValue) || !strings.Contains(e.Detail, "told to panic") {
		t.Errorf("panic error %q: want ErrValue too, and the panic value", e)
	}
	rec.waitFor(t, "transform function panicked")
	// The single-payload view returns a panic as the payload's error.
	if _, err := transformers.Run(context.Background(), tr, input("panic")); !errors.Is(err, external.ErrPanic) {
		t.Errorf("Transform(panic) = %v, want external.ErrPanic", err)
	}
	if got := tr.PID(); got != pid {
		t.Errorf("plugin restarted (pid %d -> %d) after item failures", pid, got)
	}
}

// TestCrashMidBatch kills the plugin while it is mapping a batch: the call
// fails with external.ErrUnavailable and returns nothing, the plugin is restarted,
// and retrying the same batch returns every event.
func TestCrashMidBatch(t *testing.T) {
	rec := newRecorder()
	marker := filepath.Join(t.TempDir(), "blocked")
	tr := newHost(t, external.Config{Path: testPlugin(t), Timeout: time.Minute, Env: map[string]string{"TESTPLUGIN_BLOCK_ONCE": marker}}, rec)
	ins := []transformers.Input{input("a\nb"), input("c\nblock-once\nd"), input("e")}
	pid := tr.PID()

	type answer struct {
		res []transformers.Result
		err error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := tr.TransformBatch(context.Background(), ins)
		done <- answer{res, err}
	}()
	rec.waitFor(t, "blocking") // the plugin is inside the batch
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a := <-done
	if !errors.Is(a.err, external.ErrUnavailable) || a.res != nil {
		t.Fatalf("TransformBatch during a crash = %v, %v; want nil and external.ErrUnavailable", a.res, a.err)
	}

	// The caller retries: the call waits for the restart.
	res, err := tr.TransformBatch(context.Background(), ins)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	var ids []string
	for _, r := range res {
		if len(r.Errors) > 0 {
			t.Errorf("retry: errors %v", r.Errors)
		}
		for _, ev := range r.Events {
			ids = append(ids, ev.ID)
		}
	}
	if got := strings.Join(ids, ","); got != "a,b,c,block-once,d,e" {
		t.Errorf("retry: events %s, want a,b,c,block-once,d,e", got)
	}
	if np := tr.PID(); np == pid || np == 0 {
		t.Errorf("pid %d after restart, was %d", np, pid)
	}
	rec.waitFor(t, "external transformer restarted")
	eventually(t, "the killed plugin is reaped", func() bool { return gone(pid) })
}

// TestPluginExits: a plugin that exits by itself between calls is
// restarted, and the next call waits for it rather than failing.
func TestPluginExits(t *testing.T) {
	rec := newRecorder()
	tr := newHost(t, external.Config{Path: testPlugin(t)}, rec)
	pid := tr.PID()
	if _, err := transformers.Run(context.Background(), tr, input("exit")); !errors.Is(err, external.ErrUnavailable) {
		t.Fatalf("Transform(exit) = %v, want external.ErrUnavailable", err)
	}
	rec.waitFor(t, "external transformer restarted")
	res, err := transformers.Run(context.Background(), tr, input("a"))
	if err != nil || len(res.Events) != 1 {
		t.Fatalf("after restart: %+v, %v", res, err)
	}
	if tr.PID() == pid {
		t.Error("same pid after the plugin exited")
	}
	// Killed while idle: the next call notices the exit and waits for the
	// restart instead of failing.
	pid = tr.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "go-plugin notices the exit", tr.Exited)
	if res, err := transformers.Run(context.Background(), tr, input("b")); err != nil || len(res.Events) != 1 {
		t.Fatalf("first call after an idle crash: %+v, %v", res, err)
	}
}

// TestHang: a plugin that does not answer hits the per-call timeout, the
// call fails with external.ErrUnavailable, and the hung process is killed.
func TestHang(t *testing.T) {
	tr := newHost(t, external.Config{Path: testPlugin(t), Timeout: 500 * time.Millisecond, Env: map[string]string{"TESTPLUGIN_MODE": "hang"}}, nil)
	pid := tr.PID()
	res, err := tr.TransformBatch(context.Background(), []transformers.Input{input("a"), input("b")})
	if !errors.Is(err, external.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || res != nil {
		t.Fatalf("TransformBatch = %v, %v; want nil and external.ErrUnavailable (deadline exceeded)", res, err)
	}
	if !strings.Contains(err.Error(), "timeout") {
		t.Errorf("error %q does not say it timed out", err)
	}
	eventually(t, "the hung plugin is killed", func() bool { return gone(pid) })
}

// TestCallerCancels: the caller giving up is not the plugin's fault: the
// call fails with external.ErrUnavailable and the caller's cause, and the plugin
// keeps running.
func TestCallerCancels(t *testing.T) {
	tr := newHost(t, external.Config{Path: testPlugin(t)}, nil)
	pid := tr.PID()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := transformers.Run(ctx, tr, input("a")); !errors.Is(err, external.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Transform(cancelled) = %v", err)
	}
	if res, err := transformers.Run(context.Background(), tr, input("a")); err != nil || len(res.Events) != 1 || tr.PID() != pid {
		t.Fatalf("after a cancelled call: %+v, %v, pid %d (was %d)", res, err, tr.PID(), pid)
	}
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestChecksum: a pinned checksum that matches starts the plugin; one that
// does not refuses to, naming checksum and both sums.
func TestChecksum(t *testing.T) {
	sum := fileSHA256(t, examplePlugin(t))
	tr := newHost(t, external.Config{Path: examplePlugin(t), Checksum: strings.ToUpper(sum)}, nil)
	if res, err := transformers.Run(context.Background(), tr, input(string(sample(t, "repo_create.json")))); err != nil || len(res.Events) != 1 {
		t.Fatalf("with the right checksum: %+v, %v", res, err)
	}

	wrong := strings.Repeat("ab", 32)
	_, err := external.New(context.Background(), external.Config{Path: examplePlugin(t), Checksum: wrong}, nil)
	if err == nil {
		t.Fatal("started with a wrong checksum")
	}
	for _, s := range []string{"checksum:", sum, wrong, "refusing"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

// TestStartErrors: what cannot start is reported by New, naming the key.
func TestStartErrors(t *testing.T) {
	notPlugin := filepath.Join(t.TempDir(), "true")
	if err := os.WriteFile(notPlugin, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  external.Config
		want string
	}{
		{"missing", external.Config{Path: filepath.Join(t.TempDir(), "nope")}, "path:"},
		{"directory", external.Config{Path: t.TempDir()}, "path:"},
		{"not a plugin", external.Config{Path: notPlugin, Timeout: 5 * time.Second}, "start"},
		{"bad config", external.Config{}, "path: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := external.New(context.Background(), tt.cfg, nil)
			if err == nil {
				_ = tr.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// TestStartedByHand: run without the handshake cookie, the plugin says
// what it is on stderr, writes nothing on stdout and exits non-zero.
func TestStartedByHand(t *testing.T) {
	cmd := exec.Command(examplePlugin(t))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("exit: %v, want a non-zero status", err)
	}
	if !strings.Contains(stderr.String(), "this is an auditpipe transformer plugin; it is started by auditpipe, not by hand") {
		t.Errorf("stderr %q", stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout %q, want nothing", stdout.String())
	}
}

// TestClose: Close kills the plugin (the pid is gone from the process
// table when it returns), leaves no goroutine behind, and later calls
// fail with external.ErrUnavailable and external.ErrClosed.
func TestClose(t *testing.T) {
	base := runtime.NumGoroutine()
	tr, err := external.New(context.Background(), external.Config{Path: testPlugin(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := tr.PID()
	if _, err := transformers.Run(context.Background(), tr, input("a\nstdout")); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if !gone(pid) {
		t.Errorf("plugin pid %d still exists after Close", pid)
	}
	_, err = transformers.Run(context.Background(), tr, input("a"))
	if !errors.Is(err, external.ErrUnavailable) || !errors.Is(err, external.ErrClosed) {
		t.Errorf("Transform after Close = %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	eventually(t, "goroutines return to their baseline", func() bool { return runtime.NumGoroutine() <= base })
}

// TestCloseDuringHang: Close does not wait for a hung call; the call fails
// with external.ErrUnavailable and the process is gone.
func TestCloseDuringHang(t *testing.T) {
	tr, err := external.New(context.Background(), external.Config{Path: testPlugin(t), Timeout: time.Hour, Env: map[string]string{"TESTPLUGIN_MODE": "hang"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := tr.PID()
	done := make(chan error, 1)
	go func() {
		_, err := transformers.Run(context.Background(), tr, input("a"))
		done <- err
	}()
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, external.ErrUnavailable) {
		t.Errorf("hung call after Close = %v", err)
	}
	if !gone(pid) {
		t.Errorf("plugin pid %d still exists after Close", pid)
	}
}

// TestPing is the readiness check.
func TestPing(t *testing.T) {
	tr := newHost(t, external.Config{Path: testPlugin(t)}, nil)
	if err := tr.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = tr.Close()
	if err := tr.Ping(context.Background()); !errors.Is(err, external.ErrUnavailable) {
		t.Errorf("Ping after Close = %v", err)
	}
}

// TestMaxBatch: a batch longer than max_batch is split into several calls
// and the results keep the inputs' order.
func TestMaxBatch(t *testing.T) {
	tr := newHost(t, external.Config{Path: testPlugin(t), MaxBatch: 2}, nil)
	var ins []transformers.Input
	for _, s := range []string{"a", "b", "c", "d", "e"} {
		ins = append(ins, input(s))
	}
	res, err := tr.TransformBatch(context.Background(), ins)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range res {
		for _, ev := range r.Events {
			ids = append(ids, ev.ID)
		}
	}
	if got := strings.Join(ids, ""); got != "abcde" {
		t.Errorf("events %s, want abcde", got)
	}
}

// TestConcurrentCalls: the transformer is safe for concurrent use (run
// with -race).
func TestConcurrentCalls(t *testing.T) {
	tr := newHost(t, external.Config{Path: testPlugin(t)}, nil)
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			var err error
			for j := 0; j < 20 && err == nil; j++ {
				var res transformers.Result
				res, err = transformers.Run(context.Background(), tr, input(strings.Repeat("x", i+1)))
				if err == nil && (len(res.Events) != 1 || res.Events[0].ID != strings.Repeat("x", i+1)) {
					err = errors.New("wrong event")
				}
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
