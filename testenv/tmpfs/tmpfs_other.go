//go:build !linux

package tmpfs

import "testing"

// Mount skips the test: tmpfs is Linux's.
func Mount(t testing.TB, size string) string {
	t.Helper()
	t.Skip("tmpfs needs Linux")
	return ""
}
