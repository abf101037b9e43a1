package formats_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/formats"
	"github.com/valyala/fastjson"
)

// benchCases are the payloads of BenchmarkTransform, one per format, from
// the seeds: testdata/bench/<format>[.<variant>].json.
func benchCases(b *testing.B) map[string][]byte {
	files, err := filepath.Glob("testdata/bench/*.json")
	if err != nil || len(files) == 0 {
		b.Fatalf("no bench payloads: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = body
	}
	return out
}

// BenchmarkTransform measures a whole transform (decode, limits, mapping,
// redaction, canonical id, raw hash, validation) per payload. events/s is
// per core: run with -cpu 1 for the single-core figure.
func BenchmarkTransform(b *testing.B) {
	reg, err := formats.NewRegistry(formats.Config{})
	if err != nil {
		b.Fatal(err)
	}
	for name, body := range benchCases(b) {
		format, _, _ := strings.Cut(name, ".")
		tr, err := reg.Get(format)
		if err != nil {
			b.Fatal(err)
		}
		in := transformers.Input{Body: body, Meta: transformers.Meta{SourceName: "bench", ReceivedAt: time.Now()}}
		res, err := transformers.Run(context.Background(), tr, in)
		if err != nil || len(res.Errors) > 0 || len(res.Events) == 0 {
			b.Fatalf("%s: bench payload does not transform cleanly: %v %v", name, err, res.Errors)
		}
		events := len(res.Events)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := transformers.Run(context.Background(), tr, in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkDecode is the baseline: the same bytes through the JSON decoder
// the transformers use and nothing else. "fastjson" is the bare parser
// (reused, as the transformers reuse theirs); "strict" adds what makes it a
// conforming, bounded decoder (UTF-8 check, the prescan's grammar and
// limits) and is what every transform starts with.
func BenchmarkDecode(b *testing.B) {
	for name, body := range benchCases(b) {
		b.Run(name+"/fastjson", func(b *testing.B) {
			var p fastjson.Parser
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.ParseBytes(body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/strict", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				doc, err := transformers.Decode(transformers.Input{Body: body}, transformers.Limits{}, "bench")
				if err != nil {
					b.Fatal(err)
				}
				doc.Close()
			}
		})
	}
}
