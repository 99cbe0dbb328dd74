package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nsbox/nsbox/cmd/nsbox/internal/flagwords"
	"github.com/nsbox/nsbox/internal/cgroup"
	"github.com/nsbox/nsbox/mapping"
	"github.com/nsbox/nsbox/sandbox"
	"github.com/nsbox/nsbox/subid"
)

const checkUsage = `Usage: nsbox check [--json]

Checks what this host and user need for nsbox by trying each step in a
throwaway sandbox (user namespace and maps, mount namespace, network
namespace with lo up, hostname, a new /proc, subordinate id maps, a TAP
device, overlayfs) and then a default sandbox. Prints each item with ✓
(tried, works), ✗ (tried, fails: the cause and the exact fix) or – (not
tried, and why). Once a step every sandbox needs fails, the later ones are
not tried. Items marked "needed by" are only required by those features.

Exit status: 0 when every required step and a default sandbox work, 125
otherwise.

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
	Skipped  bool   `json:"skipped,omitempty"`  // not tried; Detail says why
	Profile  string `json:"profile,omitempty"`  // a file to install, printed after Fix
}

func checkCommand(args []string, stdout io.Writer) error {
	fs := newCheckFlags()
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("check: %v; fix: nsbox check [--json]", err)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("check: takes no arguments, got %q; fix: nsbox check [--json]", fs.Args())}
	}
	asJSON, _ := fs.GetBool("json")
	if help, _ := fs.GetBool("help"); help {
		fmt.Fprint(stdout, checkUsage)
		return nil
	}
	if probe, _ := fs.GetBool("probe-overlay"); probe { // internal: runs inside a user namespace
		return probeOverlay()
	}
	results, ok := runProbes(
		sandboxCheck{"overlayfs in a user namespace", overlayNeededBy, checkOverlay},
		sandboxCheck{"a default sandbox starts", "", checkDefaultSandbox},
	)
	if aa := checkAppArmor(); aa != nil {
		results = append([]checkResult{*aa}, results...)
	}
	results = append(results,
		checkSubids(),
		checkCgroups(),
		checkLandlock(),
		checkSeccomp(),
		checkPing(),
	)
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
			switch {
			case r.Skipped:
				mark = "–"
			case !r.OK:
				mark = "✗"
			}
			line := fmt.Sprintf("%s %s: %s", mark, r.Name, r.Detail)
			if !r.OK && r.NeededBy != "" {
				line += " (needed by " + r.NeededBy + ")"
			}
			if !r.OK && r.Fix != "" {
				line += "\n    fix: " + r.Fix
			}
			if r.Profile != "" {
				line += "\n\n" + r.Profile
			}
			fmt.Fprintln(stdout, line)
		}
	}
	if !ok {
		return &sandbox.ExitError{Code: exitLauncher}
	}
	return nil
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
	free, err := src.FreeRange(mapping.RootFallbackCount)
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

func checkCgroups() checkResult {
	r := checkResult{Name: "cgroup v2 delegation", NeededBy: "--cgroup own (nsbox pause's freezer), --memory, --pids, --cpus"}
	path, err := cgroup.Delegated()
	if err != nil {
		r.Detail, r.Fix, _ = strings.Cut(err.Error(), "; fix: ")
		return r
	}
	r.OK = true
	ctrl := readTrim(filepath.Join(path, "cgroup.controllers"))
	if ctrl == "" {
		ctrl = "none: --cgroup own only" // a hybrid host binds them to cgroup v1
	}
	r.Detail = path + " is delegated (controllers: " + ctrl + ")"
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
		if r.Detail, r.Fix = splitFix(flagwords.Reword(err)); r.Fix == "" {
			r.Fix = "see the items above; run nsbox run -- true for the full error"
		}
		return r
	}
	r.OK = true
	r.Detail = "nsbox run -- true exits 0 (uid map: " + strings.ReplaceAll(strings.TrimSpace(mapping.Format(spec.Mapping.UIDs)), "\n", ", ") + ")"
	if notice != "" {
		r.Detail += "; " + notice
	}
	return r
}

// kernelAtLeast compares a uname release ("6.8.0-45-generic") with major.minor.
func kernelAtLeast(release string, major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(release, "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}
