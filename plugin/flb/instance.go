package flb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/internal/ingest"
	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/dlq"
	"github.com/auditpipe/auditpipe/outputs/fanout"
	"github.com/auditpipe/auditpipe/outputs/standard"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/external"
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
	cfg   *Config
	log   *slog.Logger
	stage *ingest.Stage
	set   *fanout.Set
	dlq   *dlq.Store
	// chains seal each output's deliveries when Integrity_Key_File is
	// set; nil otherwise.
	chains *chains
	// batcher maps a whole chunk's payloads in one call when the
	// transformer can (Format external); nil otherwise.
	batcher batcher
	// closeTr ends the transformer's process (Format external); nil for
	// the built-in formats, which hold nothing.
	closeTr func() error

	records, events, skipped, deadLettered atomic.Int64
	ok, retry, failed                      atomic.Int64
	closed                                 atomic.Bool

	batches sync.Pool // *batch
	// parallel bounds the pieces of one chunk in flight at once.
	parallel int
}

// batcher is a transformer whose cost is per call rather than per
// payload (the external transformer: one round trip to its process), so a
// chunk's records go to it in one call. Each result goes through the
// stage as Ingest's would.
type batcher interface {
	TransformBatch(ctx context.Context, ins []transformers.Input) ([]transformers.Result, error)
}

// New builds an Instance from cfg. A nil logger discards logs. With
// Format external it starts the transformer plugin, which Close ends.
func New(ctx context.Context, cfg *Config, logger *slog.Logger) (*Instance, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var tr transformers.Transformer
	if cfg.Format != external.Format {
		reg, err := formats.NewRegistry(cfg.Transformers)
		if err != nil {
			return nil, err
		}
		if tr, err = reg.Get(cfg.Format); err != nil {
			return nil, keyErr("Format", "%v", err)
		}
	} else if cfg.External == nil {
		return nil, keyErr("External_Path", "required with Format external")
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
	var ext *external.Transformer
	if tr == nil {
		// Started last: it is a process to end if anything else fails.
		if ext, err = external.New(ctx, *cfg.External, logger.With("component", "transformer")); err != nil {
			return nil, errors.Join(cfg.externalErr(err), set.Close(ctx), store.Close())
		}
		tr = ext
	}
	in, err := newInstance(cfg, logger, tr, set, store)
	if err == nil && ext != nil {
		in.batcher, in.closeTr = ext, ext.Close
	}
	if err == nil && cfg.Integrity.Enabled() {
		in.chains, err = openChains(cfg.Integrity, cfg.IntegrityStateDir, cfg.Integrity.InstanceName(os.LookupEnv), set.Routes, store, time.Now)
		if err != nil {
			err = keyErr("Integrity_Key_File", "%v", err)
		}
	}
	if err != nil {
		errs := []error{err, set.Close(ctx), store.Close()}
		if ext != nil {
			errs = append(errs, ext.Close())
		}
		return nil, errors.Join(errs...)
	}
	return in, nil
}

func newInstance(cfg *Config, logger *slog.Logger, tr transformers.Transformer, set *fanout.Set, store *dlq.Store) (*Instance, error) {
	in := &Instance{cfg: cfg, log: logger, set: set, dlq: store}
	var err error
	in.stage, err = ingest.New(ingest.Config{Transformer: tr, Labels: cfg.Labels,
		OnSkip: func(_ string, n int) { in.skipped.Add(int64(n)) },
		// What the plugin's dead letters and its "records dead-lettered"
		// log line have always said of a record that made nothing; the
		// stage's own error is worded for the sidecar's HTTP answer.
		Empty: "the record holds no audit event"})
	if err != nil {
		return nil, err
	}
	in.batches.New = func() any { return new(batch) }
	// Twice the cores: while one piece waits for the destination,
	// another is being transformed.
	in.parallel = 2 * runtime.GOMAXPROCS(0)
	return in, nil
}

// Stats returns the counters.
func (in *Instance) Stats() Stats {
	return Stats{Records: in.records.Load(), Events: in.events.Load(), Skipped: in.skipped.Load(),
		DeadLettered: in.deadLettered.Load(), OK: in.ok.Load(), Retry: in.retry.Load(), Error: in.failed.Load()}
}

// Flush handles one chunk: it decodes every record, transforms it,
// delivers the events and dead-letters what is not an audit payload. The
// events' strings are views into chunk, so the caller must not change it
// until Flush returns; nothing of it is kept after that (outputs copy what
// they send, and the dead-letter store writes before Flush returns), so the
// C side copies Fluent Bit's chunk into a buffer it reuses.
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

// flush goes through the sidecar's steps for a chunk: read (each record
// admitted and transformed), persist (dead letters, then delivery), and
// the answer Fluent Bit gets.
func (in *Instance) flush(ctx context.Context, tag string, chunk []byte) Code {
	if in.closed.Load() {
		return Retry
	}
	pieces := in.split(chunk)
	if len(pieces) == 1 {
		return in.flushPiece(ctx, tag, chunk)
	}
	codes := make([]Code, len(pieces))
	sem := make(chan struct{}, in.parallel)
	var wg sync.WaitGroup
	for i, p := range pieces {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			codes[i] = in.flushPiece(ctx, tag, p)
		})
	}
	wg.Wait()
	// Retry first: Fluent Bit then sends the whole chunk again, and the
	// pieces that were done are done again harmlessly (same ids).
	code := OK
	for _, c := range codes {
		if c == Retry {
			return Retry
		}
		if c == Error {
			code = Error
		}
	}
	return code
}

// pieceRecords is how many records of a chunk one goroutine reads and
// delivers at a time. A Go output's flush runs on Fluent Bit's engine
// thread (or one worker's), one chunk at a time, and a chunk holds
// thousands of records: read and delivered in one piece, the machine's
// other cores idle while the destination answers, and the plugin holds
// the whole chunk's events and encoded records at once. In pieces, one
// piece is transformed while another is on the wire, and memory is that
// of a few pieces.
const pieceRecords = 256

// split cuts chunk at record boundaries into pieces of pieceRecords
// records; a chunk whose records cannot be delimited further ends in one
// piece holding the rest, which read dead-letters as it always has. A
// sealed instance reads a chunk whole: its chains reserve positions per
// chunk, in record order.
func (in *Instance) split(chunk []byte) [][]byte {
	if in.chains != nil || in.parallel < 2 {
		return [][]byte{chunk}
	}
	var pieces [][]byte
	rest := chunk
	for len(rest) > 0 {
		n, b := 0, rest
		for n < pieceRecords && len(b) > 0 {
			next, err := skip(b)
			if err != nil {
				b = b[:0] // corrupt: the rest is one piece
				break
			}
			b = next
			n++
		}
		pieces = append(pieces, rest[:len(rest)-len(b)])
		rest = b
	}
	if len(pieces) == 0 {
		return [][]byte{chunk}
	}
	return pieces
}

// flushPiece reads and persists one piece of a chunk (all of it, when it
// is not split).
func (in *Instance) flushPiece(ctx context.Context, tag string, chunk []byte) Code {
	b := in.batches.Get().(*batch)
	defer in.putBatch(b)
	if err := in.read(ctx, tag, chunk, time.Now().UTC(), b); err != nil {
		in.log.Warn("transformer unavailable; chunk will be retried", "tag", tag, "err", err)
		return Retry
	}
	if !in.persist(ctx, tag, chunk, b) {
		return Retry
	}
	if b.corrupt {
		return Error
	}
	return OK
}

// persist keeps what the chunk made: the dead letters first, then the
// events delivered. false means the chunk must be retried; whatever it
// made is made again then (the ids make the repeat harmless).
func (in *Instance) persist(ctx context.Context, tag string, chunk []byte, b *batch) bool {
	if len(b.letters) > 0 {
		if err := in.dlq.DeadLetter(ctx, b.letters); err != nil {
			in.log.Error("dead-letter store failed; chunk will be retried", "tag", tag, "err", err)
			return false
		}
		in.deadLettered.Add(int64(len(b.letters)))
		in.log.Warn("records dead-lettered", "tag", tag, "records", len(b.letters), "first_error", b.letters[0].Error)
	}
	if events := b.res.Events; len(events) > 0 {
		deliver := in.set.Deliver
		if in.chains != nil {
			deliver = func(ctx context.Context, events []auditpipe.Event) error {
				return in.deliverSealed(ctx, tag, chunk, events)
			}
		}
		if err := deliver(ctx, events); err != nil {
			// Permanent rejections are already in the dead-letter store;
			// what is left is retryable, or the store itself failed, which
			// a later attempt may fix.
			in.log.Warn("delivery incomplete; chunk will be retried", "tag", tag, "events", len(events), "err", err)
			return false
		}
		in.events.Add(int64(len(events)))
	}
	return true
}

// batch is what one chunk makes. Batches are reused from flush to flush
// (Set.Deliver keeps nothing of the events once it returns): a chunk's
// events are its largest allocation.
type batch struct {
	// res holds the events of every record of the chunk, in order; the
	// stage resets the rest of it for each record.
	res     transformers.Result
	letters []outputs.DeadLetter
	corrupt bool
	// tagged is where the chunk's records without metadata (the common
	// case) come from: the tag. Their events that bring no labels share
	// one set. meta is the one record with metadata being read.
	tagged, meta ingest.Origin
	// inputs are the payloads of the records admitted so far, and recs
	// those records, when the transformer maps a chunk in one call.
	inputs []transformers.Input
	recs   []Record
}

// maxPooledEvents bounds the batches kept for reuse, so one huge chunk
// does not pin its memory.
const maxPooledEvents = 4096

func (in *Instance) putBatch(b *batch) {
	if cap(b.res.Events) > maxPooledEvents || cap(b.inputs) > maxPooledEvents {
		return
	}
	// Cleared: the events point into their chunk, which a pooled batch
	// would otherwise keep alive.
	clear(b.res.Events)
	b.res = transformers.Result{Events: b.res.Events[:0]}
	clear(b.letters)
	b.letters = b.letters[:0]
	b.corrupt = false
	b.tagged.Reset()
	b.meta.Reset()
	clear(b.inputs)
	b.inputs = b.inputs[:0]
	clear(b.recs)
	b.recs = b.recs[:0]
	in.batches.Put(b)
}

// read decodes every record of chunk and takes it into b: events to
// deliver, dead letters for what is not an audit payload, and the tail of
// a chunk that cannot be read on. The error is non-nil only when the
// transformer is unavailable and the chunk must be retried.
func (in *Instance) read(ctx context.Context, tag string, chunk []byte, now time.Time, b *batch) error {
	src := in.cfg.SourceName
	if src == "" {
		src = tag
	}
	b.tagged.Add(TagLabel, tag)
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
			break
		}
		if !more {
			break
		}
		records++
		if err != nil {
			b.letters = append(b.letters, letter(now, src, &rec, err.Error()))
			continue
		}
		if in.batcher != nil {
			in.queue(src, now, &rec, b)
			continue
		}
		if err := in.take(ctx, src, tag, now, &rec, b); err != nil {
			return err
		}
	}
	if in.batcher != nil {
		return in.takeBatch(ctx, tag, now, b)
	}
	return nil
}

// queue admits a record for takeBatch.
func (in *Instance) queue(src string, now time.Time, rec *Record, b *batch) {
	var input transformers.Input
	if reason := in.admit(src, rec, &input); reason != "" {
		b.letters = append(b.letters, letter(now, src, rec, reason))
		return
	}
	b.inputs = append(b.inputs, input)
	b.recs = append(b.recs, *rec)
}

// takeBatch maps the queued records in one call and takes each result as
// take takes a record's: through the stage, dead-lettered if malformed.
// The error is the batcher's: the transformer is unavailable (crashed,
// hung past its timeout, restarting), and nothing of the chunk is kept,
// so the retry makes it all again.
func (in *Instance) takeBatch(ctx context.Context, tag string, now time.Time, b *batch) error {
	if len(b.inputs) == 0 {
		return nil
	}
	results, err := in.batcher.TransformBatch(ctx, b.inputs)
	if err != nil {
		return err
	}
	for i := range results {
		rec := &b.recs[i]
		out := in.stage.Take(&b.inputs[i], b.origin(tag, rec.Meta), &results[i], &b.res)
		if out.Malformed() {
			b.letters = append(b.letters, out.Letter(now, recordJSON(rec)))
		}
	}
	return nil
}

// take takes one record as the sidecar takes a request: admitted (does it
// hold a payload), transformed by the stage, and dead-lettered if
// malformed. The error is the stage's: the transformer is unavailable.
func (in *Instance) take(ctx context.Context, src, tag string, now time.Time, rec *Record, b *batch) error {
	var input transformers.Input
	if reason := in.admit(src, rec, &input); reason != "" {
		b.letters = append(b.letters, letter(now, src, rec, reason))
		return nil
	}
	out, err := in.stage.Ingest(ctx, &input, b.origin(tag, rec.Meta), &b.res)
	if err != nil {
		return err
	}
	if out.Malformed() {
		b.letters = append(b.letters, out.Letter(now, recordJSON(rec)))
	}
	return nil
}

// admit finds the payload in a record: the record itself, or the value
// of Payload_Key. reason is non-empty when the record holds none and must
// be dead-lettered.
func (in *Instance) admit(src string, rec *Record, input *transformers.Input) (reason string) {
	if msgp.NextType(rec.Body) != msgp.MapType {
		return "record is not a map but " + kind(rec.Body)
	}
	input.Meta = transformers.Meta{SourceName: src, ReceivedAt: rec.Time}
	k := in.cfg.PayloadKey
	if k == "" {
		input.Msgpack = rec.Body
		return ""
	}
	v, found, err := member(rec.Body, k)
	switch {
	case err != nil:
		return fmt.Sprintf("Payload_Key %q: %v", k, err)
	case !found || msgp.NextType(v) == msgp.NilType:
		return fmt.Sprintf("Payload_Key %q: missing from the record", k)
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
		return fmt.Sprintf("Payload_Key %q: holds %s, not a JSON string or a map", k, kind(v))
	}
	return ""
}

// origin is where a record's events come from: the tag, and the v2
// metadata, one label per key (values that are not strings as JSON).
func (b *batch) origin(tag string, meta map[string]any) *ingest.Origin {
	if len(meta) == 0 {
		return &b.tagged // small enough to inline: the common case
	}
	return b.metaOrigin(tag, meta)
}

func (b *batch) metaOrigin(tag string, meta map[string]any) *ingest.Origin {
	b.meta.Reset()
	b.meta.Add(TagLabel, tag)
	for k, v := range meta {
		b.meta.Add(MetaLabelPrefix+k, labelValue(v))
	}
	return &b.meta
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

// letter is the dead letter for a record the stage never saw.
func letter(now time.Time, src string, rec *Record, reason string) outputs.DeadLetter {
	return outputs.DeadLetter{Time: now, Source: src, Error: reason, Payload: recordJSON(rec)}
}

// recordJSON is what a record's dead letter keeps: the record as JSON,
// with its time and metadata, for whoever reads the store (the msgpack
// bytes when it cannot be decoded). Each bad record is kept alone, not
// the chunk: Fluent Bit re-sends chunks, not records, so there is nothing
// a sender could replay, and the good records of the chunk are delivered.
func recordJSON(rec *Record) []byte {
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
	return payload
}

// Close closes the outputs and the dead-letter store, and ends the
// external transformer's process. Flushes after Close answer Retry.
func (in *Instance) Close(ctx context.Context) error {
	if in.closed.Swap(true) {
		return nil
	}
	err := errors.Join(in.set.Close(ctx), in.dlq.Close())
	if in.closeTr != nil {
		err = errors.Join(err, in.closeTr())
	}
	return err
}
