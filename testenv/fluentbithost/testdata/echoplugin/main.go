// Command echoplugin is a minimal Fluent Bit Go output plugin built on
// fluent-bit-go, used to test the host itself independently of auditpipe's
// plugin: it logs its configured keys, counts records with fluent-bit-go's
// own decoder and returns the code named by its Return key.
package main

import (
	"C"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"unsafe"

	"github.com/fluent/fluent-bit-go/output"
)

type instance struct {
	id      string
	ret     int
	records atomic.Int64
}

//export FLBPluginRegister
func FLBPluginRegister(def unsafe.Pointer) int {
	return output.FLBPluginRegister(def, "echo", "host self-test")
}

//export FLBPluginInit
func FLBPluginInit(plugin unsafe.Pointer) int {
	in := &instance{id: output.FLBPluginConfigKey(plugin, "id"), ret: output.FLB_OK}
	if r := output.FLBPluginConfigKey(plugin, "return"); r != "" {
		in.ret, _ = strconv.Atoi(r)
	}
	fmt.Fprintf(os.Stderr, "echo init id=%s mixed=%s\n", in.id, output.FLBPluginConfigKey(plugin, "MiXeD_KeY"))
	if output.FLBPluginConfigKey(plugin, "fail_init") != "" {
		return output.FLB_ERROR
	}
	output.FLBPluginSetContext(plugin, in)
	return output.FLB_OK
}

//export FLBPluginFlushCtx
func FLBPluginFlushCtx(ctx, data unsafe.Pointer, length C.int, tag *C.char) int {
	in := output.FLBPluginGetContext(ctx).(*instance)
	dec := output.NewDecoder(data, int(length))
	n := 0
	for {
		ret, _, _ := output.GetRecord(dec)
		if ret != 0 {
			break
		}
		n++
	}
	in.records.Add(int64(n))
	fmt.Fprintf(os.Stderr, "echo flush id=%s tag=%s records=%d\n", in.id, C.GoString(tag), n)
	return in.ret
}

//export FLBPluginExitCtx
func FLBPluginExitCtx(ctx unsafe.Pointer) int {
	in := output.FLBPluginGetContext(ctx).(*instance)
	fmt.Fprintf(os.Stderr, "echo exit id=%s total=%d\n", in.id, in.records.Load())
	return output.FLB_OK
}

func main() {}
