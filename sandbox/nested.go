package sandbox

import "github.com/nsbox/nsbox/mapping"

// The command runs one user namespace below the sandbox's.
//
// PID 1 builds the sandbox's mounts in a mount namespace owned by the
// sandbox's user namespace, where it is root. Left there, a command that is
// root too (--root) could undo them: remount a read-only bind writable,
// unmount the private /tmp or /proc and see the host's beneath. So the
// command runs in a nested user namespace, and once the mounts are made,
// its process enters that namespace and unshares a new mount namespace
// there. The kernel copies the mounts into the new mount namespace as
// "locked" (mount_namespaces(7), "Restrictions on mount namespaces"): they
// came from a mount namespace owned by a more privileged user namespace,
// so even with every capability of the nested one, remount cannot clear
// read-only, nosuid, nodev or noexec, and umount cannot reveal what a
// mount covers. The command holds no capability over PID 1 (which stays
// outside) nor over the sandbox's PID namespace.
//
// The nested namespace is made early, by the stage right after the
// sandbox's own has its maps and before PID 1 exists: one clone makes it
// and, inside it, the network, UTS and IPC namespaces, whose owner it
// thus is; the stage writes its maps and enters those three, and PID 1
// inherits them (stage nest.c, nest_hold). So root inside may configure
// its own network and hostname as after `unshare -rn` (ip link, raw
// sockets, hostname), while PID 1, one level up, keeps every capability
// over them for the loopback, the TAP and the hostname it sets up. nsbox
// exec enters the command's namespaces, so everything the sandbox runs
// shares one view. Where the sandbox's maps are written late
// (bwrapext.Settings.WriteMaps) or given (its Enter), the command's process unshares
// the nested pair itself after setup, and those namespaces stay the
// sandbox's.
//
// The nested maps are the identity over the ids the sandbox maps, so ids
// mean the same inside as in the sandbox's namespace, with one exception:
// devpts needs inner 0 mapped, so without subordinate ids and without
// --root the sandbox's namespace maps inner 0 to the caller for setup, and
// the nested one maps the command's ids back onto that 0 ("1000 0 1", as
// bubblewrap does). Inside, /proc/self/uid_map shows the nested map.

// nesting is the plan the launcher applies to the stage's user namespace
// and, when nested is set, the maps PID 1 writes for the command's nested
// namespace (inner: the command's ids; outer: ids of the sandbox's).
type nesting struct {
	plan       mapping.Plan
	nested     bool
	uids, gids []mapping.Extent
	// outerUID, outerGID are the command's ids as the sandbox's namespace
	// sees them: whom setup gives the command's files and terminal.
	outerUID, outerGID uint32
}

// planNesting decides the maps of the stage's and the command's user
// namespaces. Every sandbox with a mount namespace of its own nests; one
// that shares the launcher's has no mounts of nsbox's to lock.
func planNesting(s *Spec) nesting {
	p := s.Mapping
	n := nesting{plan: p, outerUID: s.Process.UID, outerGID: s.Process.GID}
	if !s.Namespaces.Mount {
		return n
	}
	n.nested = true
	own := func(ext []mapping.Extent, host uint32) bool {
		return len(ext) == 1 && ext[0].Count == 1 && ext[0].Outer == host
	}
	if s.Mounts != nil && !p.Privileged && own(p.UIDs, p.HostUID) && own(p.GIDs, p.HostGID) &&
		!(p.UIDs[0].Inner == 0 && p.GIDs[0].Inner == 0) {
		// The setup form: inner 0 is the caller for setup, the command's
		// ids map onto it.
		n.uids = []mapping.Extent{{Inner: p.UIDs[0].Inner, Outer: 0, Count: 1}}
		n.gids = []mapping.Extent{{Inner: p.GIDs[0].Inner, Outer: 0, Count: 1}}
		n.plan.UIDs = []mapping.Extent{{Inner: 0, Outer: p.HostUID, Count: 1}}
		n.plan.GIDs = []mapping.Extent{{Inner: 0, Outer: p.HostGID, Count: 1}}
		n.outerUID, n.outerGID = 0, 0
		return n
	}
	n.uids, n.gids = identity(p.UIDs), identity(p.GIDs)
	return n
}

// identity maps every inner id of ext onto itself.
func identity(ext []mapping.Extent) []mapping.Extent {
	out := make([]mapping.Extent, len(ext))
	for i, e := range ext {
		out[i] = mapping.Extent{Inner: e.Inner, Outer: e.Inner, Count: e.Count}
	}
	return out
}
