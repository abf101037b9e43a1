//go:build !linux

package external

import "os/exec"

// setProcAttrs does nothing where there is no parent-death signal; Close
// still kills the plugin.
func setProcAttrs(*exec.Cmd) {}
