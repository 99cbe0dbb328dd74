package sandbox

import (
	"fmt"
	"os"

	"github.com/nsbox/nsbox/internal/containerenv"
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
			Env:        containerenv.Set(os.Environ()),
			UID:        plan.UID,
			GID:        plan.GID,
			NoNewPrivs: true,
		},
		Namespaces: AllNamespaces(),
		Mapping:    plan,
	}, nil
}

// fillIn plans, at Start, what spec leaves unset, so that a Spec with only
// Process.Args runs, as an exec.Cmd does, in a sandbox:
//
//   - a nil Process.Env becomes the caller's environment (os.Environ);
//   - an empty Mapping (no UIDs, no GIDs; not with the bubblewrap-only
//     Enter.User or WriteMaps, which bring their own maps) becomes
//     mapping.ForCaller's plan of the caller's own uid and gid, made
//     inner 0 when Process.UID is 0 (root inside, as unshare -r), else
//     mapped onto themselves;
//   - with an empty Mapping, zero Namespaces and nil Mounts (nothing of
//     the sandbox said), every namespace and the default view of the
//     working directory (HostView), as Default plans them. A Spec with
//     a Mapping keeps zero Namespaces and nil Mounts as they are: every
//     namespace shared, the caller's mount tree.
//
// It writes the result into spec, which then shows what ran.
func (s *Spec) fillIn() error {
	s.Process.inheritEnv()
	if s.ext.Enter.User != nil || s.ext.WriteMaps != nil || len(s.Mapping.UIDs) > 0 || len(s.Mapping.GIDs) > 0 {
		return nil
	}
	plan, err := mapping.ForCaller(mapping.Request{
		UID: uint32(os.Getuid()), GID: uint32(os.Getgid()),
		Mode: mapping.Single, Root: s.Process.UID == 0,
	})
	if err != nil {
		return &SpecError{Field: "Mapping", Problem: "empty, and the caller's own ids cannot be mapped", Err: err}
	}
	if s.Namespaces == (Namespaces{}) && s.Mounts == nil {
		cwd, err := os.Getwd()
		if err != nil {
			return &SpecError{Field: "Mounts", Problem: "nil, and the default view needs the working directory", Err: err}
		}
		s.Namespaces = AllNamespaces()
		s.Mounts = HostView(cwd)
	}
	s.Mapping = plan
	return nil
}

// inheritEnv gives a nil Env the caller's environment, as os/exec does.
func (p *Process) inheritEnv() {
	if p.Env == nil {
		p.Env = os.Environ()
	}
}
