package dlq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/internal/durable"
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
	// Bad lines are not letters (a write torn by a crash); they stay in
	// their files as they are, and Walk names them.
	Bad int
}

// Replay offers every letter in dir that selected accepts to send, file by
// file, and removes from the store the ones delivered. Letters that fail
// again, and lines that are not letters, stay where they were, byte for
// byte; a file left empty is removed.
//
// A running Store may be writing to dir, even to the file being replayed:
// Replay holds a file's lock while it reads it and while it replaces it,
// not while the letters are sent, and keeps what the Store appended in
// between. Only one Replay runs in a directory at a time; another fails.
//
// The sender should not dead-letter into the same store: give it a
// Deliverer without DeadLetters so permanent failures come back.
func Replay(ctx context.Context, dir string, selected func(*outputs.DeadLetter) bool, send Sender) (ReplayReport, error) {
	var rep ReplayReport
	d, err := os.Open(dir)
	if err != nil {
		return rep, err
	}
	defer d.Close()
	// A second replay would send the letters the first is sending, and
	// the first trusts that only stores append to a file while it sends.
	if err := flock(d, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return rep, fmt.Errorf("%s: another replay is running", dir)
		}
		return rep, fmt.Errorf("lock %s: %w", dir, err)
	}
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
	f, err := openLocked(ctx, path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := readFrom(f, 0)
	flock(f, syscall.LOCK_UN)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	lines := parse(path, data)
	var (
		events []auditpipe.Event
		sent   []int // index into lines of each event
	)
	for i := range lines {
		e := &lines[i]
		if e.err != nil {
			rep.Bad++
			continue
		}
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
	gone := make([]bool, len(lines))
	delivered := 0
	for k, i := range sent {
		if left[events[k].ID] > 0 {
			left[events[k].ID]--
			continue
		}
		gone[i] = true
		delivered++
	}
	rep.Delivered += delivered
	if delivered > 0 {
		err = removeLines(f, path, data, lines, gone)
	}
	if derr != nil {
		err = errors.Join(fmt.Errorf("%s: %w", filepath.Base(path), derr), err)
	}
	return err
}

// openLocked opens the file at path and takes its exclusive lock, which
// waits for a store's write to end, unless ctx ends first.
func openLocked(ctx context.Context, path string) (*os.File, error) {
	for range 3 {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		if err := lockCtx(ctx, f); err != nil {
			return nil, err
		}
		_, ok, err := same(f, path)
		if err == nil && ok {
			return f, nil
		}
		// Replaced between the open and the lock (not by a replay of this
		// package, which the directory lock keeps out): the path names
		// another file now, or none.
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%s: replaced three times while being opened", path)
}

// lockCtx takes f's exclusive flock, or gives up when ctx ends first. It
// closes f when it fails.
func lockCtx(ctx context.Context, f *os.File) error {
	fd := int(f.Fd())
	err := flockFd(fd, syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		done := make(chan error, 1)
		go func() { done <- flockFd(fd, syscall.LOCK_EX) }()
		select {
		case err = <-done:
		case <-ctx.Done():
			// A waiting flock cannot be called off. Closing f once it
			// returns lets go of the lock it took; closing it before
			// could hand its descriptor number to another file.
			go func() { <-done; f.Close() }()
			return ctx.Err()
		}
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return nil
}

// removeLines replaces the file at path, whose first bytes were data when
// it was read, with its lines but the gone ones, followed by whatever a
// store appended since.
func removeLines(f *os.File, path string, data []byte, lines []Entry, gone []bool) error {
	// No ctx: the letters are delivered and must leave the store, or a
	// later replay sends them again. Stores hold the lock only to write.
	if err := flock(f, syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	defer flock(f, syscall.LOCK_UN)
	_, ok, err := same(f, path)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s: replaced or removed during the replay by something other than a store; the letters delivered from it were not removed", path)
	}
	tail, err := readFrom(f, int64(len(data)))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	body, rest := data, []byte(nil)
	if len(tail) > 0 {
		// A store never appends after an unterminated line: it cuts a
		// torn write back or leaves the file. Should it happen anyway,
		// the line and its continuation stay together as they are, even
		// if the letter was delivered: sent twice rather than lost.
		i := bytes.LastIndexByte(data, '\n') + 1
		body, rest = data[:i], data[i:]
	}
	var out bytes.Buffer
	for i, e := range lines {
		if !gone[i] && e.off < len(body) {
			out.Write(e.raw)
			out.WriteByte('\n')
		}
	}
	out.Write(rest)
	out.Write(tail)
	return rewrite(path, out.Bytes())
}

// rewrite replaces path with data atomically, or removes it when data is
// empty. The caller holds the file's lock.
func rewrite(path string, data []byte) error {
	dir := filepath.Dir(path)
	if len(data) == 0 {
		if err := os.Remove(path); err != nil {
			return err
		}
		return durable.SyncDir(dir)
	}
	tmp, err := os.CreateTemp(dir, ".replay-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
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
	return durable.SyncDir(dir)
}
