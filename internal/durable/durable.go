// Package durable holds the file-system facts every on-disk store of
// auditpipe needs (the queue, the dead-letter store, pull watermarks, the
// plugin's integrity state): how to make a directory's entries survive a
// crash, how to replace a small file atomically, and how to tell a full
// disk from any other write failure.
package durable

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ReplaceFile replaces path with data atomically: it writes path+".tmp",
// fsyncs it (when fsync), renames it over path and fsyncs the directory,
// so a crash leaves the old content or the new, never a torn file. On
// failure the temporary file is removed.
func ReplaceFile(path string, data []byte, perm os.FileMode, fsync bool) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if fsync {
		return SyncDir(filepath.Dir(path))
	}
	return nil
}

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
