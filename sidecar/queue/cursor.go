package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"strings"

	"github.com/auditpipe/auditpipe/internal/durable"
)

const (
	cursorMagic  = "APQCUR01"
	cursorSize   = 20 // magic + acked seq + crc32c
	cursorSuffix = ".cursor"
	tmpSuffix    = ".tmp"
)

// cursorFile names a consumer's cursor. Output names are free text in
// the configuration, so anything outside [A-Za-z0-9_-] is %-escaped: the
// name can neither leave the directory nor collide with another one.
func cursorFile(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String() + cursorSuffix
}

func encodeCursor(seq uint64) []byte {
	b := make([]byte, 0, cursorSize)
	b = append(b, cursorMagic...)
	b = binary.LittleEndian.AppendUint64(b, seq)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// readCursor returns the acknowledged sequence number in path; ok is
// false when the file does not exist.
func readCursor(path string) (seq uint64, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	if len(b) != cursorSize || string(b[:8]) != cursorMagic ||
		crc32.Checksum(b[:16], castagnoli) != binary.LittleEndian.Uint32(b[16:]) {
		return 0, false, fmt.Errorf("%s: not a valid cursor file", path)
	}
	return binary.LittleEndian.Uint64(b[8:]), true, nil
}

// writeCursor replaces path atomically: a crash leaves either the old
// cursor or the new one, never a torn file. On a full disk, where the
// new file gets no block, it overwrites the cursor in place instead
// (overwriteCursor).
func writeCursor(dir, path string, seq uint64, fsync bool) error {
	err := replaceCursor(dir, path, seq, fsync)
	if err != nil && durable.NoSpace(err) && overwriteCursor(path, seq, fsync) == nil {
		return nil
	}
	return err
}

func replaceCursor(dir, path string, seq uint64, fsync bool) error {
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(encodeCursor(seq))
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
		return durable.SyncDir(dir)
	}
	return nil
}

// overwriteCursor writes the cursor over the existing file's bytes, which
// needs no free space: without it, consumers could not acknowledge on a
// full disk, so nothing could ever be freed. A write of 20 bytes at
// offset 0 tears only in a crash, and a torn cursor fails its checksum
// and restarts its consumer at the oldest record: duplicates, which ids
// make harmless, never a loss.
func overwriteCursor(path string, seq uint64, fsync bool) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(encodeCursor(seq), 0)
	if err == nil && fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
