package kafka

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	fsasl "github.com/twmb/franz-go/pkg/sasl"
)

// mechanism returns the kafka-go SASL mechanism for s, nil when SASL is
// off.
//
// SCRAM comes from franz-go (a module the project already requires, and
// whose SCRAM needs only the standard library; see internal/kafkasasl)
// behind kafka-go's interface: kafka-go's own sasl/scram package depends
// on github.com/xdg-go/scram, a module the project does not carry.
func mechanism(s SASLConfig) sasl.Mechanism {
	switch strings.ToLower(s.Mechanism) {
	case SASLPlain:
		return plain.Mechanism{Username: s.Username, Password: s.Password}
	case SASLScramSHA256, SASLScramSHA512:
		return scramMechanism{s.Franz()}
	}
	return nil
}

// The outcomes of the last SASL exchange, for authTracker.
const (
	authNone int32 = iota
	authPending
	authOK
)

// authTracker wraps a mechanism to remember how the last exchange ended.
// A broker may answer bad credentials by closing the connection (kafka-go
// then reports only an EOF): an exchange that started and never finished
// tells classify what that EOF means.
type authTracker struct {
	m     sasl.Mechanism
	state *atomic.Int32
}

func (a authTracker) Name() string { return a.m.Name() }

func (a authTracker) Start(ctx context.Context) (sasl.StateMachine, []byte, error) {
	a.state.Store(authPending)
	sm, ir, err := a.m.Start(ctx)
	if err != nil {
		return nil, nil, err
	}
	return trackedSession{sm, a.state}, ir, nil
}

type trackedSession struct {
	sm    sasl.StateMachine
	state *atomic.Int32
}

func (s trackedSession) Next(ctx context.Context, challenge []byte) (bool, []byte, error) {
	done, resp, err := s.sm.Next(ctx, challenge)
	if done && err == nil {
		s.state.Store(authOK)
	}
	return done, resp, err
}

// scramMechanism runs a franz-go SASL mechanism as a kafka-go one. Both
// exchange the same messages: a first client message, then challenges each
// answered until the mechanism says it is done.
type scramMechanism struct{ m fsasl.Mechanism }

func (s scramMechanism) Name() string { return s.m.Name() }

func (s scramMechanism) Start(ctx context.Context) (sasl.StateMachine, []byte, error) {
	var host string
	if md := sasl.MetadataFromContext(ctx); md != nil {
		host = md.Host
	}
	sess, first, err := s.m.Authenticate(ctx, host)
	if err != nil {
		return nil, nil, err
	}
	return scramSession{sess}, first, nil
}

type scramSession struct{ s fsasl.Session }

func (s scramSession) Next(_ context.Context, challenge []byte) (bool, []byte, error) {
	return s.s.Challenge(challenge)
}
