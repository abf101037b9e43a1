// Package config is the sidecar's configuration file: its types, how it is
// loaded (variable expansion, strict decoding, defaults) and how it is
// validated.
//
// One function turns a file into a ready configuration, so every way the
// sidecar starts (the `auditpipe sidecar` command, `--check-config`, tests)
// sees the same defaults and the same errors:
//
//	cfg, err := config.Load("sidecar.yaml", os.LookupEnv)
//
// Load and Parse
//
//   - parse the YAML into a node tree and expand ${VAR}, ${VAR:-default},
//     ${file:PATH} and $$ inside scalar values (never in keys or comments),
//     so that a substituted secret is a value, not YAML: a password holding
//     ": ", "#" or quotes cannot change the document's structure;
//   - decode strictly: an unknown key is an error naming its line and its
//     key path, because a misspelt option silently keeping its default is
//     how an audit pipeline ends up unauthenticated;
//   - apply every default in one step (WithDefaults), each documented on
//     its field;
//   - validate everything and return all problems at once, each naming its
//     key path (`sources[2] (spacelift).auth.hmac.secrets: at least one
//     required`).
//
// Secrets (HMAC secrets, tokens, passwords, header values) never appear in
// an error: messages say what is wrong with a value, not what it is, and
// decoding errors on lines that held a substitution hide the value.
//
// The reading (expansion, strict decoding, secret-free errors) is
// internal/yamlconf's, shared with the Fluent Bit plugin's Config file;
// the outputs' settings are decoded by their types' factories
// (outputs/standard, through outputs/fanout), and the formats' sections are
// declared once in transformers/formats.
//
// README.md documents every key with its default and an example.
package config
