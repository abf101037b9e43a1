package pull

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/auditpipe/auditpipe/internal/durable"
)

// stateVersion is bumped when the file's meaning changes; a file of
// another version is refused rather than misread.
const stateVersion = 1

// state is the watermark, as persisted in <StateDir>/<source>.json.
type state struct {
	Version int `json:"version"`
	// Newest is the latest event time seen: a page that does not reach
	// back before it may hide entries of that second.
	Newest time.Time `json:"newest_time,omitzero"`
	// PolledAt is when the watermark last advanced.
	PolledAt time.Time `json:"polled_at,omitzero"`
	// Limit is the limit the last page was asked with: a page shorter than
	// it was the whole log.
	Limit int `json:"limit"`
	// Page is the last page fetched, newest first, as indices into Seen.
	Page []int `json:"page"`
	// Seen holds the last page's distinct entries, then those that slid
	// off it in the newest second (to keep numbering their copies).
	Seen []seen `json:"seen"`
}

// seen is one distinct entry content.
type seen struct {
	// Key is the SHA-256 of the entry's canonical JSON (RFC 8785): the
	// transformer's base id for an entry without an id of its own.
	Key string `json:"key"`
	// Time is the entry's event time, zero when it could not be mapped.
	Time time.Time `json:"time,omitzero"`
	// Total is how many copies were ever queued, so the next copy gets the
	// next duplicate number.
	Total int `json:"total"`
}

// loadState reads path; a missing file is the empty watermark (first
// poll), reported by ok false.
func loadState(path string) (st state, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return state{Version: stateVersion}, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("read pull watermark: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, false, fmt.Errorf("pull watermark %s is corrupt (%w); delete it to start again from the newest page (re-queuing it)", path, err)
	}
	if st.Version != stateVersion {
		return st, false, fmt.Errorf("pull watermark %s: version %d, want %d", path, st.Version, stateVersion)
	}
	bad := st.Limit < 0
	keys := make(map[string]bool, len(st.Seen))
	for _, s := range st.Seen {
		bad = bad || s.Key == "" || s.Total < 0 || keys[s.Key]
		keys[s.Key] = true
	}
	for _, at := range st.Page {
		bad = bad || at < 0 || at >= len(st.Seen)
	}
	if bad {
		return st, false, fmt.Errorf("pull watermark %s is inconsistent; delete it to start again from the newest page (re-queuing it)", path)
	}
	return st, true, nil
}

// saveState writes st so that a crash leaves either the old or the new
// file: a temporary file in the same directory, fsync'd, renamed over
// path, and the directory fsync'd so the rename itself is durable.
func saveState(path string, st state) (err error) {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode pull watermark: %w", err)
	}
	b = append(b, '\n')
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write pull watermark: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(b); err != nil {
		return fmt.Errorf("write pull watermark: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("sync pull watermark: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close pull watermark: %w", err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("rename pull watermark: %w", err)
	}
	if err := durable.SyncDir(dir); err != nil {
		return fmt.Errorf("sync pull watermark directory: %w", err)
	}
	return nil
}

// mkdirState creates the watermark directory, private to the process: the
// file names the source and holds hashes of its entries.
func mkdirState(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pull state directory: %w", err)
	}
	return nil
}
