package queue

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAckStatePersistsWithTheCursor: the state given with an ack comes
// back after a reopen with exactly that cursor; a plain Ack keeps it; a
// consumer that never used state keeps the original cursor format.
func TestAckStatePersistsWithTheCursor(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentBytes: 1024, MaxBytes: 1 << 20}
	q := openQueue(t, cfg, "sealed", "plain")
	appendRange(t, q, 0, 30)
	rs, _ := q.Reader("sealed")
	rp, _ := q.Reader("plain")
	if err := rs.AckState(10, []byte("head-10")); err != nil {
		t.Fatal(err)
	}
	if err := rs.AckState(12, []byte("head-12")); err != nil {
		t.Fatal(err)
	}
	if err := rs.Ack(15); err != nil {
		t.Fatal(err)
	}
	if err := rp.Ack(20); err != nil {
		t.Fatal(err)
	}
	if err := rs.AckState(5, []byte("stale")); err != nil {
		t.Fatal(err) // at or below the cursor: ignored, state too
	}
	if err := rs.AckState(16, bytes.Repeat([]byte{1}, MaxCursorState+1)); err == nil {
		t.Error("an oversized state was accepted")
	}
	q.Close()

	q = openQueue(t, cfg, "sealed", "plain")
	rs, _ = q.Reader("sealed")
	rp, _ = q.Reader("plain")
	if got := string(rs.State()); got != "head-12" {
		t.Errorf("state after reopen %q, want head-12 (kept by the plain Ack at 15)", got)
	}
	if st := q.Stats(); st.Consumers["sealed"].Acked != 15 || st.Consumers["plain"].Acked != 20 {
		t.Errorf("cursors after reopen: %+v", st.Consumers)
	}
	if rp.State() != nil {
		t.Errorf("plain consumer has state %q", rp.State())
	}
	b, _ := os.ReadFile(filepath.Join(dir, cursorFile("plain")))
	if len(b) != cursorSize || !strings.HasPrefix(string(b), cursorMagic) {
		t.Errorf("a cursor without state is not in the original format: %q", b)
	}
}

// TestCursorStateDamage: a cursor whose state was torn or altered fails
// its checksum and is refused as a whole, position and state together.
func TestCursorStateDamage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.cursor")
	good := encodeCursor(42, []byte("chain head"))
	for name, b := range map[string][]byte{
		"torn":          good[:len(good)-3],
		"state flipped": append(append([]byte(nil), good[:22]...), append([]byte{good[22] ^ 1}, good[23:]...)...),
		"length wrong":  append(append(append([]byte(nil), good[:16]...), 0xff, 0, 0, 0), good[20:]...),
	} {
		os.WriteFile(path, b, 0o600)
		if _, _, ok, err := readCursor(path); ok || err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	os.WriteFile(path, good, 0o600)
	if seq, state, ok, err := readCursor(path); !ok || err != nil || seq != 42 || string(state) != "chain head" {
		t.Errorf("good cursor: %d %q %v %v", seq, state, ok, err)
	}
	// On a full disk the cursor is overwritten in place, which only a
	// state of the same size can be.
	if err := overwriteCursor(path, 43, []byte("chain hea2"), false); err != nil {
		t.Fatal(err)
	}
	if seq, state, _, _ := readCursor(path); seq != 43 || string(state) != "chain hea2" {
		t.Errorf("after overwrite: %d %q", seq, state)
	}
	if err := overwriteCursor(path, 44, []byte("longer state"), false); err == nil {
		t.Error("overwrote a cursor with one of another size")
	}
}
