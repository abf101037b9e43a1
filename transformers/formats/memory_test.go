// Not under the race detector: it changes no heap figure here, and its
// bookkeeping made TestTransformMemory (8 MiB bodies, GOGC=5, the heap
// sampled in a loop) take 8 minutes instead of 37 s. make test runs this
// file without -race; .ci/run also runs it with -tags auditpipe_safejson.
//go:build !race

package formats_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/formats"
)

// memShape is one payload shape of the memory measurements: a body of
// about 8 MiB (the default max_payload_bytes) and the format it goes to.
type memShape struct {
	name, format string
	body         []byte
	header       http.Header
	// refused: the shape breaks a limit, and must be refused whole.
	refused bool
}

// memShapes builds the shapes of TestTransformMemory and
// BenchmarkTransformMemory, each just under size bytes.
func memShapes(tb testing.TB, size int) []memShape {
	tb.Helper()
	pad := func(n int) string { return strings.Repeat("x", max(n, 0)) }

	// NDJSON of yoq entries of about 1 KB, a note padding each (it lands
	// in details).
	var yoq bytes.Buffer
	for i := 0; ; i++ {
		line := fmt.Sprintf(`{"recorded_at":%d,"actor":"api-token","action":"secret_set","target":"key-%d","outcome":"ok","note":"%s"}`+"\n",
			1767312100+i, i, pad(900))
		if yoq.Len()+len(line) > size {
			break
		}
		yoq.WriteString(line)
	}

	// NDJSON of Kubernetes audit events, as the log backend writes them.
	k8sLines, err := os.ReadFile("../../examples/payloads/k8s-audit.log.ndjson")
	if err != nil {
		tb.Fatal(err)
	}
	k8sLine, _, _ := bytes.Cut(bytes.SplitN(k8sLines, []byte("\n"), 3)[1], []byte("\n"))
	var kube bytes.Buffer
	for i := 0; ; i++ {
		line := bytes.Replace(k8sLine, []byte(`"0b6b8a52-3a57-4a0e-8f0e-5a8f1c2d3e4f"`), fmt.Appendf(nil, `"%036d"`, i), 1)
		if kube.Len()+len(line)+1 > size {
			break
		}
		kube.Write(line)
		kube.WriteByte('\n')
	}

	// A JSON array of Spacelift events (compact, as Spacelift sends
	// them), each distinct.
	var sl bytes.Buffer
	seed := compact(tb, "testdata/bench/spacelift.json")
	sl.WriteByte('[')
	for i := 0; ; i++ {
		ev := bytes.Replace(seed, []byte(`"stack.create"`), fmt.Appendf(nil, `"stack.create%d"`, i), 1)
		if sl.Len()+len(ev)+2 > size || i == transformers.DefaultMaxItems {
			break
		}
		if i > 0 {
			sl.WriteByte(',')
		}
		sl.Write(ev)
	}
	sl.WriteByte(']')

	// A CloudEvents batch of Teabar events.
	var ce bytes.Buffer
	ceSeed := compact(tb, "testdata/bench/app.cloudevents.json")
	ce.WriteByte('[')
	for i := 0; ; i++ {
		ev := bytes.Replace(ceSeed, []byte(`"id":"evt_abc123"`), fmt.Appendf(nil, `"id":"evt_%d","note":"%s"`, i, pad(400)), 1)
		if ce.Len()+len(ev)+2 > size || i == transformers.DefaultMaxItems {
			break
		}
		if i > 0 {
			ce.WriteByte(',')
		}
		ce.Write(ev)
	}
	ce.WriteByte(']')

	// One Teabar event with as many members as max_members allows, every
	// one of them unmapped (they go to details).
	teabar := `{"id":"evt_1","timestamp":"2024-03-10T14:30:00Z","action":"member.invited","actor":{"type":"user","id":"u"}`
	var wide bytes.Buffer
	wide.WriteString(teabar)
	n := transformers.DefaultMaxMembers - 4
	for i := range n {
		fmt.Fprintf(&wide, `,"k%06d":"%s"`, i, pad((size-len(teabar))/n-16))
	}
	wide.WriteByte('}')

	// The fault review's object: 600,000 members.
	var huge bytes.Buffer
	huge.WriteString(teabar)
	for i := range 600000 {
		fmt.Fprintf(&huge, `,"%06d":%d`, i, i%10)
	}
	huge.WriteByte('}')

	// Nesting as deep as the payload allows, of arrays and of objects.
	// Arrays of single digits, each within max_members, nested one
	// level: two bytes a value, about fifty times the body in tree
	// before limits.max_values.
	var dense bytes.Buffer
	inner := "[" + strings.Repeat("1,", 4999) + "1]"
	dense.WriteString(`{"x":[` + inner)
	for dense.Len()+len(inner)+3 < size {
		dense.WriteString("," + inner)
	}
	dense.WriteString("]}")
	deepArrays := []byte(strings.Repeat("[", size/2) + strings.Repeat("]", size/2))
	deepObjects := []byte(strings.Repeat(`{"a":`, size/6) + "1" + strings.Repeat("}", size/6))

	h := http.Header{}
	h.Set("Content-Type", "application/cloudevents-batch+json")
	return []memShape{
		{name: "ndjson-yoq", format: "app", body: yoq.Bytes()},
		{name: "ndjson-k8s", format: "k8s", body: kube.Bytes()},
		{name: "ndjson-auto", format: "auto", body: yoq.Bytes()},
		{name: "spacelift-array", format: "spacelift", body: sl.Bytes()},
		{name: "cloudevents-batch", format: "app", body: ce.Bytes(), header: h},
		{name: "wide-object", format: "app", body: wide.Bytes()},
		{name: "600k-members", format: "app", body: huge.Bytes(), refused: true},
		{name: "dense-arrays", format: "app", body: dense.Bytes(), refused: true},
		{name: "deep-arrays", format: "app", body: deepArrays, refused: true},
		{name: "deep-objects", format: "app", body: deepObjects, refused: true},
	}
}

func compact(tb testing.TB, file string) []byte {
	tb.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		tb.Fatal(err)
	}
	return out.Bytes()
}

// memUse is what one transform cost in memory.
type memUse struct {
	// alloc is the bytes allocated, garbage included.
	alloc uint64
	// peak is the most heap in use at any sample, above what was in use
	// before: with a low GOGC, about the live heap.
	peak uint64
	// events, errors and err are the outcome.
	events, errors int
	err            error
}

// measure runs one transform while another goroutine samples the heap in
// use. With gcPercent low the collector runs often, so the heap in use
// stays close to what is live: the peak is then the live-heap peak the
// goal is about, give or take what a sample misses.
func measure(tr transformers.Transformer, in transformers.Input, gcPercent int) memUse {
	defer debug.SetGCPercent(debug.SetGCPercent(gcPercent))
	runtime.GC()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	stop, peakc := make(chan struct{}), make(chan uint64)
	go func() {
		var m runtime.MemStats
		var peak uint64
		for {
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
			select {
			case <-stop:
				peakc <- peak
				return
			default:
			}
		}
	}()
	res, err := transformers.Run(context.Background(), tr, in)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	close(stop)
	peak := max(<-peakc, after.HeapInuse)
	runtime.KeepAlive(res)
	u := memUse{alloc: after.TotalAlloc - before.TotalAlloc, events: len(res.Events), errors: len(res.Errors), err: err}
	if peak > before.HeapInuse {
		u.peak = peak - before.HeapInuse
	}
	return u
}

// TestTransformMemory holds a transform of an 8 MiB body of each shape to
// a live-heap peak proportional to the body: at most three times its size,
// events included. A shape that breaks a limit must be refused for about
// the cost of reading its bytes. With -v it prints the figures;
// BenchmarkTransformMemory reports them with the heap at the default GOGC
// too.
func TestTransformMemory(t *testing.T) {
	reg, err := formats.NewRegistry(formats.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range memShapes(t, transformers.DefaultMaxPayloadBytes) {
		t.Run(s.name, func(t *testing.T) {
			tr, err := reg.Get(s.format)
			if err != nil {
				t.Fatal(err)
			}
			in := transformers.Input{Body: s.body, Meta: transformers.Meta{SourceName: "mem", ReceivedAt: time.Now(), Headers: s.header}}
			u := measure(tr, in, 5)
			size := float64(len(s.body))
			t.Logf("%-18s %5.2f MiB: live peak %5.2fx, allocated %5.2fx; %d events, %d errors, err %.80v",
				s.name, size/(1<<20), float64(u.peak)/size, float64(u.alloc)/size, u.events, u.errors, u.err)
			switch {
			case s.refused && u.err == nil:
				t.Errorf("accepted, want refused")
			case s.refused && float64(u.alloc) > size/8:
				t.Errorf("refusing it allocated %.2fx the body, want next to nothing", float64(u.alloc)/size)
			case !s.refused && (u.err != nil || u.errors > 0 || u.events == 0):
				t.Errorf("%d events, %d errors, err %v: want events only", u.events, u.errors, u.err)
			case float64(u.peak) > maxLivePeak*size:
				t.Errorf("live heap peaked at %.2fx the body, want at most %gx", float64(u.peak)/size, maxLivePeak)
			}
		})
	}
}

// BenchmarkTransformMemory reports, per shape, what one transform of an
// 8 MiB body costs in memory, as multiples of the body: live-x, the
// live-heap peak (sampled with GOGC=5); inuse-x, the heap in use at its
// peak with the default GOGC=100, garbage included, as a process sees it;
// alloc-x, the bytes allocated. Not timing: run it with -benchtime 1x.
func BenchmarkTransformMemory(b *testing.B) {
	reg, err := formats.NewRegistry(formats.Config{})
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range memShapes(b, transformers.DefaultMaxPayloadBytes) {
		tr, err := reg.Get(s.format)
		if err != nil {
			b.Fatal(err)
		}
		in := transformers.Input{Body: s.body, Meta: transformers.Meta{SourceName: "mem", ReceivedAt: time.Now(), Headers: s.header}}
		b.Run(s.name, func(b *testing.B) {
			var live, inuse memUse
			for b.Loop() {
				live, inuse = measure(tr, in, 5), measure(tr, in, 100)
			}
			size := float64(len(s.body))
			b.ReportMetric(float64(live.peak)/size, "live-x")
			b.ReportMetric(float64(inuse.peak)/size, "inuse-x")
			b.ReportMetric(float64(live.alloc)/size, "alloc-x")
		})
	}
}
