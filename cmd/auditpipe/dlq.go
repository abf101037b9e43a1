package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/auditpipe/auditpipe/sidecar/config"

	"github.com/auditpipe/auditpipe/outputs"
	"github.com/auditpipe/auditpipe/outputs/dlq"
	"github.com/auditpipe/auditpipe/outputs/fanout"
	"github.com/auditpipe/auditpipe/outputs/standard"
)

// deliveryConfig is the part of the sidecar's configuration file the dlq
// commands and normalize --outputs use: the outputs and where dead letters
// are kept. The file is read as the sidecar reads it (references expanded,
// unknown keys refused), but it need not hold sources: a file of outputs
// alone will do.
type deliveryConfig struct {
	Outputs    []fanout.OutputConfig
	DeadLetter dlq.Config
}

func loadDeliveryConfig(path string) (deliveryConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return deliveryConfig{}, err
	}
	c, err := config.Decode(b, os.LookupEnv)
	if err != nil {
		return deliveryConfig{}, fmt.Errorf("%s: %w", path, err)
	}
	// The sidecar's defaults, so that dead_letter.dir is where the sidecar
	// writes (<data_dir>/dlq, relative to the working directory as for
	// the sidecar) when the file does not say.
	*c = c.WithDefaults()
	return deliveryConfig{Outputs: c.Outputs, DeadLetter: c.DeadLetter}, nil
}

// openOutputs builds the outputs a configuration file describes, with its
// dead-letter store (by default <data_dir>/dlq, as the sidecar's).
func openOutputs(ctx context.Context, path string, stdout, stderr io.Writer) (*fanout.Set, func(), error) {
	cfg, err := loadDeliveryConfig(path)
	if err != nil {
		return nil, nil, err
	}
	deps := fanout.Deps{Stdout: stdout, Version: version, Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	store, err := dlq.Open(cfg.DeadLetter)
	if err != nil {
		return nil, nil, err
	}
	deps.DeadLetters = store
	set, err := fanout.Build(ctx, standard.Registry(), cfg.Outputs, deps)
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return set, func() {
		set.Close(context.WithoutCancel(ctx))
		store.Close()
	}, nil
}

const dlqUsage = `Usage:
  auditpipe dlq list   [--dir DIR | --config FILE] [--output NAME] [--json]
  auditpipe dlq replay --config FILE --output NAME [--from NAME] [--dir DIR] [--max-elapsed 1m]

list prints the dead letters (time, output, event id, action, error); replay
re-sends the letters an output rejected to that output (or, with --from,
another output's letters to it) and removes from the store those it delivered.
Both can run while the sidecar does; replay takes the file it is writing too.
Without --dir, the directory is --config's dead_letter.dir, by default
<data_dir>/dlq as for the sidecar.
`

func dlqCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, dlqUsage)
		return exitUsage
	}
	fs := flag.NewFlagSet("dlq "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, dlqUsage+"\nFlags:\n"); fs.PrintDefaults() }
	dir := fs.String("dir", "", "dead-letter directory (default: --config's dead_letter.dir, or <data_dir>/dlq as for the sidecar)")
	configFile := fs.String("config", "", "the sidecar's YAML configuration (its outputs and dead_letter sections)")
	output := fs.String("output", "", "list: only letters of this output; replay: the output to send to (required)")
	var asJSON *bool
	var from *string
	var maxElapsed *time.Duration
	switch args[0] {
	case "list":
		asJSON = fs.Bool("json", false, "print the letters as NDJSON instead of a table")
	case "replay":
		from = fs.String("from", "", "replay the letters of this output instead of --output's own")
		maxElapsed = fs.Duration("max-elapsed", time.Minute, "give up retrying after this long; what is left stays in the store")
	case "-h", "--help", "help":
		fmt.Fprint(stdout, dlqUsage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "auditpipe dlq: unknown command %q\n\n%s", args[0], dlqUsage)
		return exitUsage
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	var cfg deliveryConfig
	if *configFile != "" {
		var err error
		if cfg, err = loadDeliveryConfig(*configFile); err != nil {
			fmt.Fprintf(stderr, "auditpipe dlq: %v\n", err)
			return exitUsage
		}
	}
	if *dir == "" {
		*dir = cfg.DeadLetter.Dir
	}
	if *dir == "" {
		fmt.Fprintln(stderr, "auditpipe dlq: --dir or --config is required")
		return exitUsage
	}
	if args[0] == "replay" && (*output == "" || *configFile == "") {
		fmt.Fprintln(stderr, "auditpipe dlq replay: --config and --output are required")
		return exitUsage
	}
	// Walk takes a missing directory for an empty store, which would hide
	// a wrong path.
	if fi, err := os.Stat(*dir); err != nil || !fi.IsDir() {
		what := "not a directory"
		if errors.Is(err, os.ErrNotExist) {
			what = "no such directory"
		} else if err != nil {
			what = err.Error()
		}
		fmt.Fprintf(stderr, "auditpipe dlq %s: %s: %s\n", args[0], *dir, what)
		return exitFailed
	}
	if args[0] == "list" {
		return dlqList(*dir, *output, *asJSON, stdout, stderr)
	}
	letters := *output
	if *from != "" {
		letters = *from
	}
	return dlqReplay(ctx, cfg, *dir, *output, letters, *maxElapsed, stdout, stderr)
}

func dlqList(dir, output string, asJSON bool, stdout, stderr io.Writer) int {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if !asJSON {
		fmt.Fprintln(tw, "TIME\tOUTPUT\tID\tACTION\tERROR")
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	counts := map[string]int{}
	err := dlq.Walk(dir, func(e dlq.Entry) error {
		if output != "" && e.Output != output {
			return nil
		}
		counts[e.Output]++
		if asJSON {
			return enc.Encode(e.DeadLetter)
		}
		var ev struct{ ID, Action string }
		var what string
		if len(e.Event) > 0 {
			_ = json.Unmarshal(e.Event, &ev)
			what = ev.ID
		} else {
			what, ev.Action = "(payload from "+e.Source+")", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339), orDash(e.Output), what, ev.Action, oneLine(e.Error))
		return nil
	})
	tw.Flush()
	if !asJSON {
		names := make([]string, 0, len(counts))
		for k := range counts {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			fmt.Fprintf(stderr, "%s: %d letters\n", orDash(k), counts[k])
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "auditpipe dlq list: %v\n", err)
		return exitFailed
	}
	return exitOK
}

func dlqReplay(ctx context.Context, cfg deliveryConfig, dir, output, letters string, maxElapsed time.Duration, stdout, stderr io.Writer) int {
	if err := fanout.Validate(standard.Registry(), cfg.Outputs); err != nil {
		fmt.Fprintf(stderr, "auditpipe dlq replay: %v\n", err)
		return exitUsage
	}
	var oc *fanout.OutputConfig
	for i := range cfg.Outputs {
		if cfg.Outputs[i].Name == output {
			oc = &cfg.Outputs[i]
		}
	}
	if oc == nil {
		fmt.Fprintf(stderr, "auditpipe dlq replay: --output: no output named %q in the configuration\n", output)
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	out, err := fanout.NewOutput(ctx, standard.Registry(), oc, fanout.Deps{Stdout: stdout, Logger: log, Version: version})
	if err != nil {
		fmt.Fprintf(stderr, "auditpipe dlq replay: output %s: %v\n", output, err)
		return exitFailed
	}
	defer out.Close(context.WithoutCancel(ctx))
	retry := oc.Retry
	retry.MaxElapsedTime = maxElapsed
	// No dead-letter store: a letter rejected again must stay where it is,
	// not be copied into a new file.
	d, err := outputs.NewDeliverer(outputs.DelivererConfig{Name: output, Output: out, Retry: retry, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "auditpipe dlq replay: %v\n", err)
		return exitUsage
	}
	rep, err := dlq.Replay(ctx, dir, func(l *outputs.DeadLetter) bool { return l.Output == letters }, d)
	fmt.Fprintf(stderr, "replayed %d of %d letters of %s to %s", rep.Delivered, rep.Selected, letters, output)
	if rep.Unreplayable > 0 {
		fmt.Fprintf(stderr, "; %d hold no event and stay", rep.Unreplayable)
	}
	if rep.Bad > 0 {
		fmt.Fprintf(stderr, "; %d lines are not letters and stay (dlq list names them)", rep.Bad)
	}
	fmt.Fprintln(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "auditpipe dlq replay: %v\n", err)
		return exitFailed
	}
	return exitOK
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\n' || c == '\t' {
			b[i] = ' '
		}
	}
	return string(b)
}
