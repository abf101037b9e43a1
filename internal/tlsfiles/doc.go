// Package tlsfiles keeps TLS key pairs and CA bundles in step with their
// files, so that a certificate rotated on disk (by cert-manager, through
// the kubelet's `..data` symlink swap in a mounted Secret) is used by the
// next handshake without a restart.
//
// Files are checked lazily, when a handshake or a request needs them, and
// at most once per interval (default one second): a stat of each file
// (following symlinks, so a swapped `..data` shows as a new inode), and a
// full read every minute in case a file was rewritten in place without
// its size or time changing. Only content that differs is parsed. New
// content that does not load (half-written, a certificate that does not
// match its key, no PEM block) leaves the last good one in use and is
// logged once, without the files' content; the next change is tried
// again.
//
// Servers get their certificate from GetCertificate and their client CAs
// from GetConfigForClient (see NewServer). Clients get their certificate
// from GetClientCertificate; a client's CA bundle is its RootCAs, so that
// Go's own verification (chain and host name, including IP addresses)
// runs unchanged: an HTTP client swaps its transport for a copy with the
// new pool (Transport), a dialer builds a fresh configuration for each
// connection (DialContext).
package tlsfiles
