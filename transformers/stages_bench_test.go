package transformers

import (
	"os"
	"testing"

	"github.com/auditpipe/auditpipe"
)

// BenchmarkStages splits a Spacelift transform into its costs, to see
// where a change helps.
func BenchmarkStages(b *testing.B) {
	body, err := os.ReadFile("spacelift/testdata/seed_stack_create.json")
	if err != nil {
		b.Fatal(err)
	}
	red, _ := NewRedactor(RedactConfig{})
	b.Run("decode+check", func(b *testing.B) {
		for b.Loop() {
			d, err := Decode(Input{Body: body}, Limits{}, "x")
			if err != nil {
				b.Fatal(err)
			}
			d.Close()
		}
	})
	d, _ := Decode(Input{Body: body}, Limits{}, "x")
	root := d.Roots[0].Node
	b.Run("details", func(b *testing.B) {
		for b.Loop() {
			var det Details
			det.Value("context", root.Get("context"))
			det.Value("data", root.Get("data"))
			if _, err := det.Build(red); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("canonical-id", func(b *testing.B) {
		for b.Loop() {
			if _, err := CanonicalID(root); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("canonical-noredact", func(b *testing.B) {
		buf := make([]byte, 0, 4096)
		for b.Loop() {
			AppendCanonical(buf[:0], root, nil)
		}
	})
	b.Run("raw-sha256", func(b *testing.B) {
		for b.Loop() {
			auditpipe.RawSHA256(body)
		}
	})
}
