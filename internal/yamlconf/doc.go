// Package yamlconf reads auditpipe's YAML configuration files the one way
// both front doors (the sidecar's file, the Fluent Bit plugin's Config
// file) and the CLI's files are read:
//
//   - ${VAR}, ${VAR:-default}, ${file:PATH} and $$ are expanded inside
//     scalar values of the parsed tree (never in keys or comments), so that
//     a substituted secret is a value, not YAML: a password holding ": ",
//     "#" or quotes cannot change the document's structure;
//   - decoding is strict: an unknown key is an error naming its line and
//     key path, because a misspelt option silently keeping its default is
//     how an audit pipeline ends up unauthenticated;
//   - every problem is reported, joined, each a *keypath.Error carrying its
//     line and key path as data; a value that held a reference, or sits
//     under a key that may hold a secret, is never shown in an error.
//
// A Document is a file parsed and expanded. Decode reads it into a struct;
// DecodeMapping reads a mapping whose keys are known only once the rest is
// decoded (an output's settings sit under a key named after its type), with
// the same strictness, paths and secrecy.
package yamlconf
