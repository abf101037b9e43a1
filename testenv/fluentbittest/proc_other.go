//go:build !linux

package fluentbittest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
