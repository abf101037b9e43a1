//go:build !linux

package s3test

import "syscall"

// sysProcAttr has nothing to add off Linux, which alone has Pdeathsig;
// Close still stops the server.
func sysProcAttr() *syscall.SysProcAttr { return nil }
