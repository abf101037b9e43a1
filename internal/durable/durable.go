// Package durable holds the two file-system facts every on-disk store of
// auditpipe needs (the queue, the dead-letter store, pull watermarks): how
// to make a directory's entries survive a crash, and how to tell a full
// disk from any other write failure.
package durable

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// SyncDir fsyncs dir, which makes the creations, renames and removals of
// its entries durable: fsyncing a file does not make its name durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// NoSpace reports a write that failed because the disk or the quota is
// full: back-pressure that frees itself, not a broken store.
func NoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
