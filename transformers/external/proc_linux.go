package external

import (
	"os/exec"
	"syscall"
)

// setProcAttrs has the kernel kill the plugin when the host dies, even by
// SIGKILL, so that a crashed host leaves no orphan plugin behind. (The
// signal follows the thread that started the plugin; Go only ends threads
// of goroutines that exit while locked to one, which this package never
// does.)
//
// The plugin also gets a process group of its own, so that signals meant
// for the host's group (Ctrl-C in a terminal, timeout(1), kill -- -PGID)
// do not end it before the host is done with it: a Fluent Bit told to
// stop still flushes its last chunks through the plugin, and the host
// ends the plugin itself (Close, or the parent-death signal).
func setProcAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
