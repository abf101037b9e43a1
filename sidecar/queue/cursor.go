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
	// A cursor with state (AckState): magic, acked seq, state length,
	// state, crc32c. Without state the first form is written, so a queue
	// that never uses state stays readable by older binaries.
	cursorStateMagic = "APQCUR02"
	// MaxCursorState bounds the state a consumer keeps with its cursor.
	MaxCursorState = 4096
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

func encodeCursor(seq uint64, state []byte) []byte {
	if len(state) == 0 {
		b := make([]byte, 0, cursorSize)
		b = append(b, cursorMagic...)
		b = binary.LittleEndian.AppendUint64(b, seq)
		return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	}
	b := make([]byte, 0, cursorSize+4+len(state))
	b = append(b, cursorStateMagic...)
	b = binary.LittleEndian.AppendUint64(b, seq)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(state)))
	b = append(b, state...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// readCursor returns the acknowledged sequence number in path and the
// state kept with it; ok is false when the file does not exist.
func readCursor(path string) (seq uint64, state []byte, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil, false, nil
	}
	if err != nil {
		return 0, nil, false, err
	}
	invalid := fmt.Errorf("%s: not a valid cursor file", path)
	if len(b) < cursorSize || crc32.Checksum(b[:len(b)-4], castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return 0, nil, false, invalid
	}
	switch string(b[:8]) {
	case cursorMagic:
		if len(b) != cursorSize {
			return 0, nil, false, invalid
		}
	case cursorStateMagic:
		if len(b) < cursorSize+4 || int(binary.LittleEndian.Uint32(b[16:])) != len(b)-cursorSize-4 {
			return 0, nil, false, invalid
		}
		state = b[20 : len(b)-4 : len(b)-4]
	default:
		return 0, nil, false, invalid
	}
	return binary.LittleEndian.Uint64(b[8:]), state, true, nil
}

// writeCursor replaces path atomically: a crash leaves either the old
// cursor or the new one, never a torn file. On a full disk, where the
// new file gets no block, it overwrites the cursor in place instead
// (overwriteCursor).
func writeCursor(path string, seq uint64, state []byte, fsync bool) error {
	err := durable.ReplaceFile(path, encodeCursor(seq, state), 0o600, fsync)
	if err != nil && durable.NoSpace(err) && overwriteCursor(path, seq, state, fsync) == nil {
		return nil
	}
	return err
}

// overwriteCursor writes the cursor over the existing file's bytes, which
// needs no free space: without it, consumers could not acknowledge on a
// full disk, so nothing could ever be freed. Only a cursor of the same
// size is overwritten (a consumer's state keeps its size: the chain
// state is fixed). A write of a few dozen bytes at offset 0 tears only in
// a crash, and a torn cursor fails its checksum and restarts its consumer
// at the oldest record: duplicates, which ids make harmless, never a
// loss.
func overwriteCursor(path string, seq uint64, state []byte, fsync bool) error {
	b := encodeCursor(seq, state)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != int64(len(b)) {
		f.Close()
		return fmt.Errorf("%s: cannot overwrite a cursor of another size", path)
	}
	_, err = f.WriteAt(b, 0)
	if err == nil && fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
