package integrity_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/integrity"
)

// key returns a fixed key pair, so failures reproduce.
func key(t testing.TB, seed byte) (ed25519.PrivateKey, ed25519.PublicKey) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return priv, priv.Public().(ed25519.PublicKey)
}

// events makes n distinct events shaped like real ones.
func events(n int) []auditpipe.Event {
	base := time.Date(2026, 11, 3, 10, 0, 0, 123456000, time.UTC)
	labels := map[string]string{"cluster": "prod", "team": "platform"}
	out := make([]auditpipe.Event, n)
	for i := range out {
		out[i] = auditpipe.Event{
			SchemaVersion: auditpipe.SchemaVersion,
			ID:            fmt.Sprintf("%064x", i+1),
			Time:          base.Add(time.Duration(i) * time.Second),
			ObservedTime:  base.Add(time.Duration(i)*time.Second + time.Millisecond),
			Source:        auditpipe.Source{Type: "spacelift", Name: "spacelift", Format: "spacelift"},
			Action:        "stack.create",
			Operation:     auditpipe.Operation("create"),
			Category:      []string{"configuration"},
			Outcome:       auditpipe.Outcome("success"),
			Actor:         auditpipe.Actor{Type: auditpipe.ActorType("user"), ID: "alice", Name: "Alice Ä", Provider: "github"},
			Resource:      auditpipe.Resource{Type: "stack", ID: fmt.Sprintf("stack-%d", i)},
			Tenant:        auditpipe.Tenant{Account: "acme"},
			Client:        auditpipe.Client{IP: "10.0.0.1", UserAgent: "curl/8"},
			Details:       json.RawMessage(fmt.Sprintf(`{"a":[1,true,null,"x\n"],"n":%d,"z":{"k":"v"}}`, i)),
			Labels:        labels,
			RawSHA256:     fmt.Sprintf("%064x", i+7),
		}
	}
	return out
}

// seal chains events in batches of size batch and returns them as NDJSON
// lines, one per event.
func seal(t testing.TB, priv ed25519.PrivateKey, mode integrity.Mode, evs []auditpipe.Event, batch int) [][]byte {
	t.Helper()
	s, err := integrity.NewSealer(integrity.SealerConfig{Stream: "siem/gw-0", Key: priv, Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	var st integrity.State
	var lines [][]byte
	for i := 0; i < len(evs); i += batch {
		b := evs[i:min(i+batch, len(evs))]
		if st, err = s.Seal(st, b); err != nil {
			t.Fatal(err)
		}
		for j := range b {
			lines = append(lines, append(b[j].AppendJSON(nil), '\n'))
		}
	}
	return lines
}

func verify(t testing.TB, lines [][]byte, keys ...ed25519.PublicKey) *integrity.Report {
	t.Helper()
	v, err := integrity.NewVerifier(keys...)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.ReadNDJSON(bytes.NewReader(bytes.Join(lines, nil)), "events.ndjson"); err != nil {
		t.Fatal(err)
	}
	return v.Report()
}

// edit rewrites one line's event.
func edit(t testing.TB, line []byte, f func(*auditpipe.Event)) []byte {
	t.Helper()
	var ev auditpipe.Event
	if err := auditpipe.DecodeJSON(bytes.TrimSpace(line), &ev); err != nil {
		t.Fatal(err)
	}
	f(&ev)
	return append(ev.AppendJSON(nil), '\n')
}

// TestTamper is the table the issue asks for: each way of tampering with
// a stored copy gets its exact verdict.
func TestTamper(t *testing.T) {
	priv, pub := key(t, 1)
	other, _ := key(t, 2)
	type verdict struct {
		ok                                                 bool
		verified, tail, altered, broken, gaps, forks, dups int
		badSig                                             int
	}
	cases := []struct {
		name   string
		tamper func(lines [][]byte) [][]byte
		want   verdict
	}{
		{"untouched", func(l [][]byte) [][]byte { return l }, verdict{ok: true, verified: 20}},
		{"one field changed", func(l [][]byte) [][]byte {
			l[7] = edit(t, l[7], func(ev *auditpipe.Event) { ev.Outcome = "denied" })
			return l
		}, verdict{verified: 19, altered: 1}},
		{"details changed", func(l [][]byte) [][]byte {
			l[3] = bytes.Replace(l[3], []byte(`"n":3`), []byte(`"n":4`), 1)
			return l
		}, verdict{verified: 19, altered: 1}},
		{"label added", func(l [][]byte) [][]byte {
			l[0] = edit(t, l[0], func(ev *auditpipe.Event) { ev.Labels = map[string]string{"x": "y"} })
			return l
		}, verdict{verified: 19, altered: 1}},
		{"event deleted", func(l [][]byte) [][]byte {
			return append(l[:5:5], l[6:]...)
		}, verdict{verified: 19, gaps: 1}},
		{"signed event deleted", func(l [][]byte) [][]byte {
			// The last of the first batch carries its signature: the
			// events before it lose their proof too.
			return append(l[:4:4], l[5:]...)
		}, verdict{verified: 15, gaps: 1}},
		{"hash recomputed after a change", func(l [][]byte) [][]byte {
			// A forger who re-hashes the changed event still breaks the
			// next link, and cannot sign.
			l[7] = edit(t, l[7], func(ev *auditpipe.Event) {
				ev.Outcome = "denied"
				in := *ev.Integrity
				evs := []auditpipe.Event{*ev}
				forge, _ := integrity.NewSealer(integrity.SealerConfig{Stream: in.Stream, Key: other})
				prev, _ := integrity.ParseHash(in.PrevHash)
				forge.Seal(integrity.State{Seq: in.Seq - 1, Head: prev}, evs)
				evs[0].Integrity.KeyID, evs[0].Integrity.Signature = "", ""
				*ev = evs[0]
			})
			return l
		}, verdict{verified: 17, broken: 1}},
		{"forged event inserted", func(l [][]byte) [][]byte {
			evs := events(21)[20:]
			forge, _ := integrity.NewSealer(integrity.SealerConfig{Stream: "siem/gw-0", Key: other})
			var last auditpipe.Event
			auditpipe.DecodeJSON(bytes.TrimSpace(l[19]), &last)
			h, _ := integrity.ParseHash(last.Integrity.Hash)
			forge.Seal(integrity.State{Seq: 20, Head: h}, evs)
			return append(l, append(evs[0].AppendJSON(nil), '\n'))
		}, verdict{verified: 20, tail: 1, badSig: 1}},
		{"two events swapped", func(l [][]byte) [][]byte {
			l[2], l[3] = l[3], l[2]
			return l
		}, verdict{ok: true, verified: 20}},
		{"two events' contents swapped", func(l [][]byte) [][]byte {
			var a, b auditpipe.Event
			auditpipe.DecodeJSON(bytes.TrimSpace(l[10]), &a)
			auditpipe.DecodeJSON(bytes.TrimSpace(l[11]), &b)
			a.Integrity, b.Integrity = b.Integrity, a.Integrity
			l[10], l[11] = append(a.AppendJSON(nil), '\n'), append(b.AppendJSON(nil), '\n')
			return l
		}, verdict{verified: 18, altered: 2}},
		{"end truncated mid-batch", func(l [][]byte) [][]byte { return l[:18] }, verdict{ok: true, verified: 15, tail: 3}},
		{"end truncated after a signature", func(l [][]byte) [][]byte { return l[:15] }, verdict{ok: true, verified: 15}},
		{"event duplicated", func(l [][]byte) [][]byte { return append(l, l[4]) }, verdict{ok: true, verified: 20, dups: 1}},
		{"signature stripped", func(l [][]byte) [][]byte {
			l[19] = edit(t, l[19], func(ev *auditpipe.Event) { ev.Integrity.Signature, ev.Integrity.KeyID = "", "" })
			return l
		}, verdict{ok: true, verified: 15, tail: 5}},
		{"signature moved to another position", func(l [][]byte) [][]byte {
			var a auditpipe.Event
			auditpipe.DecodeJSON(bytes.TrimSpace(l[4]), &a)
			l[8] = edit(t, l[8], func(ev *auditpipe.Event) {
				ev.Integrity.Signature, ev.Integrity.KeyID = a.Integrity.Signature, a.Integrity.KeyID
			})
			return l
		}, verdict{verified: 20, badSig: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Batches of 5: events 5, 10, 15, 20 (seq) are signed.
			lines := seal(t, priv, integrity.SignBatch, events(20), 5)
			r := verify(t, c.tamper(lines), pub)
			got := verdict{ok: r.OK, verified: r.Verified, tail: r.UnsignedTail, altered: r.AlteredCount, broken: r.BrokenLinkCount,
				gaps: r.GapCount, forks: r.ForkCount, dups: r.Duplicates, badSig: r.BadSignatureCount}
			if got != c.want {
				var b strings.Builder
				r.WriteText(&b)
				t.Errorf("got  %+v\nwant %+v\n%s", got, c.want, b.String())
			}
		})
	}
}
