package outputs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/keypath"
)

// RetryConfig is how a Deliverer retries retryable failures: exponential
// back-off with jitter and a capped interval. The zero value of each field
// takes the documented default.
type RetryConfig struct {
	// InitialInterval is the first wait. Default 500ms.
	InitialInterval time.Duration `yaml:"initial_interval"`
	// MaxInterval caps the wait between attempts. Default 30s. A peer's
	// Retry-After may ask for longer and is honoured.
	MaxInterval time.Duration `yaml:"max_interval"`
	// Multiplier grows the wait after each failed attempt. Default 2.
	Multiplier float64 `yaml:"multiplier"`
	// Jitter randomizes each wait by ±Jitter of itself, so that many
	// senders do not retry in step. Default 0.2; must be in [0, 1).
	Jitter float64 `yaml:"jitter"`
	// MaxElapsedTime gives up on a batch after this long, handing its
	// undelivered events back to the caller (who keeps them). Default 0:
	// retry until delivered or the context ends, as the sidecar does.
	MaxElapsedTime time.Duration `yaml:"max_elapsed_time"`
	// AttemptTimeout bounds one Write. Default 30s.
	AttemptTimeout time.Duration `yaml:"attempt_timeout"`
}

// WithDefaults returns c with every zero field set to its default.
func (c RetryConfig) WithDefaults() RetryConfig {
	if c.InitialInterval == 0 {
		c.InitialInterval = 500 * time.Millisecond
	}
	if c.MaxInterval == 0 {
		c.MaxInterval = 30 * time.Second
	}
	if c.Multiplier == 0 {
		c.Multiplier = 2
	}
	if c.Jitter == 0 {
		c.Jitter = 0.2
	}
	if c.AttemptTimeout == 0 {
		c.AttemptTimeout = 30 * time.Second
	}
	return c
}

// Validate reports the first invalid field, by its YAML name.
func (c RetryConfig) Validate() error {
	switch {
	case c.InitialInterval < 0:
		return keypath.Errorf("initial_interval", "must not be negative")
	case c.MaxInterval < 0:
		return keypath.Errorf("max_interval", "must not be negative")
	case c.MaxInterval > 0 && c.InitialInterval > c.MaxInterval:
		return keypath.Errorf("initial_interval", "must not exceed max_interval")
	case c.Multiplier != 0 && c.Multiplier < 1:
		return keypath.Errorf("multiplier", "must be at least 1")
	case c.Jitter < 0 || c.Jitter >= 1:
		return keypath.Errorf("jitter", "must be in [0, 1)")
	case c.MaxElapsedTime < 0:
		return keypath.Errorf("max_elapsed_time", "must not be negative (0 means unlimited)")
	case c.AttemptTimeout < 0:
		return keypath.Errorf("attempt_timeout", "must not be negative")
	}
	return nil
}

// DelivererConfig configures a Deliverer.
type DelivererConfig struct {
	// Name is the configured output's name, written into dead letters and
	// logs.
	Name   string
	Output Output
	Retry  RetryConfig
	// DeadLetters receives permanent failures. When nil, permanent failures
	// are handed back to the caller in an *UndeliveredError instead.
	DeadLetters DeadLetterer
	Logger      *slog.Logger
	// Now is the clock for dead-letter times; time.Now when nil.
	Now func() time.Time
}

// Deliverer delivers batches through one Output: it retries retryable
// failures with exponential back-off, re-sending only the events that
// failed, and dead-letters permanent ones.
type Deliverer struct {
	name  string
	out   Output
	retry RetryConfig
	dlq   DeadLetterer
	log   *slog.Logger
	now   func() time.Time

	delivered, retried, deadLettered, failedAttempts atomic.Int64

	mu      sync.Mutex
	lastErr error // the last attempt's batch-level failure; nil after a success
}

// NewDeliverer validates cfg and returns a Deliverer.
func NewDeliverer(cfg DelivererConfig) (*Deliverer, error) {
	if cfg.Name == "" {
		return nil, errors.New("name: required")
	}
	if cfg.Output == nil {
		return nil, fmt.Errorf("output %q: no output", cfg.Name)
	}
	if err := cfg.Retry.Validate(); err != nil {
		return nil, fmt.Errorf("output %q: retry.%w", cfg.Name, err)
	}
	d := &Deliverer{
		name:  cfg.Name,
		out:   cfg.Output,
		retry: cfg.Retry.WithDefaults(),
		dlq:   cfg.DeadLetters,
		log:   cfg.Logger,
		now:   cfg.Now,
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	d.log = d.log.With("output", d.name)
	return d, nil
}

// Name is the configured output's name.
func (d *Deliverer) Name() string { return d.name }

// Output is the wrapped output.
func (d *Deliverer) Output() Output { return d.out }

// Report says what one Deliver call did.
type Report struct {
	// Delivered events were accepted by the destination.
	Delivered int
	// DeadLettered events were rejected permanently and are in the
	// dead-letter store.
	DeadLettered int
	// Attempts is the number of Write calls made.
	Attempts int
	// Retried counts event re-sends (an event sent three times counts two).
	Retried int
}

// UndeliveredError is returned by Deliver when events are left that were
// neither delivered nor dead-lettered: the context ended, MaxElapsedTime
// passed, or (without a dead-letter store) events were rejected
// permanently. The caller still owns them.
type UndeliveredError struct {
	Events []auditpipe.Event
	// Permanent is true when the events were rejected permanently and
	// there was no dead-letter store to take them.
	Permanent bool
	Err       error
}

func (e *UndeliveredError) Error() string {
	return fmt.Sprintf("%d events not delivered: %v", len(e.Events), e.Err)
}
func (e *UndeliveredError) Unwrap() error { return e.Err }

// Stats are a Deliverer's counters since it was made.
type Stats struct {
	Delivered, Retried, DeadLettered, FailedAttempts int64
}

// Stats returns the counters.
func (d *Deliverer) Stats() Stats {
	return Stats{
		Delivered:      d.delivered.Load(),
		Retried:        d.retried.Load(),
		DeadLettered:   d.deadLettered.Load(),
		FailedAttempts: d.failedAttempts.Load(),
	}
}

// Health returns the error of the last attempt if it failed as a whole (the
// destination is down, credentials are rejected) and nil once an attempt
// succeeds, so the caller can surface it as readiness.
func (d *Deliverer) Health() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastErr
}

func (d *Deliverer) setHealth(err error) {
	d.mu.Lock()
	d.lastErr = err
	d.mu.Unlock()
}

func (d *Deliverer) backoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(d.retry.InitialInterval),
		backoff.WithMaxInterval(d.retry.MaxInterval),
		backoff.WithMultiplier(d.retry.Multiplier),
		backoff.WithRandomizationFactor(d.retry.Jitter),
		backoff.WithMaxElapsedTime(d.retry.MaxElapsedTime),
	)
	b.Reset()
	return b
}

// Deliver sends events until each one is delivered or dead-lettered, and
// then returns a nil error. If the context ends or MaxElapsedTime passes
// first, it returns an *UndeliveredError holding the events left; events
// already delivered are not among them. Only the events that failed are
// re-sent.
func (d *Deliverer) Deliver(ctx context.Context, events []auditpipe.Event) (Report, error) {
	var rep Report
	if len(events) == 0 {
		return rep, nil
	}
	pending := events
	b := d.backoff()
	for {
		rep.Attempts++
		actx, cancel := context.WithTimeout(ctx, d.retry.AttemptTimeout)
		err := d.out.Write(actx, pending)
		cancel()
		retry, perm, lastErr := split(pending, err)
		rep.Delivered += len(pending) - len(retry) - len(perm)
		d.delivered.Add(int64(len(pending) - len(retry) - len(perm)))
		if err == nil {
			d.setHealth(nil)
			return rep, nil
		}
		d.failedAttempts.Add(1)

		if len(perm) > 0 {
			if uerr := d.deadLetter(ctx, perm); uerr != nil {
				// The retryable events are not done either: hand back
				// everything left so the caller keeps it.
				uerr.Events = append(uerr.Events, retry...)
				return rep, uerr
			}
			rep.DeadLettered += len(perm)
		}
		if len(retry) == 0 {
			d.setHealth(nil)
			return rep, nil
		}
		whole := len(retry) == len(pending)
		if whole {
			d.setHealth(lastErr)
		}

		wait := b.NextBackOff()
		if wait == backoff.Stop {
			d.log.Error("giving up on events after max_elapsed_time", "events", len(retry), "attempts", rep.Attempts, "err", lastErr)
			return rep, &UndeliveredError{Events: retry, Err: fmt.Errorf("output %s: max_elapsed_time %s passed: %w", d.name, d.retry.MaxElapsedTime, lastErr)}
		}
		if ra, ok := RetryAfterOf(lastErr); ok && ra > wait {
			wait = ra
		}
		// A whole-batch failure is the loud kind (the destination is down
		// or refuses our credentials); per-event retries are routine.
		level := slog.LevelInfo
		if whole {
			level = slog.LevelWarn
		}
		d.log.Log(ctx, level, "retrying", "events", len(retry), "attempt", rep.Attempts, "wait", wait, "err", lastErr)

		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return rep, &UndeliveredError{Events: retry, Err: fmt.Errorf("output %s: %w (last error: %v)", d.name, context.Cause(ctx), lastErr)}
		case <-t.C:
		}
		rep.Retried += len(retry)
		d.retried.Add(int64(len(retry)))
		pending = retry
	}
}

// split sorts a Write result into the events to retry and the events
// rejected permanently, each with its error, and picks the error that
// decides the wait (the longest Retry-After among the retryable ones).
func split(batch []auditpipe.Event, err error) (retry []auditpipe.Event, perm []failed, decisive error) {
	if err == nil {
		return nil, nil, nil
	}
	var pe *PartialError
	if !errors.As(err, &pe) {
		if IsPermanent(err) {
			perm = make([]failed, len(batch))
			for i := range batch {
				perm[i] = failed{&batch[i], err}
			}
			return nil, perm, err
		}
		return batch, nil, err
	}
	seen := make(map[int]bool, len(pe.Failures))
	var longest time.Duration
	for _, f := range pe.Failures {
		if f.Index < 0 || f.Index >= len(batch) || seen[f.Index] {
			// An output bug must not lose or duplicate an event: an
			// out-of-range index is ignored and the event it meant, if
			// any, was reported delivered by the output.
			continue
		}
		seen[f.Index] = true
		if IsPermanent(f.Err) {
			perm = append(perm, failed{&batch[f.Index], f.Err})
			continue
		}
		retry = append(retry, batch[f.Index])
		ra, _ := RetryAfterOf(f.Err)
		if decisive == nil || ra > longest {
			decisive, longest = f.Err, ra
		}
	}
	if decisive == nil && len(perm) > 0 {
		decisive = perm[0].err
	}
	return retry, perm, decisive
}

type failed struct {
	ev  *auditpipe.Event
	err error
}

func (d *Deliverer) deadLetter(ctx context.Context, perm []failed) *UndeliveredError {
	if d.dlq == nil {
		evs := make([]auditpipe.Event, len(perm))
		for i, f := range perm {
			evs[i] = *f.ev
		}
		return &UndeliveredError{Events: evs, Permanent: true, Err: fmt.Errorf("output %s: rejected and no dead-letter store: %w", d.name, perm[0].err)}
	}
	now := d.now().UTC()
	letters := make([]DeadLetter, len(perm))
	for i, f := range perm {
		letters[i] = DeadLetter{Time: now, Output: d.name, Error: f.err.Error(), Event: eventjson.Append(nil, f.ev)}
	}
	if err := d.dlq.DeadLetter(ctx, letters); err != nil {
		evs := make([]auditpipe.Event, len(perm))
		for i, f := range perm {
			evs[i] = *f.ev
		}
		d.log.Error("dead-letter store failed; events kept", "events", len(perm), "err", err)
		return &UndeliveredError{Events: evs, Permanent: true, Err: fmt.Errorf("output %s: dead-letter store: %w", d.name, err)}
	}
	for _, f := range perm {
		d.log.Warn("event dead-lettered", "id", f.ev.ID, "action", f.ev.Action, "err", f.err)
	}
	d.deadLettered.Add(int64(len(perm)))
	return nil
}

// BatchConfig is how the engine groups events for one output before
// calling Deliver: a batch is sent when it holds MaxEvents events or
// MaxBytes bytes of event JSON, or when its oldest event has waited
// MaxWait. Zero fields take the output type's defaults.
type BatchConfig struct {
	MaxEvents int           `yaml:"max_events"`
	MaxBytes  int           `yaml:"max_bytes"`
	MaxWait   time.Duration `yaml:"max_wait"`
}

// Validate names the bad key.
func (c BatchConfig) Validate() error {
	switch {
	case c.MaxEvents < 0:
		return keypath.Errorf("batch.max_events", "must not be negative")
	case c.MaxBytes < 0:
		return keypath.Errorf("batch.max_bytes", "must not be negative")
	case c.MaxWait < 0:
		return keypath.Errorf("batch.max_wait", "must not be negative")
	}
	return nil
}

// Or returns c with its zero fields taken from def.
func (c BatchConfig) Or(def BatchConfig) BatchConfig {
	if c.MaxEvents == 0 {
		c.MaxEvents = def.MaxEvents
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = def.MaxBytes
	}
	if c.MaxWait == 0 {
		c.MaxWait = def.MaxWait
	}
	return c
}
