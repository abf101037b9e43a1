// Command testplugin is the external transformer the external package's
// tests drive through the host. Each line of a payload is one item, and
// what it says is what the plugin does with it:
//
//	panic    panic (the payload fails, the plugin keeps serving)
//	invalid  return an event that fails Validate
//	fail     fail the payload as a whole
//	itemerr  report a per-item error for this line
//	block    log "blocking" and never return (the test kills the process)
//	block-once  block, unless $TESTPLUGIN_BLOCK_ONCE (a file) exists:
//	         it is created first, so a retry after a restart goes through
//	exit     exit the process mid-call
//	stdout   write a line to stdout, then map as usual
//	anything else becomes an event whose id is the line
//
// TESTPLUGIN_MODE=hang makes every call hang instead (a wedged plugin).
// The events' source.type is $TESTPLUGIN_SOURCE_TYPE (default "test") and
// their action the first argument plus "echo", so tests can check that
// env and args reach the plugin.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/external"
)

func main() {
	sourceType := os.Getenv("TESTPLUGIN_SOURCE_TYPE")
	if sourceType == "" {
		sourceType = "test"
	}
	prefix := ""
	if len(os.Args) > 1 {
		prefix = os.Args[1]
	}
	hang := os.Getenv("TESTPLUGIN_MODE") == "hang"
	external.Serve(func(ctx context.Context, in external.Payload) ([]auditpipe.Event, error) {
		if hang {
			select {}
		}
		var events []auditpipe.Event
		var errs []error
		for i, line := range bytes.Split(bytes.TrimSpace(in.Body), []byte("\n")) {
			switch string(line) {
			case "panic":
				panic("testplugin: told to panic")
			case "invalid":
				events = append(events, auditpipe.Event{ID: "invalid", Action: "x"})
				continue
			case "fail":
				return nil, errors.New("testplugin: told to fail")
			case "itemerr":
				errs = append(errs, &transformers.Error{Item: i, Line: i + 1, Path: "$", Kind: transformers.ErrMissing, Expected: "something"})
				continue
			case "block":
				slog.Info("blocking")
				select {}
			case "block-once":
				if f, err := os.OpenFile(os.Getenv("TESTPLUGIN_BLOCK_ONCE"), os.O_CREATE|os.O_EXCL, 0o600); err == nil {
					_ = f.Close()
					slog.Info("blocking")
					select {}
				}
			case "exit":
				os.Exit(3)
			case "stdout":
				fmt.Println("testplugin: hello on stdout")
			}
			ev := auditpipe.Event{
				ID:        string(line),
				Time:      time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
				Source:    auditpipe.Source{Type: sourceType, Format: "testplugin"},
				Action:    prefix + "echo",
				Operation: auditpipe.OperationOther,
				Outcome:   auditpipe.OutcomeSuccess,
				Actor:     auditpipe.Actor{Type: auditpipe.ActorSystem},
			}
			if ct := in.Headers.Get("Content-Type"); ct != "" {
				ev.Labels = map[string]string{"content_type": ct}
			}
			events = append(events, ev)
		}
		return events, errors.Join(errs...)
	})
}
