package external

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"

	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/external/proto"
)

// Format is the format name of every external transformer: what
// Result.Format and the errors' Format say, and the sidecar's and Fluent
// Bit plugin's format key.
const Format = "external"

// ProtocolVersion is the newest protocol this package speaks: 1, the batch
// protocol of transformers/external/proto. go-plugin negotiates the
// highest version both sides know, so a host can keep serving version-1
// plugins after a version 2 exists.
const ProtocolVersion = 1

// The handshake cookie. It is not a secret: it only lets a plugin tell that
// auditpipe started it, so that one run by hand can say so instead of
// waiting silently for a host.
const (
	MagicCookieKey   = "AUDITPIPE_TRANSFORMER_PLUGIN"
	MagicCookieValue = "6d1f0c2e9a7b4e53b1f8c4a2d9e7f305"
)

// pluginName is the key of the transformer in go-plugin's plugin set.
const pluginName = "transformer"

// maxMessageBytes bounds one gRPC message either way. gRPC's default of 4
// MiB is too small for a batch of large payloads; batches are also split
// at maxRequestBytes of bodies, so only a single huge payload (or its
// events) comes near this.
const (
	maxMessageBytes = 256 << 20
	maxRequestBytes = 32 << 20
)

// flowWindow is gRPC's flow-control window, per stream and connection.
// gRPC starts at 64 KiB and grows it as it measures the link; the answer
// to one batch of 100 payloads is already a few hundred KiB, and each
// window update is a round trip between two processes. Over a local
// socket to one peer, a large fixed window costs nothing.
const flowWindow = 16 << 20

// ioBuffer is the size of gRPC's socket read and write buffers (32 KiB by
// default): a batch's message goes out and comes in with a few system
// calls instead of one per 32 KiB.
const ioBuffer = 1 << 20

// bufferPool is the gRPC buffer pool of both ends, with a size class at
// every power of two from 256 bytes to 64 MiB (gRPC's default jumps from 32
// KiB to 1 MiB), so that a buffer lent for a message is at most twice its
// size. The pool zeroes what it lends.
func bufferPool() mem.BufferPool {
	exps := make([]uint8, 0, 19)
	for e := uint8(8); e <= 26; e++ {
		exps = append(exps, e)
	}
	p, err := mem.NewBinaryTieredBufferPool(exps...)
	if err != nil {
		// Only for exponents beyond the word size; these are not.
		return mem.DefaultBufferPool()
	}
	return p
}

// Sentinel errors; test with errors.Is.
var (
	// ErrUnavailable is wrapped by every error a call to the plugin
	// returns as a whole: it crashed, hung past the timeout, was being
	// restarted or closed. Nothing was mapped; the caller retries the
	// whole batch later (sidecar: 503, Fluent Bit: FLB_RETRY). It is
	// transformers.ErrUnavailable, so front doors need not know which
	// transformer they run.
	ErrUnavailable = transformers.ErrUnavailable
	// ErrPanic is the kind of the error a payload gets when the transform
	// function panicked on it. It wraps transformers.ErrValue: retrying
	// the same payload would panic again.
	ErrPanic error = panicKind{}
	// ErrClosed is wrapped (together with ErrUnavailable) by calls made
	// after Close.
	ErrClosed = errors.New("external transformer closed")
)

type panicKind struct{}

func (panicKind) Error() string { return "transform panicked" }
func (panicKind) Unwrap() error { return transformers.ErrValue }

// handshake is the go-plugin handshake both sides use.
func handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  ProtocolVersion,
		MagicCookieKey:   MagicCookieKey,
		MagicCookieValue: MagicCookieValue,
	}
}

// versionedPlugins is the plugin set of every protocol version. srv is the
// plugin's implementation, nil on the host.
func versionedPlugins(srv proto.TransformerServer) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		1: {pluginName: &grpcPlugin{server: srv}},
	}
}

// grpcPlugin binds the generated service to go-plugin.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	server proto.TransformerServer
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	proto.RegisterTransformerServer(s, p.server)
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &rpcClient{rpc: proto.NewTransformerClient(c), health: grpc_health_v1.NewHealthClient(c)}, nil
}

// rpcClient is the host's end of one plugin process's connection.
type rpcClient struct {
	rpc    proto.TransformerClient
	health grpc_health_v1.HealthClient
}

// ping asks the plugin's gRPC health service, which go-plugin registers in
// every plugin, whether it serves. Unlike go-plugin's own Ping it honours
// ctx, so a wedged process cannot hang a health check.
func (c *rpcClient) ping(ctx context.Context) error {
	resp, err := c.health.Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: plugin.GRPCServiceName})
	if err != nil {
		return err
	}
	if resp.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
		return errors.New("plugin health: " + resp.GetStatus().String())
	}
	return nil
}

// kinds pairs the wire kinds with the sentinel errors, in the order
// kindToProto tests them: ErrPanic before ErrValue, which it wraps.
var kinds = [...]struct {
	wire proto.Kind
	err  error
}{
	{proto.Kind_KIND_PANIC, ErrPanic},
	{proto.Kind_KIND_SYNTAX, transformers.ErrSyntax},
	{proto.Kind_KIND_INVALID_UTF8, transformers.ErrInvalidUTF8},
	{proto.Kind_KIND_TOO_LARGE, transformers.ErrTooLarge},
	{proto.Kind_KIND_TOO_DEEP, transformers.ErrTooDeep},
	{proto.Kind_KIND_TOO_MANY_ITEMS, transformers.ErrTooManyItems},
	{proto.Kind_KIND_STRING_TOO_LONG, transformers.ErrStringTooLong},
	{proto.Kind_KIND_TYPE, transformers.ErrType},
	{proto.Kind_KIND_MISSING, transformers.ErrMissing},
	{proto.Kind_KIND_VALUE, transformers.ErrValue},
	{proto.Kind_KIND_UNSUPPORTED, transformers.ErrUnsupported},
	{proto.Kind_KIND_INVALID_EVENT, transformers.ErrInvalidEvent},
}

// kindToProto is the wire kind of a sentinel; anything else is a value
// error.
func kindToProto(kind error) proto.Kind {
	if kind == nil {
		return proto.Kind_KIND_VALUE
	}
	for _, k := range kinds {
		if errors.Is(kind, k.err) {
			return k.wire
		}
	}
	return proto.Kind_KIND_VALUE
}

// kindFromProto is the sentinel of a wire kind; unknown kinds (a newer
// plugin) are value errors.
func kindFromProto(k proto.Kind) error {
	for _, kk := range kinds {
		if kk.wire == k {
			return kk.err
		}
	}
	return transformers.ErrValue
}

// errorToProto puts a transformer error on the wire.
func errorToProto(e *transformers.Error) *proto.ItemError {
	return &proto.ItemError{
		Message:  e.Detail,
		Path:     e.Path,
		Kind:     kindToProto(e.Kind),
		Item:     int32(e.Item),
		Line:     int32(e.Line),
		Expected: e.Expected,
		Got:      e.Got,
		Format:   e.Format,
	}
}

// errorFromProto is the host's transformer error for a wire error.
func errorFromProto(p *proto.ItemError) *transformers.Error {
	f := p.GetFormat()
	if f == "" {
		f = Format
	}
	return &transformers.Error{
		Format:   f,
		Item:     int(p.GetItem()),
		Line:     int(p.GetLine()),
		Path:     p.GetPath(),
		Expected: p.GetExpected(),
		Got:      p.GetGot(),
		Kind:     kindFromProto(p.GetKind()),
		Detail:   p.GetMessage(),
	}
}
