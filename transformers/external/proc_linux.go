package external

import (
	"os"
	"os/exec"
	"strconv"
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
	closeOnExec()
}

// closeOnExec marks every descriptor of the host above stderr
// close-on-exec, so that the plugin inherits none. Go opens its own so,
// but a C host does not: in Fluent Bit the plugin got the engine's pipes,
// the inputs' listening sockets and whatever connection was open when it
// (re)started, and a connection the host closes stays open, its peer
// never told, while the plugin holds a copy. (A host that starts children
// of its own gives them its descriptors explicitly, which dup2 makes
// inheritable again.)
func closeOnExec() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}
