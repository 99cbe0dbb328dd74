package sandbox

import (
	"fmt"
	"os"
	"strings"

	"github.com/nsbox/nsbox/mapping"
)

// Default returns the spec `nsbox run -- ARGS` uses: every namespace, the
// caller's environment (with container=nsbox), its working directory and its own uid and gid
// inside, no_new_privs, the id maps of mapping.Auto (the caller's
// subordinate ids too, when it has some and newuidmap/newgidmap work), and
// the default filesystem view (HostView of the working directory: the
// host read-only with /home, the home directory and /run hidden, a
// private writable home, the working directory writable unless View's
// rule refuses it, private /tmp, /dev and /proc).
// Edit the result before Start; call Validate after editing the maps.
func Default(args ...string) (*Spec, error) {
	plan, err := mapping.ForCaller(mapping.Request{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Mode: mapping.Auto})
	if err != nil {
		return nil, fmt.Errorf("plan the id maps: %w", err)
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("find the working directory: %w", err)
	}
	return &Spec{
		Mounts: HostView(cwd),
		Process: Process{
			Args:       args,
			Env:        ContainerEnv(os.Environ()),
			UID:        plan.UID,
			GID:        plan.GID,
			NoNewPrivs: true,
		},
		Namespaces: AllNamespaces(),
		Mapping:    plan,
	}, nil
}

// ContainerEnv returns env with "container=nsbox" in place of any
// container variable: the convention (systemd, podman's container=podman)
// by which tools learn they run in a container.
func ContainerEnv(env []string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, "container=") {
			out = append(out, kv)
		}
	}
	return append(out, "container=nsbox")
}
