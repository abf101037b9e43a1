package inflight

import (
	"context"
	"errors"
	"testing"
)

func TestCloseWaitsForWrites(t *testing.T) {
	g := New()
	if !g.Enter() {
		t.Fatal("an open gate refused a write")
	}
	closed := make(chan error, 1)
	go func() { closed <- g.Close(context.Background()) }()
	select {
	case <-closed:
		t.Fatal("Close returned with a write in progress")
	case <-g.Stopped().Done():
		t.Fatal("Close cancelled a write it could wait for")
	default:
	}
	g.Leave()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if g.Enter() {
		t.Error("a closed gate admitted a write")
	}
	if err := g.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseCancelsWhenItsContextEnds(t *testing.T) {
	g := New()
	g.Enter()
	go func() {
		<-g.Stopped().Done() // the write's request is cancelled...
		g.Leave()            // ...and the write returns
	}()
	why := errors.New("shutdown deadline")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(why)
	if err := g.Close(ctx); !errors.Is(err, why) {
		t.Fatalf("Close = %v, want the context's cause", err)
	}
}
