package outputstest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"slices"
	"testing"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/integrity"
)

// Sealed returns Events(n) cut into batches of size batch and sealed, in
// that order, as one chain named stream (batch signing: the last event of
// every batch is signed), with the public key that verifies them. The key
// is fixed, so failures reproduce.
func Sealed(t testing.TB, stream string, n, batch int) ([][]auditpipe.Event, ed25519.PublicKey) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x5e}, ed25519.SeedSize))
	s, err := integrity.NewSealer(integrity.SealerConfig{Stream: stream, Key: priv})
	if err != nil {
		t.Fatal(err)
	}
	evs := Events(n)
	var (
		st      integrity.State
		batches [][]auditpipe.Event
	)
	for b := range slices.Chunk(evs, batch) {
		if st, err = s.Seal(st, b); err != nil {
			t.Fatal(err)
		}
		batches = append(batches, b)
	}
	return batches, priv.Public().(ed25519.PublicKey)
}

// ReadBacker is an output that can read back what it delivered.
type ReadBacker interface {
	ReadBack(ctx context.Context, fn func(source string, r io.Reader) error) error
}

// VerifyReadBack reads back everything rb holds and feeds it, unit by
// unit, to a verifier trusting pub, as `auditpipe verify --output` does.
// It returns the report and the sources in the order ReadBack gave them.
func VerifyReadBack(t testing.TB, ctx context.Context, rb ReadBacker, pub ed25519.PublicKey) (*integrity.Report, []string) {
	t.Helper()
	v, err := integrity.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	var sources []string
	err = rb.ReadBack(ctx, func(source string, r io.Reader) error {
		sources = append(sources, source)
		return v.ReadNDJSON(r, source)
	})
	if err != nil {
		t.Fatalf("ReadBack: %v", err)
	}
	return v.Report(), sources
}
