package formats_test

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/formats"
)

// BenchmarkInstructionCount is the workload of `make icount`, run once
// (-test.benchtime 1x): it transforms ICOUNT_FILE ICOUNT_N times with
// ICOUNT_FORMAT ("decode": the strict decode alone), so that an
// instruction counter (callgrind) can tell a change's cost without the
// machine's timing noise. It is a benchmark, not a test, so that `go test`
// never runs it; asked for without the variables, it fails.
func BenchmarkInstructionCount(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv("ICOUNT_N"))
	file, format := os.Getenv("ICOUNT_FILE"), os.Getenv("ICOUNT_FORMAT")
	if n == 0 || file == "" || format == "" {
		b.Fatal("instruction-count workload: set ICOUNT_N, ICOUNT_FILE and ICOUNT_FORMAT (make icount)")
	}
	body, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	if format == "decode" {
		// The strict decode alone, the transforms' baseline.
		for range n {
			doc, err := transformers.Decode(transformers.Input{Body: body}, transformers.Limits{}, "decode")
			if err != nil {
				b.Fatal(err)
			}
			doc.Close()
		}
		return
	}
	reg, err := formats.NewRegistry(formats.Config{})
	if err != nil {
		b.Fatal(err)
	}
	tr, err := reg.Get(format)
	if err != nil {
		b.Fatal(err)
	}
	for range n {
		if _, err := transformers.Run(context.Background(), tr, transformers.Input{Body: body}); err != nil {
			b.Fatal(err)
		}
	}
}
