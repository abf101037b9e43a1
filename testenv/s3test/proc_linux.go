package s3test

import "syscall"

// sysProcAttr makes the kernel kill the server when the test binary dies
// without calling Close (a panic, a SIGKILL from go test's timeout), so no
// gateway outlives its test. Strictly the signal follows the OS thread that
// started the child; the Go runtime keeps its threads unless a goroutine
// exits while locked to one, which nothing that starts servers does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
