package file

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ReadBack calls fn once per stored unit (object, file, partition, index)
// with a reader of the NDJSON event lines it holds, in the order the
// output wrote them.
//
// For the file output the units are the rotated files, oldest first
// (path.N down to path.1, every numbered sibling that exists, not only
// max_backups of them), then path itself; source is each file's path.
// All of them are opened, and the current file's size taken, while no
// Write of this output runs, so a rotation cannot shift the names under
// the reader and a batch being appended is not read half-way: what is
// read is what had been written when ReadBack was called. Another
// process writing to the same files is not held off.
//
// The stdout output has nothing to read back and returns an error.
func (o *Output) ReadBack(ctx context.Context, fn func(source string, r io.Reader) error) error {
	if o.path == "" {
		return errors.New("file: read back: this output writes to a stream, not a file")
	}
	files, err := o.openForReadBack()
	if err != nil {
		return fmt.Errorf("file: read back: %w", err)
	}
	defer func() {
		for _, u := range files {
			_ = u.f.Close()
		}
	}()
	for _, u := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(u.f.Name(), io.NewSectionReader(u.f, 0, u.size)); err != nil {
			return err
		}
	}
	return nil
}

type readBackFile struct {
	f    *os.File
	size int64
}

// openForReadBack opens the rotated files and the current one under the
// output's lock, oldest first.
func (o *Output) openForReadBack() (files []readBackFile, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	defer func() {
		if err != nil {
			for _, u := range files {
				_ = u.f.Close()
			}
			files = nil
		}
	}()
	names, err := rotatedSiblings(o.path)
	if err != nil {
		return nil, err
	}
	names = append(names, o.path)
	for _, name := range names {
		f, err := os.Open(name)
		if errors.Is(err, os.ErrNotExist) && name != o.path {
			continue // removed by another rotation since the listing
		}
		if err != nil {
			return files, err
		}
		fi, err := f.Stat()
		if err != nil {
			_ = f.Close()
			return files, err
		}
		files = append(files, readBackFile{f: f, size: fi.Size()})
	}
	return files, nil
}

// rotatedSiblings lists path.N for every N ≥ 1 that exists, highest N
// (oldest) first: rotate renames path to path.1 and path.i to path.i+1.
func rotatedSiblings(path string) ([]string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type sibling struct {
		name string
		n    uint64
	}
	var sibs []sibling
	for _, e := range entries {
		suffix, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok || e.IsDir() || suffix == "" || strings.TrimLeft(suffix, "0123456789") != "" || suffix[0] == '0' {
			continue
		}
		n, err := strconv.ParseUint(suffix, 10, 64)
		if err != nil {
			continue
		}
		sibs = append(sibs, sibling{name: filepath.Join(dir, e.Name()), n: n})
	}
	slices.SortFunc(sibs, func(a, b sibling) int { return cmp.Compare(b.n, a.n) })
	names := make([]string, len(sibs))
	for i, s := range sibs {
		names[i] = s.name
	}
	return names, nil
}

// ReadBack reads back what a file output configured as c wrote, without
// an Output: nothing is created, opened for writing or cut (New would cut
// a torn last line, which in a file a running sidecar is appending to may
// be a batch half-way through its write). `auditpipe verify` reads
// through it.
func (c Config) ReadBack(ctx context.Context, fn func(source string, r io.Reader) error) error {
	if c.Path == "" {
		return errors.New("file: read back: path: required")
	}
	return (&Output{path: c.Path}).ReadBack(ctx, fn)
}
