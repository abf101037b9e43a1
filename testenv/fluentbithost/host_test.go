package fluentbithost_test

import (
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/testenv/fluentbithost"
)

// The host is tested on its own with a minimal plugin built on
// fluent-bit-go's decoder, so that a failure of the auditpipe tests points
// at the plugin, not at the host.
func TestHostWithEchoPlugin(t *testing.T) {
	bin := needHost(t)
	if echoErr != nil {
		fluentbithost.SkipOrFail(t, echoErr)
	}
	h := fluentbithost.Start(t, bin, echoSO,
		fluentbithost.Instance{Name: "a", Props: map[string]string{"Id": "first", "mixed_key": "yes"}},
		fluentbithost.Instance{Name: "b", Props: map[string]string{"id": "second", "Return": "2"}},
		fluentbithost.Instance{Name: "c", Props: map[string]string{"fail_init": "1"}},
	)
	if reg := h.Registration(); reg.Code != 0 || reg.Type != 2 || reg.Proxy != 11 || reg.Name != "echo" {
		t.Fatalf("registration %+v", reg)
	}
	for name, want := range map[string]int{"a": fluentbithost.FLBOK, "b": fluentbithost.FLBOK, "c": fluentbithost.FLBError} {
		if got := h.InitCode(name); got != want {
			t.Errorf("init %s = %d, want %d", name, got, want)
		}
	}
	ts := time.Date(2025, 6, 12, 9, 15, 2, 417583291, time.UTC)
	body := fluentbithost.MustJSON([]byte(`{"a":1,"b":"x","c":[1.5,true,null]}`))
	rec := fluentbithost.Record{Time: ts, Body: body}
	for _, shape := range []fluentbithost.Shape{fluentbithost.Classic, fluentbithost.V2} {
		for _, enc := range []fluentbithost.TimeEncoding{fluentbithost.EventTime, fluentbithost.IntTime} {
			chunk := fluentbithost.Chunk(shape, enc, rec, rec, rec)
			code, err := h.Flush("a", "echo.tag", chunk)
			if err != nil || code != fluentbithost.FLBOK {
				t.Fatalf("%v/%v: flush = %d, %v", shape, enc, code, err)
			}
		}
	}
	if code, err := h.Flush("b", "t", fluentbithost.Chunk(fluentbithost.Classic, fluentbithost.EventTime, rec)); err != nil || code != fluentbithost.FLBRetry {
		t.Fatalf("instance b flush = %d, %v; want its configured 2", code, err)
	}
	if _, err := h.Flush("c", "t", nil); err == nil {
		t.Fatal("flushing an instance whose init failed must be refused")
	}
	chunks := make([][]byte, 8)
	for i := range chunks {
		chunks[i] = fluentbithost.Chunk(fluentbithost.V2, fluentbithost.EventTime, rec, rec)
	}
	codes, err := h.FlushConcurrent("a", "mt", chunks...)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range codes {
		if c != fluentbithost.FLBOK {
			t.Errorf("concurrent flush %d = %d", i, c)
		}
	}
	exit, err := h.Close()
	if err != nil {
		t.Fatal(err)
	}
	if exit["a"] != fluentbithost.FLBOK || exit["b"] != fluentbithost.FLBOK || len(exit) != 2 {
		t.Errorf("exit codes %v, want a=1 b=1 and nothing for the failed c", exit)
	}
	for _, want := range []string{
		"echo init id=first mixed=yes", // case-insensitive keys
		"echo flush id=first tag=echo.tag records=3",
		"echo flush id=first tag=mt records=2",
		"echo exit id=first total=28", // 4 shapes x 3 + 8 x 2
		"echo exit id=second total=1",
	} {
		if log, ok := h.WaitStderr(10*time.Second, func(s string) bool { return strings.Contains(s, want) }); !ok {
			t.Errorf("plugin log lacks %q:\n%s", want, log)
		}
	}
}
