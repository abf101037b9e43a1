package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/outputs"
)

// Sender delivers events; *outputs.Deliverer is one. When it returns an
// *outputs.UndeliveredError, the events it lists were not delivered and
// all others were; any other error means none were.
type Sender interface {
	Deliver(ctx context.Context, events []auditpipe.Event) (outputs.Report, error)
}

// ReplayReport says what Replay did.
type ReplayReport struct {
	// Selected letters were offered to the sender; Delivered of them were
	// accepted and removed from the store.
	Selected, Delivered int
	// Unreplayable letters were selected but hold no event (a payload that
	// was never transformed) or an event that no longer decodes; they stay.
	Unreplayable int
	// Busy files were skipped because a running store is writing them.
	Busy int
}

// Replay offers every letter in dir that selected accepts to send, file by
// file, and removes from the store the ones delivered. Letters that fail
// again stay where they were, byte for byte; a file left empty is removed.
// The sender should not dead-letter into the same store: give it a
// Deliverer without DeadLetters so permanent failures come back.
func Replay(ctx context.Context, dir string, selected func(*outputs.DeadLetter) bool, send Sender) (ReplayReport, error) {
	var rep ReplayReport
	files, err := Files(dir)
	if err != nil {
		return rep, err
	}
	var errs []error
	for _, path := range files {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if err := replayFile(ctx, path, selected, send, &rep); err != nil {
			errs = append(errs, err)
		}
	}
	return rep, errors.Join(errs...)
}

func replayFile(ctx context.Context, path string, selected func(*outputs.DeadLetter) bool, send Sender, rep *ReplayReport) error {
	lock, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		rep.Busy++
		return nil
	}
	ents, bad, err := readFile(path)
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		// A file with lines that are not letters is left alone: rewriting
		// it would drop them.
		return errors.Join(bad...)
	}
	var (
		events []auditpipe.Event
		sent   []int // index into ents of each event
	)
	gone := make([]bool, len(ents))
	for i := range ents {
		e := &ents[i]
		if !selected(&e.DeadLetter) {
			continue
		}
		rep.Selected++
		var ev auditpipe.Event
		if len(e.Event) == 0 || json.Unmarshal(e.Event, &ev) != nil {
			rep.Unreplayable++
			continue
		}
		events = append(events, ev)
		sent = append(sent, i)
	}
	if len(events) == 0 {
		return nil
	}
	left := map[string]int{}
	_, derr := send.Deliver(ctx, events)
	if derr != nil {
		var ue *outputs.UndeliveredError
		if errors.As(derr, &ue) {
			for _, ev := range ue.Events {
				left[ev.ID]++
			}
		} else {
			for _, ev := range events {
				left[ev.ID]++
			}
		}
	}
	for k, i := range sent {
		if left[events[k].ID] > 0 {
			left[events[k].ID]--
			continue
		}
		gone[i] = true
		rep.Delivered++
	}
	var keep [][]byte
	for i := range ents {
		if !gone[i] {
			keep = append(keep, ents[i].raw)
		}
	}
	if err := rewrite(path, keep); err != nil {
		return err
	}
	if derr != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), derr)
	}
	return nil
}

// rewrite replaces path with lines atomically, or removes it when no line
// is left.
func rewrite(path string, lines [][]byte) error {
	dir := filepath.Dir(path)
	if len(lines) == 0 {
		if err := os.Remove(path); err != nil {
			return err
		}
		return syncDir(dir)
	}
	tmp, err := os.CreateTemp(dir, ".replay-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	for _, l := range lines {
		if _, err := tmp.Write(append(l, '\n')); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}
