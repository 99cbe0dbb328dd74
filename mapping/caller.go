package mapping

import (
	"errors"

	"github.com/nsbox/nsbox/subid"
)

// The caller's defaults: what a Request needs from this system
// (the namespace we run in, the caller's subordinate ids, the helpers),
// read where the caller asks for more than its own ids.

// ForCaller plans id maps for the calling process: Complete, then
// NewPlan. When a subordinate range holds host root, the error
// names its line (`/etc/subuid line 3 "bob:0:65536" includes host uid 0;
// fix: …`).
func ForCaller(req Request) (Plan, error) {
	src, owner, err := complete(&req)
	if err != nil {
		return Plan{}, err
	}
	p, err := NewPlan(req)
	if err != nil {
		return Plan{}, nameSubidLine(err, src, owner)
	}
	return p, nil
}

// Complete fills in what req's caller cannot know, from this
// system: the user namespace we run in (req.Here), the caller's
// subordinate ranges from /etc/subuid and /etc/subgid (subid.Source's
// zero value, so NSBOX_SUBUID_FILE and NSBOX_SUBGID_FILE apply) with the
// names messages use, newuidmap and newgidmap when they may be needed,
// and, for real root, a range free in both files (req.Free). req.UID,
// GID, Mode, Root, Users, Groups and HostRoot are the caller's to set.
func Complete(req *Request) error {
	_, _, err := complete(req)
	return err
}

// complete is Complete, returning the source and owner it read, for
// nameSubidLine.
func complete(req *Request) (subid.Source, subid.Owner, error) {
	var src subid.Source
	here, err := CurrentNamespace()
	if err != nil {
		return src, subid.Owner{}, err
	}
	req.Here = here
	explicit := len(req.Users) > 0 || len(req.Groups) > 0
	realRoot := req.UID == 0 && !here.Nested
	if !req.ReadsSubIDs(here) {
		return src, subid.Owner{}, nil
	}
	owner, err := subid.CurrentOwner()
	if err != nil {
		return src, owner, err
	}
	req.Owner = owner.Name
	req.SubUIDFile, req.SubGIDFile = src.Path(subid.UIDs), src.Path(subid.GIDs)
	if req.SubUIDs, err = src.Lookup(owner, subid.UIDs); err != nil {
		return src, owner, err
	}
	if req.SubGIDs, err = src.Lookup(owner, subid.GIDs); err != nil {
		return src, owner, err
	}
	if !req.Privileged() && (len(req.SubUIDs) > 0 || len(req.SubGIDs) > 0 || explicit) {
		req.Helpers = FindHelpers()
	}
	if (realRoot && (len(req.SubUIDs) == 0 || len(req.SubGIDs) == 0)) || (len(req.SubUIDs) > 0) != (len(req.SubGIDs) > 0) {
		req.Free, _ = src.FreeRange(RootFallbackCount)
	}
	return src, owner, nil
}

// ReadsSubIDs reports whether Complete, for req in the user namespace
// here, reads the caller's subordinate ids (/etc/passwd for the owner's
// name, /etc/subuid and /etc/subgid, or getsubids) and looks for
// newuidmap and newgidmap. Subordinate ids and helpers matter only when
// more than the caller's own ids may be mapped: another mode than
// Single, explicit Users or Groups, or real root (uid 0 of the initial
// namespace, whose single map falls back on a range of the files). A
// plan made where this is false depends on none of those files (the
// replayed start's checks leave them out, cmd/nsbox/replay.go).
func (req Request) ReadsSubIDs(here Namespace) bool {
	explicit := len(req.Users) > 0 || len(req.Groups) > 0
	realRoot := req.UID == 0 && !here.Nested
	return req.Mode != Single || explicit || realRoot
}

// nameSubidLine adds the line of /etc/subuid or /etc/subgid that granted
// host root to a *HostRootError, and a range that is free to move
// it to.
func nameSubidLine(err error, src subid.Source, owner subid.Owner) error {
	var he *HostRootError
	if !errors.As(err, &he) || he.Explicit || he.Own {
		return err
	}
	kind := subid.UIDs
	if he.GID {
		kind = subid.GIDs
	}
	he.Origin = src.Origin(owner, kind, he.ID)
	if free, ferr := src.FreeRange(RootFallbackCount); ferr == nil {
		he.Free = free
	}
	return err
}
