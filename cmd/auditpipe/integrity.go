package main

import (
	"context"
	"log/slog"
	"slices"

	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/auditpipe/auditpipe"
	"github.com/auditpipe/auditpipe/eventjson"
	"github.com/auditpipe/auditpipe/outputs/dlq"
	"github.com/auditpipe/auditpipe/outputs/fanout"
	"github.com/auditpipe/auditpipe/outputs/standard"
	"io"
	"os"
	"strings"

	"github.com/auditpipe/auditpipe/integrity"
)

// keygen writes a new Ed25519 key pair for tamper evidence. It never
// overwrites: replacing a signing key by accident would leave the events
// it signed unverifiable with the key an operator thinks is current.
func keygen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	privFile := fs.String("private", "", "write the private key (PKCS#8 PEM, mode 0600) to this file; required")
	pubFile := fs.String("public", "", "write the public key (PEM) to this file; required")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: auditpipe keygen --private FILE --public FILE\n\nWrites a new Ed25519 key pair for integrity.signing_key_file and auditpipe verify.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *privFile == "" || *pubFile == "" || fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	privPEM, pubPEM, err := integrity.GenerateKey(nil)
	if err != nil {
		fmt.Fprintf(stderr, "auditpipe keygen: %v\n", err)
		return exitFailed
	}
	for _, f := range []string{*privFile, *pubFile} {
		if _, err := os.Lstat(f); err == nil {
			fmt.Fprintf(stderr, "auditpipe keygen: %s exists; refusing to overwrite a key\n", f)
			return exitFailed
		}
	}
	if err := writeNew(*privFile, privPEM, 0o600); err != nil {
		fmt.Fprintf(stderr, "auditpipe keygen: %v\n", err)
		return exitFailed
	}
	if err := writeNew(*pubFile, pubPEM, 0o644); err != nil {
		os.Remove(*privFile)
		fmt.Fprintf(stderr, "auditpipe keygen: %v\n", err)
		return exitFailed
	}
	pub, _ := integrity.ParsePublicKey(pubPEM)
	fmt.Fprintf(stdout, "wrote %s (private, 0600) and %s (public); key id %s\n", *privFile, *pubFile, integrity.KeyID(pub))
	return exitOK
}

// writeNew creates path with O_EXCL, so a file that appeared since the
// check is not overwritten either.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// keyFiles collects repeated --public-key flags.
type keyFiles []string

func (k *keyFiles) String() string     { return strings.Join(*k, ",") }
func (k *keyFiles) Set(v string) error { *k = append(*k, v); return nil }

// verify checks the integrity of NDJSON events from files or stdin.
// Exit 0: everything verifies; 1: an integrity failure; 2: usage or I/O.
func verify(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var keys keyFiles
	fs.Var(&keys, "public-key", "a trusted public key (PEM), as auditpipe keygen writes; repeat for rotated keys; required")
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	configFile := fs.String("config", "", "read the destination of --output as configured in this sidecar YAML file, instead of FILE arguments")
	outputName := fs.String("output", "", "with --config: the output whose destination to read (s3 bucket/prefix, kafka topics, elasticsearch index pattern, file)")
	deadLetters := fs.String("dead-letters", "", "a dead-letter directory: sealed events an output rejected for good explain the gaps they leave (with --config, default: its dead_letter.dir)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: auditpipe verify --public-key FILE [--public-key FILE...] [--json] [--dead-letters DIR] [FILE...]\n       auditpipe verify --public-key FILE... --config FILE --output NAME [--json] [--dead-letters DIR]\n\nVerifies the hash chains and signatures of NDJSON events (the file output, S3 objects, gzip or not; stdin without FILE or with -), or of what an output delivered, read from its destination.\nExit status: 0 verified, 1 an integrity failure, 2 usage or I/O error.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if (*configFile == "") != (*outputName == "") || (*configFile != "" && fs.NArg() > 0) {
		fmt.Fprintln(stderr, "auditpipe verify: --config and --output go together, and replace FILE arguments")
		return exitUsage
	}
	v, err := newVerifier(keys)
	if err == nil {
		if *configFile != "" {
			err = readDestination(ctx, v, *configFile, *outputName, deadLetters, stderr)
		} else {
			err = readFiles(ctx, v, fs.Args(), stdin)
		}
	}
	if err == nil && *deadLetters != "" {
		err = readDeadLetters(v, *deadLetters)
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		fmt.Fprintf(stderr, "auditpipe verify: %v\n", err)
		return exitUsage
	}
	r := v.Report()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(r)
	} else {
		err = r.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "auditpipe verify: %v\n", err)
		return exitUsage
	}
	if !r.OK {
		return exitFailed
	}
	return exitOK
}

// newVerifier trusts the public keys in files.
func newVerifier(files []string) (*integrity.Verifier, error) {
	if len(files) == 0 {
		return nil, errors.New("--public-key: at least one is required")
	}
	var pubs []ed25519.PublicKey
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil {
			var pub ed25519.PublicKey
			if pub, err = integrity.ParsePublicKey(b); err == nil {
				pubs = append(pubs, pub)
				continue
			}
		}
		return nil, fmt.Errorf("--public-key %s: %w", f, err)
	}
	return integrity.NewVerifier(pubs...)
}

// readFiles feeds NDJSON files (stdin for none or "-") to v.
func readFiles(ctx context.Context, v *integrity.Verifier, files []string, stdin io.Reader) error {
	if len(files) == 0 {
		files = []string{"-"}
	}
	for _, f := range files {
		if err := readInto(v, f, stdin); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

func readInto(v *integrity.Verifier, name string, stdin io.Reader) error {
	if name == "-" {
		return v.ReadNDJSON(stdin, "stdin")
	}
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return v.ReadNDJSON(f, name)
}

// readBacker is what verify needs of an output: every unit it wrote (an
// object, a partition, an index, a file) as NDJSON events.
type readBacker interface {
	ReadBack(ctx context.Context, fn func(source string, r io.Reader) error) error
}

// readDestination reads what the configured output delivered. It builds
// the output as the sidecar would, to reach its destination with the
// same settings and credentials; it writes nothing.
func readDestination(ctx context.Context, v *integrity.Verifier, file, name string, deadLetters *string, stderr io.Writer) error {
	cfg, err := loadDeliveryConfig(file)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(cfg.Outputs, func(o fanout.OutputConfig) bool { return o.Name == name })
	if i < 0 {
		return fmt.Errorf("--output: %s has no output named %q", file, name)
	}
	if *deadLetters == "" {
		if _, err := os.Stat(cfg.DeadLetter.Dir); err == nil {
			*deadLetters = cfg.DeadLetter.Dir
		}
	}
	read := func(source string, r io.Reader) error { return v.ReadNDJSON(r, source) }
	// A type that can read its destination from its settings alone (the
	// file) is read that way: building the output could change what it
	// reads.
	if rb, ok := cfg.Outputs[i].Settings.(readBacker); ok {
		return rb.ReadBack(ctx, read)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	out, err := fanout.NewOutput(ctx, standard.Registry(), &cfg.Outputs[i], fanout.Deps{Logger: logger, Stdout: io.Discard, Version: version})
	if err != nil {
		return fmt.Errorf("output %s: %w", name, err)
	}
	defer out.Close(context.WithoutCancel(ctx))
	rb, ok := out.(readBacker)
	if !ok {
		return fmt.Errorf("output %s: type %s cannot be read back; verify what its receiver stored as FILE arguments", name, cfg.Outputs[i].Type)
	}
	return rb.ReadBack(ctx, read)
}

// readDeadLetters feeds the sealed events of a dead-letter store to v.
func readDeadLetters(v *integrity.Verifier, dir string) error {
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("--dead-letters: %w", err)
	}
	return dlq.Walk(dir, func(e dlq.Entry) error {
		if len(e.Event) == 0 {
			return nil
		}
		var ev auditpipe.Event
		if err := eventjson.Decode(e.Event, &ev); err != nil {
			return nil // not an event the verifier could use; dlq list shows it
		}
		v.AddDeadLettered(&ev, integrity.Where{Source: e.File, Line: int64(e.Line)})
		return nil
	})
}
