// Command transformer-plugin is an example external transformer: it maps
// GitHub organization audit-log events to auditpipe events. auditpipe
// starts it (a source with format: external); run by hand, it only says
// so. See README.md.
package main

import (
	"fmt"
	"os"

	"github.com/auditpipe/auditpipe/examples/transformer-plugin/githubaudit"
	"github.com/auditpipe/auditpipe/transformers/external"
)

func main() {
	t, err := githubaudit.New()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	external.Serve(t.Transform)
}
