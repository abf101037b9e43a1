//go:build unix

package queue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// dirLock holds the queue directory's locks until Close.
type dirLock struct {
	dir, file *os.File
}

// lockDir takes an exclusive flock(2) on the queue directory itself, so
// that two processes (or two Opens in one) never append to the same log.
// A lock on a file in the directory is not enough: deleting that file
// lets the next Open lock a new one while the first process still
// writes. The directory cannot be swapped from under an open queue while
// it holds the segments. It also locks dir/LOCK, which is what versions
// before this one locked, so that an older binary started during an
// upgrade is kept out too. The kernel drops both locks when the process
// dies, so a crash leaves no stale lock behind.
func lockDir(dir string) (*dirLock, error) {
	d, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	if err := flock(d, dir); err != nil {
		d.Close()
		return nil, err
	}
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		d.Close()
		return nil, err
	}
	if err := flock(f, path); err != nil {
		f.Close()
		d.Close()
		return nil, err
	}
	return &dirLock{dir: d, file: f}, nil
}

func flock(f *os.File, name string) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) {
		for {
			lerr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
			if lerr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if errors.Is(lerr, syscall.EWOULDBLOCK) {
		return fmt.Errorf("%s is locked: another process (or another Queue in this one) has the queue open", name)
	}
	if lerr != nil {
		return fmt.Errorf("lock %s: %w", name, lerr)
	}
	return nil
}

// Close releases the locks.
func (l *dirLock) Close() error {
	return errors.Join(l.file.Close(), l.dir.Close())
}
