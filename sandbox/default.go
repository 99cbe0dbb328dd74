package sandbox

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nsbox/nsbox/mapping"
	"github.com/nsbox/nsbox/subid"
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
	plan, err := PlanMaps(mapping.Request{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Mode: mapping.Auto})
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

// PlanMaps plans id maps as nsbox does: CompleteRequest, then
// mapping.NewPlan. When a subordinate range holds host root, the error
// names its line (`/etc/subuid line 3 "bob:0:65536" includes host uid 0;
// fix: …`).
func PlanMaps(req mapping.Request) (mapping.Plan, error) {
	src, owner, err := CompleteRequest(&req)
	if err != nil {
		return mapping.Plan{}, err
	}
	p, err := mapping.NewPlan(req)
	if err != nil {
		return mapping.Plan{}, nameSubidLine(err, src, owner)
	}
	return p, nil
}

// CompleteRequest fills in what req's caller cannot know, from this
// system: the user namespace we run in (req.Here), the caller's
// subordinate ranges from /etc/subuid and /etc/subgid (subid.Source's
// zero value, so NSBOX_SUBUID_FILE and NSBOX_SUBGID_FILE apply) with the
// names messages use, newuidmap and newgidmap when they may be needed,
// and, for real root, a range free in both files (req.Free). req.UID,
// GID, Mode, Root, Users, Groups and HostRoot are the caller's to set.
// It returns the source and owner it read, for nameSubidLine.
func CompleteRequest(req *mapping.Request) (subid.Source, subid.Owner, error) {
	var src subid.Source
	here, err := mapping.CurrentNamespace()
	if err != nil {
		return src, subid.Owner{}, err
	}
	req.Here = here
	explicit := len(req.Users) > 0 || len(req.Groups) > 0
	realRoot := req.UID == 0 && !here.Nested
	// Subordinate ids and helpers matter only when more than our own id
	// may be mapped: skip the file reads otherwise.
	if req.Mode == mapping.Single && !explicit && !realRoot {
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
		req.Helpers = mapping.FindHelpers()
	}
	if (realRoot && (len(req.SubUIDs) == 0 || len(req.SubGIDs) == 0)) || (len(req.SubUIDs) > 0) != (len(req.SubGIDs) > 0) {
		req.Free, _ = FreeSubidRange(src)
	}
	return src, owner, nil
}

// FreeSubidRange returns the lowest range of 65536 ids that no line of
// src's /etc/subuid or /etc/subgid uses, whoever owns it: what real root
// maps onto without subordinate ids of its own, and what `nsbox check`
// suggests adding. Ranges an NSS module serves are not seen.
func FreeSubidRange(src subid.Source) (subid.Range, error) {
	var taken [][]subid.Range
	for _, kind := range []subid.Kind{subid.UIDs, subid.GIDs} {
		entries, err := src.Entries(kind)
		if err != nil {
			return subid.Range{}, err
		}
		taken = append(taken, subid.Ranges(entries))
	}
	r, ok := subid.FreeRange(mapping.RootFallbackCount, taken...)
	if !ok {
		return subid.Range{}, fmt.Errorf("no range of %d ids is free in %s and %s", mapping.RootFallbackCount, src.Path(subid.UIDs), src.Path(subid.GIDs))
	}
	return r, nil
}

// nameSubidLine adds the line of /etc/subuid or /etc/subgid that granted
// host root to a *mapping.HostRootError, and a range that is free to move
// it to.
func nameSubidLine(err error, src subid.Source, owner subid.Owner) error {
	var he *mapping.HostRootError
	if !errors.As(err, &he) || he.Explicit || he.Own {
		return err
	}
	kind := subid.UIDs
	if he.GID {
		kind = subid.GIDs
	}
	he.Origin = src.Origin(owner, kind, he.ID)
	if free, ferr := FreeSubidRange(src); ferr == nil {
		he.Free = free
	}
	return err
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
