package sidecar

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/integrity"
	"github.com/auditpipe/auditpipe/sidecar/queue"
)

// chain is one output's hash chain. Its head lives in the output's queue
// cursor (queue.Reader.AckState), so it moves exactly when the cursor
// does: a batch re-sent after a failure, a restart or a kill -9 is sealed
// again from the same head, with the same seq and hashes, and shows up
// at the destination as a duplicate, never as a fork.
type chain struct {
	sealer *integrity.Sealer
	head   integrity.State
}

// newChain continues the chain whose head rd's cursor holds, or starts a
// new stream: <output>/<instance>/<unix seconds>. A lost head (no cursor,
// or one that failed its checksum) starts a new stream rather than
// reusing seq numbers, which a verifier would rightly call forks.
func newChain(key ed25519.PrivateKey, cfg integrity.Config, output, instance string, rd *queue.Reader, now time.Time) (*chain, error) {
	var head integrity.State
	if b := rd.State(); b != nil {
		if err := head.UnmarshalBinary(b); err != nil {
			head = integrity.State{}
		}
	}
	if head.Stream == "" {
		head.Stream = integrity.StreamName(output, instance, now)
	}
	s, err := integrity.NewSealer(integrity.SealerConfig{Stream: head.Stream, Key: key, Mode: cfg.Sign, SignEvery: cfg.SignEvery})
	if err != nil {
		return nil, fmt.Errorf("integrity: %w", err)
	}
	return &chain{sealer: s, head: head}, nil
}

// openSealing reads the signing key when integrity is on, so a missing or
// wrong key stops the start with its cause, before anything is accepted.
// The key and the instance name are kept for outputs a reload adds.
func (s *Sidecar) openSealing(env func(string) (string, bool)) error {
	ic := s.cfg.Integrity
	if !ic.Enabled() {
		return nil
	}
	key, err := ic.Key()
	if err != nil {
		return fmt.Errorf("integrity.%w", err)
	}
	s.sealKey, s.instance = key, ic.InstanceName(env)
	return nil
}

// openChain starts or continues o's chain, if integrity is on and o is
// sealed; o.chain stays nil otherwise.
func (s *Sidecar) openChain(o *output) error {
	if s.sealKey == nil || o.route.Unsealed {
		o.chain = nil
		return nil
	}
	c, err := newChain(s.sealKey, s.cfg.Integrity, o.name(), s.instance, o.rd, s.now())
	if err != nil {
		return fmt.Errorf("outputs %s: %w", o.name(), err)
	}
	o.chain = c
	s.log.Info("integrity: sealing", "output", o.name(), "stream", c.head.Stream, "seq", c.head.Seq, "key_id", c.sealer.KeyID())
	return nil
}

// seal chains events after the committed head and returns the head to
// commit once they are delivered.
func (c *chain) seal(events []auditpipe.Event) (integrity.State, error) {
	return c.sealer.Seal(c.head, events)
}

// ack acknowledges the batch up to seq and persists the chain's new head
// with the cursor, in one atomic write. The head moves in memory even if
// that write fails: the batch was delivered with those seqs, and the next
// batch must follow them. After a crash the older cursor and head on disk
// re-seal the same events identically: duplicates, not forks.
func (c *chain) ack(rd *queue.Reader, seq uint64, next integrity.State) error {
	c.head = next
	b, err := next.MarshalBinary()
	if err != nil {
		return err
	}
	return rd.AckState(seq, b)
}
