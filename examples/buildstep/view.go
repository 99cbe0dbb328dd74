package buildstep

import "github.com/nsbox/nsbox/sandbox"

// readOnlyView gives spec the step's filesystem: the host read-only (with
// a private /tmp, /dev and /proc, as nsbox run), the source tree bound
// read-only onto itself, then the output directory bound writable onto
// itself. The mounts apply in order, so an output directory inside the
// source tree is writable too. The step runs as the caller's own id with
// no capabilities, so it cannot remount anything.
func readOnlyView(spec *sandbox.Spec, src, out string) {
	spec.Mounts = append(sandbox.HostView(""),
		sandbox.Mount{Type: sandbox.MountBind, Source: src, Destination: src, ReadOnly: true},
		sandbox.Mount{Type: sandbox.MountBind, Source: out, Destination: out})
}
