package external_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/auditpipe/auditpipe/transformers/external"
)

// A C host (Fluent Bit) opens its descriptors inheritable; the plugin must
// get none of them, nor share the host's process group.
func TestPluginInheritsNoDescriptor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "host-file")
	fd, err := syscall.Open(path, syscall.O_CREAT|syscall.O_RDWR, 0o600) // no O_CLOEXEC, as C code opens
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	tr, err := external.New(context.Background(), external.Config{Path: testPlugin(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	pid := tr.PID()
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Skip("no /proc")
	}
	for _, e := range ents {
		if l, _ := os.Readlink(filepath.Join(dir, e.Name())); l == path {
			t.Errorf("the plugin holds the host's descriptor %s -> %s", e.Name(), l)
		}
	}
	if pg, _ := syscall.Getpgid(pid); pg != pid {
		t.Errorf("plugin process group %d, want its own (%d)", pg, pid)
	}
}
