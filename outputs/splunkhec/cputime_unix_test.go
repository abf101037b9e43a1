//go:build unix

package splunkhec_test

import "syscall"

// cpuTime is the CPU time the process has used, in nanoseconds, or -1.
// Events per CPU second, unlike events per wall second, do not drop when
// other processes share the machine.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
