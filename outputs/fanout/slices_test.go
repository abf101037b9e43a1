package fanout_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/fanout"
	"github.com/auditpipe/auditpipe/outputs/outputstest"
)

// A route hands its output at most batch.max_events events per Write, in
// order, however many it is given: the plugin gives it whole chunks.
func TestRouteDeliversInBatches(t *testing.T) {
	built := map[string]*memory{}
	reg := registry(t, built)
	cfgs, err := decode(t, reg, `
outputs:
  - name: m
    type: memory
    memory: {capacity: 1}
    retry: {initial_interval: 1ms, max_elapsed_time: 20ms}
`)
	if err != nil {
		t.Fatal(err)
	}
	set, err := fanout.Build(context.Background(), reg, cfgs, fanout.Deps{Stdout: &strings.Builder{}})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close(context.Background())
	r, m := set.Route("m"), built["m"]
	events := outputstest.Events(10)

	rep, err := r.Deliver(context.Background(), events)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{3, 3, 3, 1}; !slices.Equal(m.sizes, want) {
		t.Errorf("write sizes %v, want %v", m.sizes, want)
	}
	if rep.Delivered != 10 || rep.Attempts != 4 {
		t.Errorf("report %+v, want 10 delivered in 4 attempts", rep)
	}
	for i := range events {
		if m.got[i].ID != events[i].ID {
			t.Fatalf("event %d is %s, want %s: order not kept", i, m.got[i].ID, events[i].ID)
		}
	}

	// The second batch fails for good: the first stays delivered, and the
	// error holds the second's events and every later one, not attempted.
	m.got, m.sizes, m.failFrom = nil, nil, 2
	_, err = r.Deliver(context.Background(), events)
	var ue *outputs.UndeliveredError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v, want an *outputs.UndeliveredError", err)
	}
	if len(m.got) != 3 {
		t.Errorf("%d events delivered, want the first batch's 3", len(m.got))
	}
	if len(ue.Events) != 7 || ue.Events[0].ID != events[3].ID || ue.Events[6].ID != events[9].ID {
		t.Errorf("undelivered: %d events, want events 3..9", len(ue.Events))
	}
	if slices.Contains(m.sizes[1:], 1) {
		t.Errorf("write sizes %v: the last batch was attempted after an earlier one failed", m.sizes)
	}
}
