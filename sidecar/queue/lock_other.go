//go:build !unix

package queue

import (
	"os"
	"path/filepath"
)

// dirLock only holds dir/LOCK open where flock is unavailable: there is
// no exclusion between processes there.
type dirLock struct{ file *os.File }

func lockDir(dir string) (*dirLock, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	return &dirLock{file: f}, nil
}

func (l *dirLock) Close() error { return l.file.Close() }
