package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/auditpipe/auditpipe/sidecar"
	"github.com/auditpipe/auditpipe/sidecar/config"
)

// sidecarCmd runs the sidecar until ctx ends (SIGINT, SIGTERM).
func sidecarCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sidecar", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "the sidecar's YAML configuration (required)")
	check := fs.Bool("check-config", false, "validate the configuration and exit: 0 when valid, 2 with every problem listed otherwise")
	enableReload := fs.Bool("enable-reload", false, "serve POST /-/reload, which re-reads the configuration file as SIGHUP does")
	pprofAddr := fs.String("pprof", "", "serve Go's profiles on this address (host:port), off when empty; keep it on loopback")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: auditpipe sidecar --config FILE [--check-config] [--enable-reload] [--pprof ADDR]\n\nRuns the HTTP receiver with its durable queue and delivers to the configured outputs.\nSIGHUP re-reads the configuration file.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *configFile == "" || fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	cfg, err := config.Load(*configFile, os.LookupEnv)
	if err != nil {
		fmt.Fprintf(stderr, "auditpipe sidecar: %v\n", err)
		return exitUsage
	}
	if *check {
		fmt.Fprintf(stdout, "%s: valid (%d sources, %d outputs)\n", *configFile, len(cfg.Sources), max(len(cfg.Outputs), 1))
		return exitOK
	}
	// Taken before anything starts: SIGHUP's default action would end the
	// process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log := newLogger(cfg.Log, stderr)
	if *pprofAddr != "" {
		if _, err := servePprof(ctx, *pprofAddr, log); err != nil {
			log.Error("cannot serve profiles", "err", err)
			return exitFailed
		}
	}
	s, err := sidecar.New(ctx, cfg, sidecar.Options{Logger: log, Version: versionString(),
		ConfigFile: *configFile, EnableReload: *enableReload})
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitFailed
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading the configuration", "file", *configFile)
				// Reload logs its outcome, every problem included.
				_ = s.Reload(ctx)
			}
		}
	}()
	if err := s.Run(ctx); err != nil {
		log.Error("stopped with an error", "err", err)
		return exitFailed
	}
	return exitOK
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
