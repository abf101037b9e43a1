// Package standard lists the output types auditpipe ships, one line each:
// the sidecar, the Fluent Bit plugin and the CLI build their outputs from
// its Registry. A new output type is a package with a NewFactory function
// and a line here.
package standard
