package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/nsbox/nsbox/cmd/nsbox/internal/flagwords"
	"github.com/nsbox/nsbox/internal/hostcheck"
	"github.com/nsbox/nsbox/mapping"
	"github.com/nsbox/nsbox/sandbox"
)

// The probes of nsbox check start real sandboxes, each adding one step to
// what the one before proved, through the same sandbox.Start that nsbox
// run uses: so a failing step fails here as it would there, with the same
// explanation (internal/hostcheck). The command of each probe is this binary
// ("nsbox version", to /dev/null). A probe that could not be tried is
// shown as such (–), never as passed.

// probe is one step nsbox check tries.
type probe struct {
	name     string
	detail   string // what a pass proves
	neededBy string // "" = every sandbox needs it
	mapMode  string // "single" or "auto"
	// edit turns nsbox run's spec for the probe command into the probe's.
	edit func(s *sandbox.Spec, exe string)
	// refuse, if it returns a cause, fails the probe without trying it:
	// the plan already shows it cannot pass.
	refuse func(plan mapping.Plan) string
	// skip, if it returns a reason, the probe is not tried.
	skip func(plan mapping.Plan) string
}

// hostRoot is the host's tree read-only: what a probe's new root shows so
// that the probe command (this binary) is found.
func hostRoot() []sandbox.Mount {
	return []sandbox.Mount{{Type: sandbox.MountBind, Source: "/", Destination: "/", ReadOnly: true, Flag: "the read-only host root"}}
}

var probes = []probe{
	{name: "user namespace", detail: "created, own uid and gid mapped (%s)", mapMode: "single",
		edit: func(s *sandbox.Spec, _ string) { s.Namespaces = sandbox.Namespaces{}; s.Mounts = nil }},
	{name: "mount namespace", detail: "tmpfs root, read-only bind of /, pivot_root", mapMode: "single",
		edit: func(s *sandbox.Spec, exe string) {
			s.Namespaces = sandbox.Namespaces{Mount: true}
			s.Mounts = append(hostRoot(), sandbox.Mount{Type: sandbox.MountTmpfs, Destination: "/tmp"})
			// The probe command is this binary, which may live under
			// the /tmp just hidden (a copy run from there): bound back
			// read-only at its own path, it runs wherever it is.
			s.Mounts = append(s.Mounts, sandbox.Mount{Type: sandbox.MountBind, Source: exe, Destination: exe, ReadOnly: true, Flag: "the nsbox binary " + exe})
		}},
	{name: "network namespace", detail: "lo up", mapMode: "single",
		edit: func(s *sandbox.Spec, _ string) { s.Namespaces = sandbox.Namespaces{Net: true}; s.Mounts = nil }},
	{name: "UTS, IPC and cgroup namespaces", detail: "hostname set", mapMode: "single",
		edit: func(s *sandbox.Spec, _ string) {
			s.Namespaces = sandbox.Namespaces{UTS: true, IPC: true, Cgroup: true}
			s.Hostname, s.Mounts = "nsbox-check", nil
		}},
	{name: "PID namespace with a new /proc", detail: "procfs mounted", mapMode: "single",
		edit: func(s *sandbox.Spec, _ string) {
			s.Namespaces = sandbox.Namespaces{Mount: true, PID: true}
			s.Mounts = append(hostRoot(), sandbox.Mount{Type: sandbox.MountProc, Destination: "/proc"})
		}},
	{name: "subordinate id maps", detail: "written by newuidmap/newgidmap (%s)", mapMode: "auto",
		neededBy: "more than one uid/gid inside (--map auto)",
		edit: func(s *sandbox.Spec, _ string) {
			s.Namespaces = sandbox.Namespaces{}
			s.Mounts = nil
			// No quiet retry with the caller's ids alone: a helper that
			// fails must fail the probe, with its own message.
			s.Mapping.Fallback = false
		},
		refuse: func(plan mapping.Plan) string {
			// Subordinate ids the plan could not use (missing or unusable
			// helpers, a uid range without a gid range): the probe fails
			// with the cause, it is not "not tried".
			if plan.Notice != "" {
				why, _, _ := strings.Cut(plan.Notice, "; mapping only ")
				return why
			}
			return ""
		},
		skip: func(plan mapping.Plan) string {
			if len(plan.UIDs) == 1 && plan.UIDs[0].Count == 1 {
				return "no subordinate ids to map (see the subordinate ids line)"
			}
			return ""
		}},
	{name: "TAP device", detail: "created and configured in a network namespace", mapMode: "single",
		neededBy: "--net user",
		edit: func(s *sandbox.Spec, _ string) {
			s.Namespaces = sandbox.Namespaces{Net: true}
			s.Mounts = nil
			s.Network = &sandbox.Network{TAP: sandbox.TAP{Name: "nsbox0"}, Serve: func(tap *os.File) (func() error, error) {
				tap.Close()
				return func() error { return nil }, nil
			}}
		}},
}

// sandboxCheck is a check that starts sandboxes of its own; name and
// neededBy label it when it is not tried.
type sandboxCheck struct {
	name, neededBy string
	run            func() checkResult
}

// runProbes tries the user namespace first and, if it works, the other
// probes and extra side by side (a network namespace alone costs ~20 ms
// to create and tear down). Results keep the probes' order, then extra's.
// ok is false when a step every sandbox needs failed.
func runProbes(extra ...sandboxCheck) (results []checkResult, ok bool) {
	exe, err := os.Executable()
	if err != nil {
		return []checkResult{{Name: "user namespace", Detail: "find the nsbox binary: " + err.Error()}}, false
	}
	results = make([]checkResult, len(probes)+len(extra))
	results[0] = probes[0].run(exe)
	if !results[0].OK {
		for i, p := range probes[1:] {
			results[1+i] = checkResult{Name: p.name, NeededBy: p.neededBy, Skipped: true, Detail: "not tried: needs a user namespace"}
		}
		for i, c := range extra {
			results[len(probes)+i] = checkResult{Name: c.name, NeededBy: c.neededBy, Skipped: true, Detail: "not tried: needs a user namespace"}
		}
		return results, false
	}
	var wg sync.WaitGroup
	for i, p := range probes[1:] {
		wg.Go(func() { results[1+i] = p.run(exe) })
	}
	for i, c := range extra {
		wg.Go(func() { results[len(probes)+i] = c.run() })
	}
	wg.Wait()
	ok = true
	for _, r := range results {
		if !r.OK && !r.Skipped && r.NeededBy == "" {
			ok = false
		}
	}
	return results, ok
}

// run starts the probe's sandbox and waits for it.
func (p probe) run(exe string) checkResult {
	r := checkResult{Name: p.name, NeededBy: p.neededBy}
	f := newRunFlags()
	f.mapMode = p.mapMode
	spec, _, err := f.spec([]string{exe, "version"})
	if err == nil && p.refuse != nil {
		if why := p.refuse(spec.Mapping); why != "" {
			r.Detail, r.Fix = splitFix(why)
			return r
		}
	}
	if err == nil && p.skip != nil {
		if why := p.skip(spec.Mapping); why != "" {
			r.Skipped, r.Detail = true, "not tried: "+why
			return r
		}
	}
	if err == nil {
		p.edit(spec, exe)
		spec.Process.Env = []string{}
		spec.Process.Cwd = "/"
		spec.Process.Stdin, spec.Process.Stdout, spec.Process.Stderr = nil, nil, nil
		err = startAndWait(spec)
	}
	if err != nil {
		r.Detail, r.Fix = splitFix(flagwords.Reword(err))
		return r
	}
	r.OK = true
	r.Detail = p.detail
	if strings.Contains(p.detail, "%s") {
		r.Detail = fmt.Sprintf(p.detail, "uid map "+strings.ReplaceAll(strings.TrimSpace(mapping.Format(spec.Mapping.UIDs)), "\n", ", "))
	}
	return r
}

func startAndWait(spec *sandbox.Spec) error {
	sb, err := sandbox.Start(context.Background(), spec)
	if err != nil {
		return err
	}
	if err := sb.Wait(); err != nil {
		var exit *sandbox.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("the probe command (nsbox version) failed inside: %w", err)
		}
		return err
	}
	return nil
}

// splitFix cuts "what failed; fix: how" into its two halves.
func splitFix(msg string) (detail, fix string) {
	if before, after, ok := strings.Cut(msg, "; fix: "); ok {
		return before, after
	}
	if before, after, ok := strings.Cut(msg, "; likely cause: "); ok {
		return before, after
	}
	return msg, ""
}

// checkAppArmor reports the AppArmor profile nsbox needs where the kernel
// restricts unprivileged user namespaces and none is loaded for it; nil
// where none is needed.
func checkAppArmor() *checkResult {
	if !hostcheck.AppArmorProfileNeeded() {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		exe = "/usr/local/bin/nsbox"
	}
	return &checkResult{
		Name:    "AppArmor profile",
		Detail:  "kernel.apparmor_restrict_unprivileged_userns = 1 and no profile allows user namespaces for " + exe,
		Fix:     "as root, put this in /etc/apparmor.d/nsbox and run apparmor_parser -r /etc/apparmor.d/nsbox (make install does both):",
		Profile: hostcheck.AppArmorProfile(exe),
	}
}
