// Command auditpipe is the audit-log forwarder's command line: it runs the
// sidecar and offers the tools around it (normalize, dlq, keygen, verify,
// version).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // the command ran and something failed
	exitUsage  = 2 // the command line was wrong
)

const usage = `auditpipe normalizes audit events from many sources into one schema and forwards them.

Usage:
  auditpipe sidecar --config FILE [--check-config]
  auditpipe drain [--url URL] [--timeout D]
  auditpipe normalize [--format auto|spacelift|alertmanager|app|k8s] [--source-name NAME] [--config FILE] [-v] [FILE...]
  auditpipe dlq list|replay [flags]
  auditpipe keygen --private FILE --public FILE
  auditpipe verify --public-key FILE [--public-key FILE...] [--json] [FILE...]
  auditpipe version

Run "auditpipe COMMAND -h" for a command's flags.
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "normalize":
		return normalize(ctx, args[1:], stdin, stdout, stderr)
	case "sidecar":
		return sidecarCmd(ctx, args[1:], stdout, stderr)
	case "drain":
		return drainCmd(ctx, args[1:], stdout, stderr)
	case "dlq":
		return dlqCmd(ctx, args[1:], stdout, stderr)
	case "keygen":
		return keygen(args[1:], stdout, stderr)
	case "verify":
		return verify(ctx, args[1:], stdin, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "auditpipe: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}
