package integrity_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/integrity"
)

// TestRetryIsADuplicateNotAFork: a batch sealed again from the same State
// (a retry, or a restart before the cursor moved) is byte-identical, so a
// destination holding both copies verifies with duplicates only.
func TestRetryIsADuplicateNotAFork(t *testing.T) {
	priv, pub := key(t, 1)
	s, err := integrity.NewSealer(integrity.SealerConfig{Stream: "out/a", Key: priv})
	if err != nil {
		t.Fatal(err)
	}
	evs := events(12)
	var lines [][]byte
	write := func(b []auditpipe.Event) {
		for i := range b {
			lines = append(lines, append(eventjson.Append(nil, &b[i]), '\n'))
		}
	}
	st1, _ := s.Seal(integrity.State{}, evs[:6])
	write(evs[:6])
	// The batch was written but not acknowledged: State stays where it
	// was, and the batch goes again, this time in a larger batch.
	again := append([]auditpipe.Event(nil), events(12)...)
	st2, _ := s.Seal(integrity.State{}, again)
	write(again)
	if st1.Seq != 6 || st2.Seq != 12 {
		t.Fatalf("state after seals: %+v %+v", st1, st2)
	}
	for i := range 6 {
		if evs[i].Integrity.Hash != again[i].Integrity.Hash {
			t.Fatalf("seq %d: hash differs on retry", i+1)
		}
	}
	r := verify(t, lines, pub)
	if !r.OK || r.Duplicates != 6 || r.ForkCount != 0 || r.Verified != 12 {
		var b strings.Builder
		r.WriteText(&b)
		t.Fatalf("retry: %s", b.String())
	}
}

// TestRotation: a stream signed by two keys in turn verifies with both
// public keys, and with one of them the other's signatures fail naming
// the key.
func TestRotation(t *testing.T) {
	k1, pub1 := key(t, 1)
	k2, pub2 := key(t, 2)
	evs := events(10)
	s1, _ := integrity.NewSealer(integrity.SealerConfig{Stream: "out/a", Key: k1})
	s2, _ := integrity.NewSealer(integrity.SealerConfig{Stream: "out/a", Key: k2})
	st, _ := s1.Seal(integrity.State{}, evs[:5])
	s2.Seal(st, evs[5:]) // restarted with the new key
	var lines [][]byte
	for i := range evs {
		lines = append(lines, append(eventjson.Append(nil, &evs[i]), '\n'))
	}
	r := verify(t, lines, pub1, pub2)
	if !r.OK || r.Verified != 10 || r.Signatures.ByKey[integrity.KeyID(pub1)] != 1 || r.Signatures.ByKey[integrity.KeyID(pub2)] != 1 {
		t.Fatalf("both keys: %+v", r)
	}
	r = verify(t, lines, pub1)
	if r.OK || r.BadSignatureCount != 1 || !strings.Contains(r.BadSignatures[0].Detail, integrity.KeyID(pub2)) {
		t.Fatalf("one key: %+v", r)
	}
	if r.Verified != 5 || r.UnsignedTail != 5 {
		t.Errorf("one key: verified %d, unsigned tail %d; want 5 and 5", r.Verified, r.UnsignedTail)
	}
}

func TestStateRoundTrip(t *testing.T) {
	st := integrity.State{Stream: "siem/gw-0/1764760000", Seq: 99, Head: integrity.Hash{1, 2, 3}, SignedSeq: 98}
	b, _ := st.MarshalBinary()
	var back integrity.State
	if err := back.UnmarshalBinary(b); err != nil || back != st {
		t.Fatalf("%+v %v", back, err)
	}
	for _, bad := range [][]byte{nil, {2}, b[:len(b)-1], append(b, 0)} {
		if err := back.UnmarshalBinary(bad); err == nil {
			t.Errorf("%x accepted", bad)
		}
	}
	priv, _ := key(t, 1)
	s, _ := integrity.NewSealer(integrity.SealerConfig{Stream: "other", Key: priv})
	if _, err := s.Seal(st, events(1)); err == nil {
		t.Error("a state of another stream was sealed on")
	}
}

func TestEveryEventMode(t *testing.T) {
	priv, pub := key(t, 3)
	lines := seal(t, priv, integrity.SignEveryEvent, events(7), 7)
	r := verify(t, lines, pub)
	if !r.OK || r.Signatures.Valid != 7 || r.Verified != 7 {
		t.Fatalf("%+v", r)
	}
	// Any prefix of the copy is fully proven.
	r = verify(t, lines[:3], pub)
	if !r.OK || r.Verified != 3 || r.UnsignedTail != 0 {
		t.Fatalf("prefix: %+v", r)
	}
}

func TestSignEveryBoundsUnsignedRuns(t *testing.T) {
	priv, _ := key(t, 4)
	s, _ := integrity.NewSealer(integrity.SealerConfig{Stream: "x", Key: priv, SignEvery: 4})
	evs := events(10)
	s.Seal(integrity.State{}, evs)
	var signed []uint64
	for _, ev := range evs {
		if ev.Integrity.Signature != "" {
			signed = append(signed, ev.Integrity.Seq)
		}
	}
	if want := []uint64{4, 8, 10}; !slices.Equal(signed, want) {
		t.Fatalf("signed seqs %v, want %v", signed, want)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	_, err := integrity.NewSealer(integrity.SealerConfig{Stream: "a\nb", Mode: "sometimes", SignEvery: -1})
	for _, want := range []string{"stream:", "key:", "sign:", "sign_every:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

func TestKeys(t *testing.T) {
	privPEM, pubPEM, err := integrity.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := integrity.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := integrity.ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) {
		t.Fatal("public key does not match the private one")
	}
	if _, err := integrity.ParsePublicKey(privPEM); err == nil {
		t.Error("a private key was accepted as a public one")
	}
	if _, err := integrity.ParsePrivateKey(pubPEM); err == nil || strings.Contains(err.Error(), string(pubPEM[30:40])) {
		t.Errorf("error %v", err)
	}
	if id := integrity.KeyID(pub); !strings.HasPrefix(id, "ed25519:") || len(id) != len("ed25519:")+16 {
		t.Errorf("key id %q", id)
	}
}

// FuzzVerify feeds arbitrary input to the verifier: it must never panic,
// and whatever it cannot read is reported, never counted as verified.
func FuzzVerify(f *testing.F) {
	priv, pub := key(f, 1)
	f.Add(bytes.Join(seal(f, priv, integrity.SignBatch, events(6), 3), nil))
	f.Add([]byte("{}\n\n{\"integrity\":{\"seq\":1}}\nnot json\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, _ := integrity.NewVerifier(pub)
		if err := v.ReadNDJSON(bytes.NewReader(data), "fuzz"); err != nil {
			return
		}
		r := v.Report()
		if r.Verified > r.Entries || (r.OK && r.MalformedCount > 0) {
			t.Fatalf("inconsistent report: %+v", r)
		}
		var b strings.Builder
		if err := r.WriteText(&b); err != nil {
			t.Fatal(err)
		}
	})
}

// TestDeadLettersExplainGaps: an event the output rejected for good is
// missing at the destination; read from the dead-letter store, where it
// keeps its integrity block, it explains the gap and the chain is checked
// through it.
func TestDeadLettersExplainGaps(t *testing.T) {
	priv, pub := key(t, 1)
	lines := seal(t, priv, integrity.SignBatch, events(10), 5)
	delivered := append(append([][]byte(nil), lines[:3]...), lines[4:]...)
	r := verify(t, delivered, pub)
	if r.OK || r.GapCount != 1 {
		t.Fatalf("without the dead letter: %+v", r)
	}
	v, _ := integrity.NewVerifier(pub)
	v.ReadNDJSON(bytes.NewReader(bytes.Join(delivered, nil)), "dest")
	var ev auditpipe.Event
	if err := eventjson.Decode(bytes.TrimSpace(lines[3]), &ev); err != nil {
		t.Fatal(err)
	}
	v.AddDeadLettered(&ev, integrity.Where{Source: "dlq", Line: 1})
	r = v.Report()
	if !r.OK || r.GapCount != 0 || r.ExplainedGaps != 1 || r.Verified != 9 || r.DeadLetters != 1 || r.Duplicates != 0 {
		t.Fatalf("with the dead letter: %+v", r)
	}
	// An altered dead letter explains nothing.
	ev.Message = "changed"
	v, _ = integrity.NewVerifier(pub)
	v.ReadNDJSON(bytes.NewReader(bytes.Join(delivered, nil)), "dest")
	v.AddDeadLettered(&ev, integrity.Where{Source: "dlq", Line: 1})
	if r = v.Report(); r.OK || r.AlteredCount != 1 {
		t.Fatalf("altered dead letter: %+v", r)
	}
}
