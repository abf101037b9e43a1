package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// drainSlack is how much longer than the drain's timeout the command
// waits for the answer, so the sidecar's 503 with what is left arrives
// instead of a client-side timeout.
const drainSlack = 10 * time.Second

// drainCmd asks a running sidecar to drain (POST /-/drain): it stops
// taking events and the command waits until its queue is delivered. It is
// a Kubernetes preStop hook: the distroless image has no shell or curl,
// and the exit code tells the kubelet's log whether the queue was left
// empty.
func drainCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("drain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "http://127.0.0.1:8080", "the sidecar's base URL; it accepts a drain from loopback only")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the outputs to deliver the queue")
	caFile := fs.String("ca-file", "", "CA certificates (PEM) to verify an https sidecar with; default the system's")
	serverName := fs.String("server-name", "", "the name the https sidecar's certificate carries; default the URL's host")
	certFile := fs.String("cert-file", "", "client certificate (PEM), when the sidecar requires one (server.tls.client_ca_file)")
	keyFile := fs.String("key-file", "", "the client certificate's key (PEM)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: auditpipe drain [--url URL] [--timeout D] [TLS flags]

Takes a running sidecar out of service for good (/readyz and new events
answer 503) and waits until every output has delivered or dead-lettered
its queue. Exits 0 when the queue is empty, 1 when the timeout left events
queued (they stay on disk) or the sidecar could not be asked.

Flags:`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 || *timeout <= 0 || (*certFile == "") != (*keyFile == "") {
		fs.Usage()
		return exitUsage
	}
	u, err := url.Parse(*base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(stderr, "auditpipe drain: --url %q: want http://HOST:PORT or https://HOST:PORT\n", *base)
		return exitUsage
	}
	client, err := drainClient(*caFile, *serverName, *certFile, *keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "auditpipe drain: %v\n", err)
		return exitUsage
	}
	u = u.JoinPath("/-/drain")
	u.RawQuery = url.Values{"timeout": {timeout.String()}}.Encode()
	ctx, cancel := context.WithTimeout(ctx, *timeout+drainSlack)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		fmt.Fprintf(stderr, "auditpipe drain: %v\n", err)
		return exitUsage
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "auditpipe drain: %v\n", err)
		return exitFailed
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		fmt.Fprintf(stderr, "auditpipe drain: reading the answer: %v\n", err)
		return exitFailed
	}
	switch resp.StatusCode {
	case http.StatusOK:
		fmt.Fprintf(stdout, "%s", body)
		return exitOK
	case http.StatusServiceUnavailable:
		fmt.Fprintf(stderr, "auditpipe drain: not drained, events stay queued: %s", body)
	default:
		fmt.Fprintf(stderr, "auditpipe drain: %s: %s\n", resp.Status, strings.TrimSpace(string(body)))
	}
	return exitFailed
}

func drainClient(caFile, serverName, certFile, keyFile string) (*http.Client, error) {
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", caFile)
		}
		cfg.RootCAs = pool
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert-file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	// A proxy from the environment must not carry a loopback drain away.
	tr.Proxy = nil
	return &http.Client{Transport: tr}, nil
}
