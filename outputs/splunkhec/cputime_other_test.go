//go:build !unix

package splunkhec_test

func cpuTime() int64 { return -1 }
