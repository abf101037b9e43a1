package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
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
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: auditpipe verify --public-key FILE [--public-key FILE...] [--json] [FILE...]\n\nVerifies the hash chains and signatures of NDJSON events (the file output, S3 objects, gzip or not; stdin without FILE or with -).\nExit status: 0 verified, 1 an integrity failure, 2 usage or I/O error.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if len(keys) == 0 {
		fmt.Fprintln(stderr, "auditpipe verify: --public-key: at least one is required")
		return exitUsage
	}
	var pubs []ed25519.PublicKey
	for _, f := range keys {
		b, err := os.ReadFile(f)
		if err == nil {
			var pub ed25519.PublicKey
			if pub, err = integrity.ParsePublicKey(b); err == nil {
				pubs = append(pubs, pub)
				continue
			}
		}
		fmt.Fprintf(stderr, "auditpipe verify: --public-key %s: %v\n", f, err)
		return exitUsage
	}
	v, err := integrity.NewVerifier(pubs...)
	if err != nil {
		fmt.Fprintf(stderr, "auditpipe verify: %v\n", err)
		return exitUsage
	}
	files := fs.Args()
	if len(files) == 0 {
		files = []string{"-"}
	}
	for _, f := range files {
		if ctx.Err() != nil {
			return exitUsage
		}
		if err := readInto(v, f, stdin); err != nil {
			fmt.Fprintf(stderr, "auditpipe verify: %v\n", err)
			return exitUsage
		}
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
