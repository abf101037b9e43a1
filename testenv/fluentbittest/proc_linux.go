package fluentbittest

import "syscall"

// sysProcAttr makes the kernel kill Fluent Bit when the test binary dies
// without its cleanups (a panic, go test's timeout), so no Fluent Bit
// outlives its test. (Strictly, the signal follows the OS thread that
// started the child; the Go runtime keeps its threads unless a goroutine
// exits while locked to one, which nothing here does.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
