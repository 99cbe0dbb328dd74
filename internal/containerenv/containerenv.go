// Package containerenv marks an environment as a container's, by the
// convention (systemd, podman's container=podman) through which tools
// learn they run in one.
package containerenv

import "strings"

// Set returns env with "container=nsbox" in place of any
// container variable: the convention (systemd, podman's container=podman)
// by which tools learn they run in a container.
func Set(env []string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, "container=") {
			out = append(out, kv)
		}
	}
	return append(out, "container=nsbox")
}
