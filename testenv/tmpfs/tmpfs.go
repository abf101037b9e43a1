//go:build linux

// Package tmpfs mounts small tmpfs file systems for tests that need a
// disk that fills up: ENOSPC is the one failure a loopback peer cannot
// fake, and a real file system is the only honest way to produce it.
package tmpfs

import (
	"os"
	"os/exec"
	"testing"
)

// Mount mounts a tmpfs of the given size (mount's size= option: "2m") on
// a new directory and unmounts it when the test ends; files the test
// opens there must be closed by a cleanup registered after Mount.
// Mounting needs root (or CAP_SYS_ADMIN): without it the test is skipped,
// except under CI=true, where a skip would hide that the test never ran.
func Mount(t testing.TB, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		msg := "mount tmpfs: " + err.Error() + ": " + string(out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}
