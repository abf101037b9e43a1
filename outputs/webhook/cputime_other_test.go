//go:build !unix

package webhook

func cpuTime() int64 { return -1 }
