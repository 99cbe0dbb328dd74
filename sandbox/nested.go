package sandbox

import "github.com/nsbox/nsbox/mapping"

// The kernel mounts devpts only in a user namespace where inner root is
// mapped (its ptmx node belongs to inner 0). Without subordinate ids and
// without --root, the plan maps just the caller's own ids onto themselves,
// and a new root's /dev would have no pty instance of its own.
//
// So nsbox does what bubblewrap does: the user namespace maps inner 0 to
// the caller for setup, and the command gets a nested user namespace that
// maps its ids back onto that 0 ("1000 0 1"): the command still runs as
// the caller's uid, but /proc/self/uid_map shows the nested map, and the
// sandbox's other namespaces belong to the outer user namespace.

// nesting is the plan the launcher applies to the stage's user namespace
// and, when nested is set, the ids the command's nested namespace maps
// onto inner 0.
type nesting struct {
	plan             mapping.Plan
	nested           bool
	nestUID, nestGID uint32
}

// planNesting decides whether s needs the nested user namespace: a new
// root, an unprivileged plan of the caller's own ids only, root unmapped.
func planNesting(s *Spec) nesting {
	p := s.Mapping
	n := nesting{plan: p}
	own := func(ext []mapping.Extent, host uint32) bool {
		return len(ext) == 1 && ext[0].Count == 1 && ext[0].Outer == host
	}
	if s.Mounts == nil || !s.Namespaces.Mount || p.Privileged ||
		!own(p.UIDs, p.HostUID) || !own(p.GIDs, p.HostGID) ||
		(p.UIDs[0].Inner == 0 && p.GIDs[0].Inner == 0) {
		return n
	}
	n.nested = true
	n.nestUID, n.nestGID = p.UIDs[0].Inner, p.GIDs[0].Inner
	n.plan.UIDs = []mapping.Extent{{Inner: 0, Outer: p.HostUID, Count: 1}}
	n.plan.GIDs = []mapping.Extent{{Inner: 0, Outer: p.HostGID, Count: 1}}
	return n
}
