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
func setProcAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
