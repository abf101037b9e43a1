package external

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/status"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/external/proto"
)

// Payload is one payload as a front door received it, handed to a plugin's
// transform function.
type Payload struct {
	// Body is the payload exactly as received: one JSON document, NDJSON,
	// or whatever the source sends. Already-decoded payloads (Fluent Bit
	// records) arrive as their JSON encoding, NDJSON for several records.
	Body []byte
	// Headers are the request headers of HTTP front doors; nil otherwise.
	Headers http.Header
	// SourceName is the configured source (sidecar source name, Fluent
	// Bit tag).
	SourceName string
	// ReceivedAt is when the front door received the payload.
	ReceivedAt time.Time
}

// TransformFunc maps one payload to events. It is called concurrently (the
// payloads of a batch are mapped in parallel), so it must be safe for
// concurrent use.
//
// Before the events leave the plugin, the SDK fills what the front door
// knows and the function need not (as the built-in formats' Finish does):
// schema_version when empty, observed_time (ReceivedAt) when zero,
// source.name (SourceName) when empty, raw_sha256 (of the whole payload)
// when empty, and UTC times. Then every event must pass Event.Validate; an
// invalid one becomes a per-item error of kind transformers.ErrInvalidEvent
// carrying the validation message, and the host dead-letters it.
//
// Errors: a nil error keeps every event. A non-nil error made only of
// *transformers.Error values with Item >= 0 (one, or several joined with
// errors.Join) reports those items as failed and keeps the events returned
// alongside: one bad item never drops the others. Any other error fails
// the payload as a whole, and the events returned with it are dropped (the
// front door rejects or dead-letters the whole payload, so nothing is
// lost). A panic fails only the payload it happened on, with kind
// ErrPanic; the plugin keeps serving.
type TransformFunc func(ctx context.Context, in Payload) ([]auditpipe.Event, error)

// notAPlugin is what a plugin prints when it is run by hand.
const notAPlugin = `%s: this is an auditpipe transformer plugin; it is started by auditpipe, not by hand: see https://github.com/auditpipe/auditpipe/tree/main/examples/transformer-plugin
Point a sidecar source at it (format: external, transformer: {path: %s}); to try the transform function, call it from a Go test.
`

// Serve is a plugin's main: it serves fn to the auditpipe process that
// started this executable and returns when that process is done with it
// (main should then return). Started by hand (without the handshake
// cookie auditpipe sets) it prints an explanation to stderr and exits with
// status 2.
//
// Nothing may write to stdout before Serve: go-plugin's handshake is the
// first line there. Logs go to stderr, which the host reads: the standard
// log package already writes there, and Serve makes slog's default logger
// write JSON lines there that the host re-logs at their level. Serve owns
// the process, so it sets that default.
func Serve(fn TransformFunc) {
	if os.Getenv(MagicCookieKey) != MagicCookieValue {
		exe := filepath.Base(os.Args[0])
		fmt.Fprintf(os.Stderr, notAPlugin, exe, os.Args[0])
		os.Exit(2)
	}
	// The original stderr, before go-plugin redirects os.Stderr into its
	// stdio stream: the host parses lines on this one as log entries.
	stderr := os.Stderr
	logger := slog.New(newPluginLogHandler(stderr))
	slog.SetDefault(logger)
	srv := &server{fn: fn, log: logger}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  handshake(),
		VersionedPlugins: versionedPlugins(srv),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			pool := bufferPool()
			opts = append(opts, grpc.MaxRecvMsgSize(maxMessageBytes), grpc.MaxSendMsgSize(maxMessageBytes),
				grpc.InitialWindowSize(flowWindow), grpc.InitialConnWindowSize(flowWindow),
				grpc.ReadBufferSize(ioBuffer), grpc.WriteBufferSize(ioBuffer),
				experimental.BufferPool(pool), grpc.ForceServerCodecV2(codec{pool}))
			return grpc.NewServer(opts...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:       "plugin",
			Output:     stderr,
			Level:      hclog.Info,
			JSONFormat: true,
		}),
	})
}

// newPluginLogHandler writes slog records as the JSON lines go-plugin's
// host parses (hclog's keys: @level, @message, @timestamp), so that they
// reach the host's logger at their own level.
func newPluginLogHandler(w io.Writer) slog.Handler {
	return slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				return slog.String("@timestamp", a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))
			case slog.LevelKey:
				lv, _ := a.Value.Any().(slog.Level)
				return slog.String("@level", hclogLevelName(lv))
			case slog.MessageKey:
				return slog.String("@message", a.Value.String())
			}
			return a
		},
	})
}

func hclogLevelName(l slog.Level) string {
	switch {
	case l < slog.LevelDebug:
		return "trace"
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	}
	return "error"
}

// server is the plugin's end of the protocol.
type server struct {
	proto.UnimplementedTransformerServer
	fn  TransformFunc
	log *slog.Logger
}

func (s *server) Transform(ctx context.Context, req *proto.TransformRequest) (*proto.TransformResponse, error) {
	payloads := req.GetPayloads()
	resp := &proto.TransformResponse{Results: make([]*proto.Result, len(payloads))}
	// The payloads of a batch are mapped in parallel, on as many cores as
	// the plugin has: the host waits for the whole batch, so this is what
	// makes a batch fast. Each worker encodes its events into one buffer
	// of its own; the results hold slices of it.
	workers := min(runtime.GOMAXPROCS(0), len(payloads))
	// An event's JSON is usually within twice its payload plus 1 KiB;
	// sizing the buffers so saves growing them event after event.
	size := 0
	for _, p := range payloads {
		size += 2*len(p.GetBody()) + 1024
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 0, size/workers+1024)
			for {
				i := int(next.Add(1)) - 1
				if i >= len(payloads) || ctx.Err() != nil {
					return
				}
				resp.Results[i], buf = s.transform(ctx, payloads[i], buf)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		// The host gave up (timeout) or went away: it retries the whole
		// batch, so a partial answer would be of no use.
		return nil, status.FromContextError(err).Err()
	}
	return resp, nil
}

// transform runs the function on one payload and finishes its events.
func (s *server) transform(ctx context.Context, p *proto.Payload, buf []byte) (*proto.Result, []byte) {
	in := payloadFromProto(p)
	res := &proto.Result{}
	events, err := s.call(ctx, in)
	if err != nil {
		items, whole := splitErrors(err)
		if whole != nil {
			res.PayloadError = errorToProto(whole)
			return res, buf
		}
		for _, e := range items {
			res.Errors = append(res.Errors, errorToProto(e))
		}
	}
	var rawSHA string
	for i := range events {
		ev := &events[i]
		if ev.RawSHA256 == "" {
			if rawSHA == "" {
				rawSHA = auditpipe.RawSHA256(in.Body)
			}
			ev.RawSHA256 = rawSHA
		}
		finish(ev, in)
		if verr := ev.Validate(); verr != nil {
			res.Errors = append(res.Errors, &proto.ItemError{
				Format:  Format,
				Item:    int32(i),
				Path:    "$",
				Kind:    proto.Kind_KIND_INVALID_EVENT,
				Message: oneLine(verr.Error()),
			})
			continue
		}
		start := len(buf)
		buf = eventjson.Append(buf, ev)
		res.Events = append(res.Events, buf[start:len(buf):len(buf)])
	}
	return res, buf
}

// call runs the function, turning a panic into an error of kind ErrPanic
// for this payload only.
func (s *server) call(ctx context.Context, in Payload) (events []auditpipe.Event, err error) {
	defer func() {
		if r := recover(); r != nil {
			// The stack goes to the plugin's log (the host's, at error
			// level); the payload's error carries only the panic value.
			s.log.Error("transform function panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			events = nil
			err = &transformers.Error{Format: Format, Item: -1, Path: "$", Kind: ErrPanic, Detail: fmt.Sprint(r)}
		}
	}()
	return s.fn(ctx, in)
}

// finish fills what the front door knows, as transformers.Finish does for
// the built-in formats.
func finish(ev *auditpipe.Event, in Payload) {
	if ev.SchemaVersion == "" {
		ev.SchemaVersion = auditpipe.SchemaVersion
	}
	if ev.ObservedTime.IsZero() {
		ev.ObservedTime = in.ReceivedAt
		if ev.ObservedTime.IsZero() {
			ev.ObservedTime = time.Now()
		}
	}
	ev.ObservedTime = ev.ObservedTime.UTC()
	ev.Time = ev.Time.UTC()
	if ev.Source.Name == "" {
		ev.Source.Name = in.SourceName
	}
}

// splitErrors sorts the function's error into per-item errors and, if any
// part of it is not an item error, the payload-level error.
func splitErrors(err error) (items []*transformers.Error, whole *transformers.Error) {
	leaves := flatten(nil, err)
	var other []string
	for _, l := range leaves {
		var te *transformers.Error
		if !errors.As(l, &te) || te.Item < 0 && len(leaves) > 1 {
			other = append(other, l.Error())
			continue
		}
		if te.Format == "" {
			cp := *te
			cp.Format = Format
			te = &cp
		}
		if te.Item < 0 {
			return nil, te
		}
		items = append(items, te)
	}
	if len(other) > 0 {
		return nil, &transformers.Error{Format: Format, Item: -1, Path: "$", Kind: transformers.ErrValue, Detail: oneLine(strings.Join(other, "; "))}
	}
	return items, nil
}

// flatten appends the leaves of errors.Join trees to dst.
func flatten(dst []error, err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		if err != nil {
			dst = append(dst, err)
		}
		return dst
	}
	for _, e := range j.Unwrap() {
		dst = flatten(dst, e)
	}
	return dst
}

// oneLine joins the lines of a joined error, so that it stays one log or
// response line.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

func payloadFromProto(p *proto.Payload) Payload {
	in := Payload{Body: p.GetBody(), SourceName: p.GetSourceName()}
	if hs := p.GetHeaders(); len(hs) > 0 {
		in.Headers = make(http.Header, len(hs))
		for _, h := range hs {
			in.Headers[h.GetName()] = append(in.Headers[h.GetName()], h.GetValues()...)
		}
	}
	if ns := p.GetReceivedAtUnixNano(); ns != 0 {
		in.ReceivedAt = time.Unix(0, ns).UTC()
	}
	return in
}
