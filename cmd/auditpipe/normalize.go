package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/internal/yamlconf"
	"github.com/auditpipe/auditpipe/transformers"
	"github.com/auditpipe/auditpipe/transformers/formats"
)

// normalize reads payloads from files or stdin and writes one normalized
// event per line. Every failure is reported with its file and line, and any
// failure makes the exit status non-zero: a script must not mistake a
// partial conversion for a complete one.
func normalize(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("normalize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "auto", "payload format: auto, or one of the built-in formats")
	sourceName := fs.String("source-name", "", "event source.name (default: the file's base name, or \"stdin\")")
	configFile := fs.String("config", "", "YAML file with transformer settings (limits, redact, alertmanager, app, k8s)")
	outputsFile := fs.String("outputs", "", "deliver the events to the outputs configured in this YAML file (its outputs and dead_letter sections, as the sidecar's) instead of writing them to stdout")
	verbose := fs.Bool("v", false, "report on stderr, per file, the format used (and for auto the field that decided), events, errors and skipped items")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: auditpipe normalize [flags] [FILE...]\n\nReads one JSON document or NDJSON per file (stdin without FILE or with -) and writes NDJSON events to stdout.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	var cfg formats.Config
	if *configFile != "" {
		if err := loadYAML(*configFile, &cfg); err != nil {
			fmt.Fprintf(stderr, "auditpipe normalize: %v\n", err)
			return exitUsage
		}
	}
	reg, err := formats.NewRegistry(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "auditpipe normalize: %v\n", err)
		return exitUsage
	}
	tr, err := reg.Get(*format)
	if err != nil {
		fmt.Fprintf(stderr, "auditpipe normalize: --format: %v\n", err)
		return exitUsage
	}

	files := fs.Args()
	if len(files) == 0 {
		files = []string{"-"}
	}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	n := normalizer{tr: tr, out: out, stderr: stderr, limits: cfg.Limits.WithDefaults(), verbose: *verbose}
	if *outputsFile != "" {
		set, closeSet, err := openOutputs(ctx, *outputsFile, stdout, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "auditpipe normalize: --outputs: %v\n", err)
			return exitUsage
		}
		defer closeSet()
		n.deliver = set.Deliver
	}
	for _, f := range files {
		if ctx.Err() != nil {
			break
		}
		name, body, err := readInput(f, stdin)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			n.failed = true
			continue
		}
		src := *sourceName
		if src == "" {
			src = sourceNameFor(f)
		}
		n.file(ctx, name, src, body)
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintf(stderr, "auditpipe normalize: write: %v\n", err)
		return exitFailed
	}
	if n.failed || ctx.Err() != nil {
		return exitFailed
	}
	return exitOK
}

type normalizer struct {
	tr      transformers.Transformer
	out     *bufio.Writer
	line    []byte
	stderr  io.Writer
	limits  transformers.Limits
	failed  bool
	verbose bool
	// deliver, when set, takes the events instead of out.
	deliver func(context.Context, []auditpipe.Event) error
}

// file transforms one input. Inputs larger than the payload limit are
// processed as NDJSON in chunks of whole lines (audit logs are routinely
// larger than any sane single payload).
func (n *normalizer) file(ctx context.Context, name, source string, body []byte) {
	if len(body) <= n.limits.MaxPayloadBytes {
		n.payload(ctx, name, source, body, 0)
		return
	}
	line := 0
	for len(body) > 0 {
		cut := min(len(body), n.limits.MaxPayloadBytes)
		if i := bytes.LastIndexByte(body[:cut], '\n'); i >= 0 && cut < len(body) {
			cut = i + 1
		}
		chunk := body[:cut]
		n.payload(ctx, name, source, chunk, line)
		line += bytes.Count(chunk, []byte{'\n'})
		body = body[cut:]
	}
}

func (n *normalizer) payload(ctx context.Context, name, source string, body []byte, lineOffset int) {
	res, err := transformers.Run(ctx, n.tr, transformers.Input{Body: body, Meta: transformers.Meta{SourceName: source, ReceivedAt: time.Now()}})
	if err != nil {
		n.report(name, body, lineOffset, transformers.AsError(res.Format, err))
	}
	for _, e := range res.Errors {
		n.report(name, body, lineOffset, e)
	}
	if n.verbose {
		n.summary(name, res, err)
	}
	if n.deliver != nil {
		if len(res.Events) == 0 {
			return
		}
		if err := n.deliver(ctx, res.Events); err != nil {
			fmt.Fprintf(n.stderr, "%s: %d events not delivered: %v\n", name, len(res.Events), err)
			n.failed = true
		}
		return
	}
	for i := range res.Events {
		n.line = append(eventjson.Append(n.line[:0], &res.Events[i]), '\n')
		if _, err := n.out.Write(n.line); err != nil {
			fmt.Fprintf(n.stderr, "%s: write event %s: %v\n", name, res.Events[i].ID, err)
			n.failed = true
		}
	}
}

// summary tells what became of a payload: which decoder ran (and for auto
// the field that decided), and how many events, errors and skipped items.
func (n *normalizer) summary(name string, res transformers.Result, err error) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: format %s", name, res.Format)
	if res.DecidedBy != "" {
		fmt.Fprintf(&b, " (decided by %s)", res.DecidedBy)
	}
	errs := len(res.Errors)
	if err != nil {
		errs++
	}
	fmt.Fprintf(&b, ", %d events, %d errors", len(res.Events), errs)
	reasons := make([]string, 0, len(res.Skipped))
	for r := range res.Skipped {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	for _, r := range reasons {
		fmt.Fprintf(&b, ", %d skipped (%s)", res.Skipped[r], r)
	}
	fmt.Fprintln(n.stderr, b.String())
}

func (n *normalizer) report(name string, body []byte, lineOffset int, e *transformers.Error) {
	n.failed = true
	line := e.Line
	if line == 0 {
		line = lineOf(body, e.Path)
	}
	if line > 0 {
		fmt.Fprintf(n.stderr, "%s:%d: %v\n", name, line+lineOffset, e)
		return
	}
	fmt.Fprintf(n.stderr, "%s: %v\n", name, e)
}

func readInput(f string, stdin io.Reader) (string, []byte, error) {
	if f == "-" {
		b, err := io.ReadAll(stdin)
		return "<stdin>", b, err
	}
	b, err := os.ReadFile(f)
	return f, b, err
}

func sourceNameFor(f string) string {
	if f == "-" {
		return "stdin"
	}
	return filepath.Base(f)
}

// loadYAML decodes a YAML file as the sidecar reads its own: references
// (${VAR}...) expanded, and an unknown key an error naming it, never
// silently ignored.
func loadYAML(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yamlconf.Decode(b, yamlconf.Lookups{Env: os.LookupEnv}, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
