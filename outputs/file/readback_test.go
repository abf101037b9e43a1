package file_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/integrity"
	"github.com/auditpipe/auditpipe/outputs/file"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
)

// writeSealed writes n sealed events in batches of 5 through a rotating
// file output and returns it, its path, the events and the public key
// that verifies them.
func writeSealed(t *testing.T, n int) (*file.Output, string, []auditpipe.Event, ed25519.PublicKey) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.ndjson")
	batches, pub := outputstest.Sealed(t, "file/test", n, 5)
	ev0 := batches[0][0]
	one := int64(len(eventjson.Append(nil, &ev0)) + 1)
	no := false
	// Two batches a file (a signature is much shorter than a line), and
	// more backups than rotations, so every event stays on disk.
	o, err := file.New(context.Background(), file.Config{Path: path, MaxBytes: 12 * one, MaxBackups: 20, Fsync: &no}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close(context.Background()) })
	var all []auditpipe.Event
	for _, b := range batches {
		if err := o.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return o, path, all, pub
}

func TestReadBackVerifies(t *testing.T) {
	o, path, evs, pub := writeSealed(t, 40)

	var got []string
	err := o.ReadBack(context.Background(), func(source string, r io.Reader) error {
		b, err := io.ReadAll(r)
		got = append(got, strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Every line, in the order written, across the rotated files.
	want := make([]string, len(evs))
	for i := range evs {
		want[i] = string(eventjson.Append(nil, &evs[i]))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("read back %d lines, not the %d written in order", len(got), len(want))
	}

	rep, sources := outputstest.VerifyReadBack(t, context.Background(), o, pub)
	if !rep.OK || rep.Verified != len(evs) || rep.Entries != len(evs) {
		t.Fatalf("report: ok %v, %d verified of %d entries, want all %d: %+v", rep.OK, rep.Verified, rep.Entries, len(evs), rep)
	}
	wantSources := []string{path + ".3", path + ".2", path + ".1", path}
	if !slices.Equal(sources, wantSources) {
		t.Errorf("sources %q, want %q (oldest first)", sources, wantSources)
	}
}

func TestReadBackFindsDeletedLine(t *testing.T) {
	o, path, evs, pub := writeSealed(t, 40)

	// Drop the second line of the oldest file: seq 2.
	old := path + ".3"
	b, err := os.ReadFile(old)
	if err != nil {
		t.Fatal(err)
	}
	ls := bytes.SplitAfter(b, []byte("\n"))
	if err := os.WriteFile(old, slices.Concat(append(ls[:1:1], ls[2:]...)...), 0o600); err != nil {
		t.Fatal(err)
	}

	rep, _ := outputstest.VerifyReadBack(t, context.Background(), o, pub)
	if rep.OK || rep.GapCount != 1 || len(rep.Streams) != 1 ||
		!slices.Equal(rep.Streams[0].Gaps, []integrity.Range{{From: 2, To: 2}}) {
		t.Fatalf("report: ok %v, gaps %+v, want exactly seq 2 missing: %+v", rep.OK, rep.Gaps, rep)
	}
	// The signature of the first batch (on seq 5) reaches back to seq 3:
	// seq 1 is intact but no longer proven.
	if rep.Verified != len(evs)-2 || rep.Entries != len(evs)-1 {
		t.Errorf("report: %d verified of %d entries after deleting one of %d", rep.Verified, rep.Entries, len(evs))
	}
}

func TestReadBackStdout(t *testing.T) {
	o := file.NewWriter(io.Discard)
	err := o.ReadBack(context.Background(), func(string, io.Reader) error { return nil })
	if err == nil {
		t.Fatal("ReadBack of a stream output succeeded")
	}
}

func TestReadBackStopsOnError(t *testing.T) {
	o, _, _, _ := writeSealed(t, 40)
	calls := 0
	stop := io.ErrShortBuffer
	err := o.ReadBack(context.Background(), func(string, io.Reader) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("ReadBack = %v after %d calls, want fn's error after 1", err, calls)
	}
}
