//go:build unix

package queue

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The lock is on the directory: deleting LOCK, which older versions
// locked, must not let a second Open in.
func TestLockSurvivesLockFileRemoval(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, Config{Dir: dir}, "a")
	checkLocked := func(what string) {
		t.Helper()
		_, err := Open(Config{Dir: dir}, []string{"a"}, nil)
		if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "another process") {
			t.Fatalf("second Open %s: %v, want an error naming %s and another process", what, err, dir)
		}
	}
	checkLocked("of one dir")
	if err := os.Remove(filepath.Join(dir, "LOCK")); err != nil {
		t.Fatal(err)
	}
	checkLocked("after LOCK was removed")
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	openQueue(t, Config{Dir: dir}, "a") // the lock goes with Close
}

const lockDirEnv = "AUDITPIPE_QUEUE_LOCK_DIR"

// Another process cannot open a queue this one has open, even with LOCK
// deleted, and can once it is closed.
func TestLockOtherProcess(t *testing.T) {
	if dir := os.Getenv(lockDirEnv); dir != "" {
		q, err := Open(Config{Dir: dir}, []string{"a"}, nil)
		if err != nil {
			os.Stdout.WriteString("refused: " + err.Error())
			return
		}
		q.Close()
		os.Stdout.WriteString("opened")
		return
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	child := func() string {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestLockOtherProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), lockDirEnv+"="+dir)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return string(out)
	}
	q := openQueue(t, Config{Dir: dir}, "a")
	if err := os.Remove(filepath.Join(dir, "LOCK")); err != nil {
		t.Fatal(err)
	}
	if out := child(); !strings.Contains(out, "refused: ") || !strings.Contains(out, dir) || !strings.Contains(out, "another process") {
		t.Fatalf("second process while the queue is open: %q", out)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if out := child(); !strings.Contains(out, "opened") {
		t.Fatalf("second process after Close: %q", out)
	}
}
