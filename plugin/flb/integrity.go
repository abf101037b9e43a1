package flb

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/integrity"
	"github.com/auditpipe/auditpipe/internal/durable"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/fanout"
)

// chains seal what the plugin delivers, one chain per output, as the
// sidecar does. Fluent Bit is not a queue: it may flush other chunks
// between a failed chunk and its retry, and may drop a chunk after its
// retry limit. So a chain cannot advance "on FLB_OK" (a retried chunk
// would take positions others already used: forks), nor per attempt
// (gaps). Instead each chunk reserves its positions when it is first
// sealed; the reservation is written to the state file before anything
// is delivered, and a retry of the same chunk (same tag and bytes: its
// events are the same, ids and times included) is sealed again from the
// same start, identically. When a chunk first fails, its sealed events
// are written to the dead-letter store, so that if Fluent Bit never
// sends it again, the gap its positions leave is explained (`auditpipe
// verify --dead-letters`); if it does, the copies merge with the
// delivered ones.
type chains struct {
	mu      sync.Mutex
	path    string // state file
	key     ed25519.PrivateKey
	cfg     integrity.Config
	sealers map[string]*integrity.Sealer
	st      chainFile
	dlq     outputs.DeadLetterer
	now     func() time.Time
}

// chainFile is the state file: each output's head and the reservations
// of chunks not yet delivered.
type chainFile struct {
	Heads   map[string]head                    `json:"heads"`
	Pending map[string]map[string]*reservation `json:"pending"` // chunk fingerprint -> output
}

type head struct {
	Stream    string `json:"stream"`
	Seq       uint64 `json:"seq"`
	Hash      string `json:"hash"`
	SignedSeq uint64 `json:"signed_seq"`
}

type reservation struct {
	Start    head `json:"start"`
	Lettered bool `json:"lettered"`
}

func (h head) state() (integrity.State, error) {
	hash, err := integrity.ParseHash(h.Hash)
	return integrity.State{Stream: h.Stream, Seq: h.Seq, Head: hash, SignedSeq: h.SignedSeq}, err
}

func headOf(s integrity.State) head {
	h := head{Stream: s.Stream, Seq: s.Seq, SignedSeq: s.SignedSeq}
	if s.Seq > 0 {
		h.Hash = s.Head.String()
	}
	return h
}

// openChains reads the key and the state file (integrity-state.json in
// dir) and makes a sealer per output.
func openChains(cfg integrity.Config, dir, instance string, routes []*fanout.Route, dl outputs.DeadLetterer, now func() time.Time) (*chains, error) {
	key, err := cfg.Key()
	if err != nil {
		return nil, err
	}
	c := &chains{path: filepath.Join(dir, "integrity-state.json"), key: key, cfg: cfg, sealers: map[string]*integrity.Sealer{},
		dlq: dl, now: now, st: chainFile{Heads: map[string]head{}, Pending: map[string]map[string]*reservation{}}}
	if b, err := os.ReadFile(c.path); err == nil {
		if err := json.Unmarshal(b, &c.st); err != nil {
			return nil, fmt.Errorf("%s: %w", c.path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if c.st.Heads == nil {
		c.st.Heads = map[string]head{}
	}
	if c.st.Pending == nil {
		c.st.Pending = map[string]map[string]*reservation{}
	}
	for _, r := range routes {
		if r.Unsealed {
			continue
		}
		h, ok := c.st.Heads[r.Name()]
		if !ok {
			h = head{Stream: integrity.StreamName(r.Name(), instance, now())}
			c.st.Heads[r.Name()] = h
		}
		s, err := integrity.NewSealer(integrity.SealerConfig{Stream: h.Stream, Key: key, Mode: cfg.Sign, SignEvery: cfg.SignEvery})
		if err != nil {
			return nil, err
		}
		c.sealers[r.Name()] = s
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return c, c.save()
}

// fingerprint names a chunk: its tag and bytes.
func fingerprint(tag string, chunk []byte) string {
	h := sha256.New()
	h.Write([]byte(tag))
	h.Write([]byte{0})
	h.Write(chunk)
	return hex.EncodeToString(h.Sum(nil))
}

// seal chains a chunk's share for one output: again from its reservation
// when the chunk was sealed before, else after the output's head, which
// it then reserves (written before it returns).
func (c *chains) seal(fp, output string, share []auditpipe.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sealers[output]
	if r := c.st.Pending[fp][output]; r != nil {
		st, err := r.Start.state()
		if err == nil {
			_, err = s.Seal(st, share)
		}
		return err
	}
	start := c.st.Heads[output]
	st, err := start.state()
	if err != nil {
		return err
	}
	end, err := s.Seal(st, share)
	if err != nil {
		return err
	}
	c.st.Heads[output] = headOf(end)
	if c.st.Pending[fp] == nil {
		c.st.Pending[fp] = map[string]*reservation{}
	}
	c.st.Pending[fp][output] = &reservation{Start: start}
	return c.save()
}

// delivered drops the chunk's reservation for output; it is written with
// the next reservation (a crash before that only keeps a stale one).
func (c *chains) delivered(fp, output string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.st.Pending[fp], output)
	if len(c.st.Pending[fp]) == 0 {
		delete(c.st.Pending, fp)
	}
}

// failed keeps the sealed share in the dead-letter store, once per chunk
// and output, so that a chunk Fluent Bit drops leaves explained gaps.
func (c *chains) failed(ctx context.Context, fp, output string, share []auditpipe.Event, cause error) error {
	c.mu.Lock()
	r := c.st.Pending[fp][output]
	lettered := r == nil || r.Lettered
	c.mu.Unlock()
	if lettered {
		return nil
	}
	letters := make([]outputs.DeadLetter, len(share))
	for i := range share {
		letters[i] = outputs.DeadLetter{Time: c.now().UTC(), Output: output, Event: eventjson.Append(nil, &share[i]),
			Error: "sealed but not delivered yet; Fluent Bit retries the chunk (kept so that a chunk it drops leaves an explained gap): " + cause.Error()}
	}
	if err := c.dlq.DeadLetter(ctx, letters); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r.Lettered = true
	return c.save()
}

// save replaces the state file atomically; c.mu held.
func (c *chains) save() error {
	b, err := json.Marshal(&c.st)
	if err != nil {
		return err
	}
	if err := durable.ReplaceFile(c.path, b, 0o600, true); err != nil {
		return fmt.Errorf("integrity state: %w", err)
	}
	return nil
}

// deliverSealed is Set.Deliver for sealed outputs: each output's share is
// a copy sealed into its chain, then delivered; all outputs at once.
func (in *Instance) deliverSealed(ctx context.Context, tag string, chunk []byte, events []auditpipe.Event) error {
	fp := fingerprint(tag, chunk)
	routes := in.set.Routes
	errs := make([]error, len(routes))
	var wg sync.WaitGroup
	for i, r := range routes {
		share := r.Match.Filter(events)
		if len(share) == 0 {
			continue
		}
		if r.Unsealed {
			wg.Go(func() {
				if _, err := r.Deliver(ctx, share); err != nil {
					errs[i] = fmt.Errorf("output %s: %w", r.Name(), err)
				}
			})
			continue
		}
		share = slices.Clone(share) // each output's copy carries its own integrity
		if err := in.chains.seal(fp, r.Name(), share); err != nil {
			errs[i] = fmt.Errorf("output %s: integrity: %w", r.Name(), err)
			continue
		}
		wg.Go(func() {
			_, err := r.Deliver(ctx, share)
			if err == nil {
				in.chains.delivered(fp, r.Name())
				return
			}
			errs[i] = fmt.Errorf("output %s: %w", r.Name(), err)
			if lerr := in.chains.failed(ctx, fp, r.Name(), share, err); lerr != nil {
				errs[i] = errors.Join(errs[i], fmt.Errorf("output %s: keeping the sealed events: %w", r.Name(), lerr))
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
