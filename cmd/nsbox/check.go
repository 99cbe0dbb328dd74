package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/nsbox/nsbox/mapping"
	"github.com/nsbox/nsbox/sandbox"
	"github.com/nsbox/nsbox/subid"
	"golang.org/x/sys/unix"
)

const checkUsage = `Usage: nsbox check [--json]

Checks what this host and user need for nsbox, really starting a small
sandbox, and prints each item with ✓ or ✗ and the exact fix. Items marked
"needed by" are only required by those features.

Exit status: 0 when a default sandbox starts, 125 otherwise.

Examples:
  nsbox check
  nsbox check --json | jq '.checks[] | select(.ok | not)'
`

// checkResult is one line of nsbox check.
type checkResult struct {
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Detail   string `json:"detail"`
	Fix      string `json:"fix,omitempty"`
	NeededBy string `json:"neededBy,omitempty"` // "" = needed by every sandbox
}

func checkCommand(args []string, stdout io.Writer) error {
	asJSON := false
	for _, a := range args {
		switch a {
		case "--json":
			asJSON = true
		case "--help", "-h":
			fmt.Fprint(stdout, checkUsage)
			return nil
		case "--probe-overlay": // internal: runs inside a user namespace
			return probeOverlay()
		default:
			return usageError{fmt.Sprintf("check: unknown flag %s; fix: nsbox check [--json]", a)}
		}
	}
	results := []checkResult{
		checkUserNamespaces(),
		checkSubids(),
		checkHelpers(),
		checkTun(),
		checkOverlay(),
		checkCgroups(),
		checkLandlock(),
		checkPing(),
		checkDefaultSandbox(),
	}
	ok := results[len(results)-1].OK
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			OK     bool          `json:"ok"`
			Checks []checkResult `json:"checks"`
		}{ok, results}); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			mark := "✓"
			if !r.OK {
				mark = "✗"
			}
			line := fmt.Sprintf("%s %s: %s", mark, r.Name, r.Detail)
			if !r.OK && r.NeededBy != "" {
				line += " (needed by " + r.NeededBy + ")"
			}
			if !r.OK && r.Fix != "" {
				line += "\n    fix: " + r.Fix
			}
			fmt.Fprintln(stdout, line)
		}
	}
	if !ok {
		return &sandbox.ExitError{Code: sandbox.CodeLauncher}
	}
	return nil
}

func checkUserNamespaces() checkResult {
	r := checkResult{Name: "user namespaces"}
	if hint := sandbox.UserNamespaceHint(); hint != "" {
		before, after, _ := strings.Cut(hint, ": ")
		r.Detail, r.Fix = before, after
		return r
	}
	r.OK = true
	r.Detail = "allowed (user.max_user_namespaces = " + readTrim("/proc/sys/user/max_user_namespaces") + ")"
	return r
}

func checkSubids() checkResult {
	r := checkResult{Name: "subordinate ids", NeededBy: "more than one uid/gid inside (--map auto)"}
	owner, err := subid.CurrentOwner()
	if err != nil {
		r.Detail = err.Error()
		return r
	}
	var src subid.Source
	uids, uerr := src.Lookup(owner, subid.UIDs)
	gids, gerr := src.Lookup(owner, subid.GIDs)
	name := owner.Name
	if name == "" {
		name = fmt.Sprint(owner.UID)
	}
	switch {
	case uerr != nil:
		r.Detail = uerr.Error()
	case gerr != nil:
		r.Detail = gerr.Error()
	case len(uids) == 0 || len(gids) == 0:
		r.Detail = fmt.Sprintf("no entry for %s in %s or %s", name, src.Path(subid.UIDs), src.Path(subid.GIDs))
		r.Fix = subidFix(src, name, len(uids) == 0, len(gids) == 0)
	default:
		r.OK = true
		r.Detail = fmt.Sprintf("%s has uids %s and gids %s", name, rangesText(uids), rangesText(gids))
	}
	return r
}

// subidFix suggests the usermod line that gives name the ranges it
// lacks, with a range that no line of /etc/subuid or /etc/subgid uses.
func subidFix(src subid.Source, name string, needUIDs, needGIDs bool) string {
	free, err := sandbox.FreeSubidRange(src)
	if err != nil {
		return fmt.Sprintf("as root: give %s a range of 65536 ids no one else uses in %s and %s (%v)", name, src.Path(subid.UIDs), src.Path(subid.GIDs), err)
	}
	r := fmt.Sprintf("%d-%d", free.Start, free.End())
	var args []string
	if needUIDs {
		args = append(args, "--add-subuids", r)
	}
	if needGIDs {
		args = append(args, "--add-subgids", r)
	}
	return fmt.Sprintf("as root: usermod %s %s (free in %s and %s)", strings.Join(args, " "), name, src.Path(subid.UIDs), src.Path(subid.GIDs))
}

func rangesText(rs []subid.Range) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%d–%d", r.Start, uint64(r.Start)+uint64(r.Count)-1))
	}
	return strings.Join(parts, ", ")
}

func checkHelpers() checkResult {
	r := checkResult{Name: "newuidmap/newgidmap", NeededBy: "more than one uid/gid inside (--map auto)"}
	h := mapping.FindHelpers()
	if !h.Usable() {
		r.Detail = h.Problem
		if _, fix, ok := strings.Cut(h.Problem, "fix: "); ok {
			r.Detail, r.Fix = strings.TrimSuffix(strings.TrimSpace(strings.TrimSuffix(h.Problem, fix)), "; fix:"), fix
		}
		return r
	}
	r.OK = true
	r.Detail = h.NewUIDMap + " and " + h.NewGIDMap + " usable"
	return r
}

func checkTun() checkResult {
	r := checkResult{Name: "/dev/net/tun", NeededBy: "--net user"}
	f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		r.Detail = err.Error()
		r.Fix = "as root: chmod 0666 /dev/net/tun (the mode stock distributions use), or modprobe tun"
		return r
	}
	f.Close()
	r.OK = true
	r.Detail = "readable and writable"
	return r
}

// checkOverlay mounts an overlayfs in a throwaway user+mount namespace.
func checkOverlay() checkResult {
	r := checkResult{Name: "overlayfs in a user namespace", NeededBy: "--tmp-overlay, --overlay, --copy-up"}
	cmd := exec.Command("/proc/self/exe", "check", "--probe-overlay")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.Detail = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "nsbox: "))
		if r.Detail == "" {
			r.Detail = err.Error()
		}
		r.Fix = "use a kernel ≥ 5.11 (unprivileged overlayfs with userxattr)"
		return r
	}
	r.OK = true
	r.Detail = "mounts (" + strings.TrimSpace(string(out)) + ")"
	return r
}

func probeOverlay() error {
	dir, err := os.MkdirTemp("", "nsbox-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	j := func(s string) string { return filepath.Join(dir, s) }
	for _, opts := range []string{"userxattr,", ""} {
		data := fmt.Sprintf("%slowerdir=%s,upperdir=%s,workdir=%s", opts, j("lower"), j("upper"), j("work"))
		if err = unix.Mount("overlay", j("merged"), "overlay", 0, data); err == nil {
			unix.Unmount(j("merged"), unix.MNT_DETACH)
			fmt.Println(strings.TrimSuffix("overlay "+opts, ","))
			return nil
		}
	}
	return fmt.Errorf("mount overlay: %w", err)
}

func checkCgroups() checkResult {
	r := checkResult{Name: "cgroup v2 delegation", NeededBy: "--memory, --pids, --cpus"}
	path, err := sandbox.DelegatedCgroup()
	if err != nil {
		r.Detail, r.Fix, _ = strings.Cut(err.Error(), "; fix: ")
		return r
	}
	r.OK = true
	r.Detail = path + " is delegated (controllers: " + readTrim(filepath.Join(path, "cgroup.controllers")) + ")"
	return r
}

// checkDefaultSandbox starts what `nsbox run -- true` starts.
func checkDefaultSandbox() checkResult {
	r := checkResult{Name: "a default sandbox starts"}
	f := newRunFlags()
	spec, notice, err := f.spec([]string{"true"})
	if err == nil {
		var sb *sandbox.Sandbox
		if sb, err = sandbox.Start(context.Background(), spec); err == nil {
			err = sb.Wait()
		}
	}
	if err != nil {
		r.Detail = err.Error()
		r.Fix = "see the items above; run nsbox run -- true for the full error"
		return r
	}
	r.OK = true
	r.Detail = "nsbox run -- true exits 0 (uid map: " + strings.ReplaceAll(strings.TrimSpace(mapping.Format(spec.Mapping.UIDs)), "\n", ", ") + ")"
	if notice != "" {
		r.Detail += "; " + notice
	}
	return r
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}
