package flb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/dlq"
	"github.com/auditpipe/auditpipe/outputs/fanout"
	"github.com/auditpipe/auditpipe/outputs/standard"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/formats"
	"github.com/tinylib/msgp/msgp"
)

// Code is a flush's answer to Fluent Bit; the values are Fluent Bit's
// FLB_ERROR, FLB_OK and FLB_RETRY.
type Code int

const (
	// Error: the chunk cannot be delivered and retrying will not help; what
	// could not be delivered is in the dead-letter store.
	Error Code = 0
	// OK: every record was delivered, skipped on purpose, or dead-lettered.
	OK Code = 1
	// Retry: a retryable failure; Fluent Bit sends the whole chunk again
	// later (event ids make the re-send harmless).
	Retry Code = 2
)

func (c Code) String() string {
	switch c {
	case OK:
		return "FLB_OK"
	case Retry:
		return "FLB_RETRY"
	case Error:
		return "FLB_ERROR"
	}
	return "Code(" + strconv.Itoa(int(c)) + ")"
}

// Labels the plugin adds to every event; the transformer's own labels win.
const (
	// TagLabel holds the Fluent Bit tag of the record's chunk.
	TagLabel = "fluentbit_tag"
	// MetaLabelPrefix starts the labels holding the v2 record metadata,
	// one per metadata key; values that are not strings are JSON.
	MetaLabelPrefix = "fluentbit_meta_"
)

// Stats are an Instance's counters since it was made.
type Stats struct {
	// Records read from chunks; Events made of them and handed to the
	// outputs; Skipped items the transformers skipped on purpose (resolved
	// alerts, other alertnames); DeadLettered records kept in the
	// dead-letter store because they are not audit payloads.
	Records, Events, Skipped, DeadLettered int64
	// Flushes by answer.
	OK, Retry, Error int64
}

// Instance is one [OUTPUT] section: its transformer, outputs and
// dead-letter store. Flush is safe for concurrent use (Workers N).
type Instance struct {
	cfg    *Config
	log    *slog.Logger
	tr     transformers.Transformer
	set    *fanout.Set
	dlq    *dlq.Store
	labels map[string]string

	records, events, skipped, deadLettered atomic.Int64
	ok, retry, failed                      atomic.Int64
	closed                                 atomic.Bool

	batches sync.Pool // *batch
}

// New builds an Instance from cfg. A nil logger discards logs.
func New(ctx context.Context, cfg *Config, logger *slog.Logger) (*Instance, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg, err := formats.NewRegistry(cfg.Transformers)
	if err != nil {
		return nil, err
	}
	tr, err := reg.Get(cfg.Format)
	if err != nil {
		return nil, keyErr("Format", "%v", err)
	}
	store, err := dlq.Open(dlq.Config{Dir: cfg.DLQDir})
	if err != nil {
		return nil, keyErr("DLQ_Dir", "%v", err)
	}
	set, err := fanout.Build(ctx, standard.Registry(), cfg.Outputs, fanout.Deps{Logger: logger, DeadLetters: store, Version: "fluent-bit-plugin"})
	if err != nil {
		store.Close()
		return nil, cfg.keyErrors(err)
	}
	return newInstance(cfg, logger, tr, set, store), nil
}

func newInstance(cfg *Config, logger *slog.Logger, tr transformers.Transformer, set *fanout.Set, store *dlq.Store) *Instance {
	in := &Instance{cfg: cfg, log: logger, tr: tr, set: set, dlq: store, labels: cfg.Labels}
	in.batches.New = func() any { return new(batch) }
	return in
}

// Stats returns the counters.
func (in *Instance) Stats() Stats {
	return Stats{Records: in.records.Load(), Events: in.events.Load(), Skipped: in.skipped.Load(),
		DeadLettered: in.deadLettered.Load(), OK: in.ok.Load(), Retry: in.retry.Load(), Error: in.failed.Load()}
}

// Flush handles one chunk: it decodes every record, transforms it,
// delivers the events and dead-letters what is not an audit payload. The
// events' strings are views into chunk, so the caller must never change
// it afterwards (the C side hands over a copy: Fluent Bit frees its own).
func (in *Instance) Flush(ctx context.Context, tag string, chunk []byte) Code {
	c := in.flush(ctx, tag, chunk)
	switch c {
	case OK:
		in.ok.Add(1)
	case Retry:
		in.retry.Add(1)
	default:
		in.failed.Add(1)
	}
	return c
}

func (in *Instance) flush(ctx context.Context, tag string, chunk []byte) Code {
	if in.closed.Load() {
		return Retry
	}
	b := in.batches.Get().(*batch)
	defer in.putBatch(b)
	if err := in.read(ctx, tag, chunk, time.Now().UTC(), b); err != nil {
		in.log.Warn("transformer unavailable; chunk will be retried", "tag", tag, "err", err)
		return Retry
	}
	if len(b.letters) > 0 {
		if err := in.dlq.DeadLetter(ctx, b.letters); err != nil {
			in.log.Error("dead-letter store failed; chunk will be retried", "tag", tag, "err", err)
			return Retry
		}
		in.deadLettered.Add(int64(len(b.letters)))
		in.log.Warn("records dead-lettered", "tag", tag, "records", len(b.letters), "first_error", b.letters[0].Error)
	}
	if len(b.events) > 0 {
		if err := in.set.Deliver(ctx, b.events); err != nil {
			// Permanent rejections are already in the dead-letter store;
			// what is left is retryable, or the store itself failed, which
			// a later attempt may fix.
			in.log.Warn("delivery incomplete; chunk will be retried", "tag", tag, "events", len(b.events), "err", err)
			return Retry
		}
		in.events.Add(int64(len(b.events)))
	}
	if b.corrupt {
		return Error
	}
	return OK
}

// batch is what one chunk makes. Batches are reused from flush to flush
// (Set.Deliver keeps nothing of the events once it returns): a chunk's
// events are its largest allocation.
type batch struct {
	events  []auditpipe.Event
	letters []outputs.DeadLetter
	corrupt bool
	// labels is the label set of the chunk's events that bring none of
	// their own and have no metadata (the common case): they share it, as
	// events' labels are read-only once made.
	labels map[string]string
	res    transformers.Result // one record's, reset for each
}

// maxPooledEvents bounds the batches kept for reuse, so one huge chunk
// does not pin its memory.
const maxPooledEvents = 4096

func (in *Instance) putBatch(b *batch) {
	if cap(b.events) > maxPooledEvents {
		return
	}
	// Cleared: the events point into their chunk, which a pooled batch
	// would otherwise keep alive.
	clear(b.events)
	b.events = b.events[:0]
	clear(b.letters)
	b.letters = b.letters[:0]
	b.corrupt = false
	b.labels = nil
	b.res = transformers.Result{}
	in.batches.Put(b)
}

// read decodes and transforms every record of chunk into b: events to
// deliver, dead letters for what is not an audit payload, and the tail of
// a chunk that cannot be read on. The error is non-nil only when the
// transformer is unavailable and the chunk must be retried.
func (in *Instance) read(ctx context.Context, tag string, chunk []byte, now time.Time, b *batch) error {
	src := in.cfg.SourceName
	if src == "" {
		src = tag
	}
	var rec Record
	var records int64
	defer func() { in.records.Add(records) }()
	dec := NewDecoder(chunk)
	for {
		more, err := dec.Next(&rec)
		if errors.Is(err, ErrCorrupt) {
			// Nothing after this point can be delimited: keep the bytes
			// and deliver what came before.
			b.corrupt = true
			b.letters = append(b.letters, outputs.DeadLetter{Time: now, Source: src, Error: err.Error(), Payload: dec.Rest()})
			return nil
		}
		if !more {
			return nil
		}
		records++
		if err != nil {
			b.letters = append(b.letters, in.letter(now, src, &rec, err.Error()))
			continue
		}
		var reason string
		if reason, err = in.transform(ctx, src, tag, &rec, b); err != nil {
			return err
		}
		if reason != "" {
			b.letters = append(b.letters, in.letter(now, src, &rec, reason))
		}
	}
}

// transform turns one record into events. reason is non-empty when the
// record (or part of it) must be dead-lettered; err only when the
// transformer is unavailable and the chunk must be retried.
func (in *Instance) transform(ctx context.Context, src, tag string, rec *Record, b *batch) (reason string, err error) {
	if msgp.NextType(rec.Body) != msgp.MapType {
		return "record is not a map but " + kind(rec.Body), nil
	}
	input := transformers.Input{Meta: transformers.Meta{SourceName: src, ReceivedAt: rec.Time}}
	if k := in.cfg.PayloadKey; k == "" {
		input.Msgpack = rec.Body
	} else {
		v, found, err := member(rec.Body, k)
		switch {
		case err != nil:
			return fmt.Sprintf("Payload_Key %q: %v", k, err), nil
		case !found || msgp.NextType(v) == msgp.NilType:
			return fmt.Sprintf("Payload_Key %q: missing from the record", k), nil
		}
		switch msgp.NextType(v) {
		// The JSON text aliases the chunk, which outlives the transform;
		// the events copy what they keep.
		case msgp.StrType:
			input.Body, _, _ = msgp.ReadStringZC(v)
		case msgp.BinType:
			input.Body, _, _ = msgp.ReadBytesZC(v)
		case msgp.MapType:
			input.Msgpack = v
		default:
			return fmt.Sprintf("Payload_Key %q: holds %s, not a JSON string or a map", k, kind(v)), nil
		}
	}
	// The events go straight into the batch. The Result lives there too:
	// passed to an interface method, it would escape from here.
	res := &b.res
	*res = transformers.Result{Events: b.events}
	first := len(b.events)
	terr := in.tr.Transform(ctx, input, res)
	if terr != nil && errors.Is(terr, transformers.ErrUnavailable) {
		return "", terr
	}
	b.events = res.Events
	evs := res.Events[first:]
	var n int64
	for _, k := range res.Skipped {
		n += int64(k)
	}
	in.skipped.Add(n)
	errs := res.Errors
	if terr != nil {
		errs = append([]*transformers.Error{transformers.AsError(res.Format, terr)}, errs...)
	}
	switch {
	case len(errs) > 0:
		reason = errs[0].Error()
		if len(errs) > 1 {
			reason = fmt.Sprintf("%s (and %d more errors)", reason, len(errs)-1)
		}
	case len(evs) == 0 && n == 0:
		reason = "the record holds no audit event"
	}
	for i := range evs {
		in.enrich(&evs[i], tag, rec.Meta, b)
	}
	return reason, nil
}

// enrich adds the configured labels, the tag and the v2 metadata; labels
// the transformer set win. Events with neither metadata nor labels of
// their own share one set per chunk.
func (in *Instance) enrich(ev *auditpipe.Event, tag string, meta map[string]any, b *batch) {
	if len(meta) == 0 && len(ev.Labels) == 0 {
		if b.labels == nil {
			b.labels = in.labelSet(tag, nil, nil)
		}
		ev.Labels = b.labels
		return
	}
	ev.Labels = in.labelSet(tag, meta, ev.Labels)
}

// labelSet is a new map of the configured labels, the tag, the metadata
// and own, in rising precedence.
func (in *Instance) labelSet(tag string, meta map[string]any, own map[string]string) map[string]string {
	l := make(map[string]string, len(in.labels)+1+len(meta)+len(own))
	maps.Copy(l, in.labels)
	l[TagLabel] = tag
	for k, v := range meta {
		l[MetaLabelPrefix+k] = labelValue(v)
	}
	maps.Copy(l, own)
	return l
}

func labelValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	b, err := json.Marshal(jsonable(v))
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// jsonable turns []byte strings into strings, so dead letters and labels
// show text rather than base64.
func jsonable(v any) any {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = jsonable(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = jsonable(e)
		}
		return a
	}
	return v
}

// letter is the dead letter for a record: the record as JSON, for whoever
// reads the store (the msgpack bytes when it cannot be decoded).
func (in *Instance) letter(now time.Time, src string, rec *Record, reason string) outputs.DeadLetter {
	payload := rec.Raw
	if body, err := rec.Value(); err == nil && rec.Body != nil {
		doc := map[string]any{"time": rec.Time, "record": jsonable(body)}
		if rec.Meta != nil {
			doc["metadata"] = jsonable(rec.Meta)
		}
		if b, err := json.Marshal(doc); err == nil {
			payload = b
		}
	}
	return outputs.DeadLetter{Time: now, Source: src, Error: reason, Payload: payload}
}

// Close closes the outputs and the dead-letter store. Flushes after Close
// answer Retry.
func (in *Instance) Close(ctx context.Context) error {
	if in.closed.Swap(true) {
		return nil
	}
	return errors.Join(in.set.Close(ctx), in.dlq.Close())
}
