//go:build !linux

package queue

import "testing"

// mountTmpfs: tmpfs is Linux's; elsewhere the tests that need a disk
// that fills up are skipped.
func mountTmpfs(t testing.TB, size string) string {
	t.Skip("tmpfs needs Linux")
	return ""
}
