package main

import "C"

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
	"unsafe"

	"github.com/fluent/fluent-bit-go/output"

	"github.com/auditpipe/auditpipe/plugin/flb"
)

// instances is the table of [OUTPUT] sections. It must be package state:
// Fluent Bit calls the exported C functions with nothing but its own
// pointers, so the only way from a flush back to its Instance is an id
// stored with FLBPluginSetContext and looked up here. plugin/flb itself
// keeps no package-level state.
var instances = struct {
	sync.Mutex
	next int
	byID map[int]entry
}{byID: map[int]entry{}}

// entry is one initialised [OUTPUT] section and its logger.
type entry struct {
	inst *flb.Instance
	log  *slog.Logger
}

// closeTimeout bounds the work of exit, so Fluent Bit's shutdown is not
// held for ever by an unreachable destination.
const closeTimeout = 30 * time.Second

//export FLBPluginRegister
func FLBPluginRegister(def unsafe.Pointer) int {
	return output.FLBPluginRegister(def, "auditpipe", "auditpipe: audit events to Kafka, Elasticsearch, S3, webhooks or files")
}

//export FLBPluginInit
func FLBPluginInit(plugin unsafe.Pointer) int {
	cfg, err := flb.ParseConfig(func(k string) string { return output.FLBPluginConfigKey(plugin, k) })
	if err != nil {
		fmt.Fprintf(os.Stderr, "[error] [output:auditpipe] invalid configuration:\n%v\n", indent(err.Error()))
		return output.FLB_ERROR
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level(cfg.LogLevel)})).With("plugin", "auditpipe")
	inst, err := flb.New(context.Background(), cfg, logger)
	if err != nil {
		fmt.Fprintf(os.Stderr, "[error] [output:auditpipe] %v\n", err)
		return output.FLB_ERROR
	}
	instances.Lock()
	instances.next++
	id := instances.next
	instances.byID[id] = entry{inst, logger}
	instances.Unlock()
	output.FLBPluginSetContext(plugin, id)
	// The id ties the closing line to this one; a hot reload closes these
	// instances and starts new ones, with new ids, in the same process.
	logger.Info("instance started", "instance", id, "format", cfg.Format)
	return output.FLB_OK
}

func indent(s string) string {
	out := "  "
	for i := 0; i < len(s); i++ {
		out += string(s[i])
		if s[i] == '\n' {
			out += "  "
		}
	}
	return out
}

func level(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

func lookup(ctx unsafe.Pointer) *flb.Instance {
	id, _ := output.FLBPluginGetContext(ctx).(int)
	instances.Lock()
	defer instances.Unlock()
	return instances.byID[id].inst
}

// only returns the instance when there is exactly one: the context-less
// entry points (Fluent Bit before 1.x's FlushCtx) cannot tell them apart.
func only() *flb.Instance {
	instances.Lock()
	defer instances.Unlock()
	if len(instances.byID) != 1 {
		return nil
	}
	for _, e := range instances.byID {
		return e.inst
	}
	return nil
}

func flush(inst *flb.Instance, data unsafe.Pointer, length C.int, tag *C.char) int {
	if inst == nil {
		fmt.Fprintln(os.Stderr, "[error] [output:auditpipe] flush for an instance that is not initialised")
		return output.FLB_ERROR
	}
	// A copy, because Fluent Bit frees the chunk when flush returns, into
	// a pooled buffer: chunks are up to a few MiB, and a fresh allocation
	// per flush costs page faults and GC work for nothing. Flush keeps no
	// view of the chunk once it returns, so the buffer can be reused.
	bp := chunks.Get().(*[]byte)
	n := int(length)
	if cap(*bp) < n {
		*bp = make([]byte, n)
	}
	chunk := (*bp)[:n]
	copy(chunk, unsafe.Slice((*byte)(data), n))
	code := inst.Flush(context.Background(), C.GoString(tag), chunk)
	clear(chunk) // no audit data lingers in a pooled buffer
	chunks.Put(bp)
	return int(code)
}

// chunks holds the buffers flush copies chunks into.
var chunks = sync.Pool{New: func() any { return new([]byte) }}

//export FLBPluginFlush
func FLBPluginFlush(data unsafe.Pointer, length C.int, tag *C.char) int {
	return flush(only(), data, length, tag)
}

//export FLBPluginFlushCtx
func FLBPluginFlushCtx(ctx, data unsafe.Pointer, length C.int, tag *C.char) int {
	return flush(lookup(ctx), data, length, tag)
}

// closeInstance runs at Fluent Bit's exit callback, after its last flush
// of the instance (at shutdown, and for the old instances of a hot
// reload). The closing line is the user's evidence that exit ran and what
// the instance did over its life.
func closeInstance(id int, e entry) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if err := e.inst.Close(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "[error] [output:auditpipe] instance %d: close: %v\n", id, err)
	}
	s := e.inst.Stats()
	e.log.Info("instance closed", "instance", id, "records", s.Records, "events", s.Events,
		"skipped", s.Skipped, "dead_lettered", s.DeadLettered, "flush_ok", s.OK, "flush_retry", s.Retry, "flush_error", s.Error)
}

//export FLBPluginExitCtx
func FLBPluginExitCtx(ctx unsafe.Pointer) int {
	id, _ := output.FLBPluginGetContext(ctx).(int)
	instances.Lock()
	e, ok := instances.byID[id]
	delete(instances.byID, id)
	instances.Unlock()
	if ok {
		closeInstance(id, e)
	}
	return output.FLB_OK
}

//export FLBPluginExit
func FLBPluginExit() int {
	instances.Lock()
	all := instances.byID
	instances.byID = map[int]entry{}
	instances.Unlock()
	for id, e := range all {
		closeInstance(id, e)
	}
	return output.FLB_OK
}

func main() {}
