// Package hostcheck explains the host's refusals of a sandbox: it reads
// the sysctls, the LSM state, seccomp and /proc's mounts that decide
// whether unprivileged user namespaces and their mounts work, and words
// the cause and the fix. The sandbox package adds it to its errors; the
// nsbox command's check and its AppArmor profile use it directly.
package hostcheck

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/moby/sys/mountinfo"
	"github.com/nsbox/nsbox/internal/procfs"
	"github.com/nsbox/nsbox/internal/remedy"
)

// Explanations for the host's refusals. Creating the user namespace is
// rarely where a locked-down host says no: on Ubuntu 23.10+ unshare
// succeeds and the namespace just has no capabilities, so the first
// mount, the lo ioctl or sethostname fails with EPERM; a container's
// seccomp filter refuses unshare itself; Docker's masked /proc paths make
// the kernel refuse any new procfs. Each of these looks the same from the
// failing call (EPERM or EACCES), so nsbox reads the host's state when a
// step fails and names the cause and the fix:
//
//   - kernel.apparmor_restrict_unprivileged_userns = 1 with nsbox
//     unconfined (/proc/self/attr/current): the namespace is demoted to
//     the unprivileged_userns profile; an AppArmor profile with "userns,"
//     for nsbox's path lets it through (AppArmorProfile prints it).
//   - a container's AppArmor profile (docker-default, containers-default)
//     denies mount(2) outright.
//   - Seccomp: 2 in /proc/self/status: a seccomp filter, as Docker's,
//     containerd's and Podman's default profiles, refuses unshare and
//     mount without CAP_SYS_ADMIN.
//   - user.max_user_namespaces = 0 (ENOSPC), kernel.unprivileged_userns_clone
//     = 0 (Debian's and Ubuntu's older switch).
//   - mounts over parts of /proc (Docker's masked paths, /proc/kcore bound
//     to /dev/null): the kernel mounts a new procfs only where an existing
//     one is fully visible (fs/namespace.c, mount_too_revealing).
//   - vm.memfd_noexec = 2: no memfd may be executed, so the sealed copy of
//     nsbox (stageexe.go) cannot be run from memory.

// readFileFunc reads a file of /proc or /sys: os.ReadFile, or a fake in
// tests.
type readFileFunc func(name string) ([]byte, error)

// hostFacts is what the explanations are decided from, read once when a
// step fails.
type hostFacts struct {
	maxUserNS        string   // user.max_user_namespaces
	unprivClone      string   // kernel.unprivileged_userns_clone, "" where the kernel lacks it
	apparmorRestrict string   // kernel.apparmor_restrict_unprivileged_userns
	apparmorLabel    string   // our AppArmor label: "unconfined", "nsbox (unconfined)", "docker-default (enforce)"; "" without AppArmor
	seccomp          string   // the Seccomp: field of /proc/self/status: "0", "1" or "2"
	memfdNoexec      string   // vm.memfd_noexec
	procCovers       []string // mount points strictly below /proc, but binfmt_misc
	container        string   // "docker", "podman", "kubernetes" or ""
	exe              string   // the running nsbox binary
}

// readHostFacts gathers hostFacts through read; getenv and exe come from
// the caller (os.Getenv and os.Executable outside tests).
func readHostFacts(read readFileFunc, getenv func(string) string, exe string) hostFacts {
	trim := func(name string) string {
		b, err := read(name)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	f := hostFacts{
		maxUserNS:        trim("/proc/sys/user/max_user_namespaces"),
		unprivClone:      trim("/proc/sys/kernel/unprivileged_userns_clone"),
		apparmorRestrict: trim("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
		memfdNoexec:      trim("/proc/sys/vm/memfd_noexec"),
		exe:              exe,
	}
	// Since Linux 5.1 with several LSMs, AppArmor's own file; before, the
	// shared one (EINVAL when no LSM provides it).
	if f.apparmorLabel = trim("/proc/self/attr/apparmor/current"); f.apparmorLabel == "" {
		f.apparmorLabel = trim("/proc/self/attr/current")
	}
	f.apparmorLabel = strings.TrimRight(f.apparmorLabel, "\x00")
	if b, err := read("/proc/self/status"); err == nil {
		f.seccomp, _ = procfs.StatusField(b, "Seccomp")
	}
	if b, err := read("/proc/self/mountinfo"); err == nil {
		f.procCovers = procCovers(b)
	}
	switch {
	case getenv("KUBERNETES_SERVICE_HOST") != "":
		f.container = "kubernetes"
	case exists(read, "/.dockerenv"):
		f.container = "docker"
	case exists(read, "/run/.containerenv"):
		f.container = "podman"
	}
	return f
}

func exists(read readFileFunc, name string) bool {
	_, err := read(name)
	return err == nil
}

// procCovers returns the mount points strictly below /proc in a
// /proc/self/mountinfo, leaving out binfmt_misc, which the kernel allows
// because it sits on a permanently empty directory.
func procCovers(data []byte) []string {
	mounts, err := mountinfo.GetMountsFromReader(bytes.NewReader(data), nil)
	if err != nil {
		return nil
	}
	var covers []string
	for _, m := range mounts {
		if strings.HasPrefix(m.Mountpoint, "/proc/") && m.Mountpoint != "/proc/sys/fs/binfmt_misc" {
			covers = append(covers, m.Mountpoint)
		}
	}
	return covers
}

// Step is where a sandbox failed, as far as explaining goes.
type Step int

const (
	StepUserns Step = iota // unshare(CLONE_NEWUSER)
	StepMaps               // writing setgroups, uid_map, gid_map
	StepSetup              // inside the namespace: mounts, lo, hostname, setgroups, nested maps
	StepProc               // mounting a new procfs
	StepMemfd              // running nsbox's sealed copy from a memfd
)

// StepOf tells the step from the stage's description of it.
func StepOf(description string) Step {
	if strings.Contains(description, "user namespace") {
		return StepUserns
	}
	if strings.Contains(description, "procfs") || strings.Contains(description, "new /proc") {
		return StepProc
	}
	return StepSetup
}

// explain returns "cause: fix" for errno at step on a host described by
// f, or "" when nothing in f explains it.
func explain(step Step, errno syscall.Errno, f hostFacts) string {
	hint, _ := explainFix(step, errno, f)
	return hint
}

// explainFix is explain, and the remedy in the hint when it is one a
// caller may word itself (the hint holds its remedy.Hint.String).
func explainFix(step Step, errno syscall.Errno, f hostFacts) (string, remedy.Hint) {
	if errno == syscall.ENOSPC && step == StepUserns {
		if f.maxUserNS == "0" {
			return "user namespaces are disabled (user.max_user_namespaces = 0): as root, sysctl -w user.max_user_namespaces=15000", remedy.Hint{}
		}
		return "the limit on user namespaces is reached (user.max_user_namespaces = " + f.maxUserNS +
			" here, counted per user along the nesting): end sandboxes you no longer need, or raise it: sysctl -w user.max_user_namespaces=15000", remedy.Hint{}
	}
	if errno != syscall.EPERM && errno != syscall.EACCES {
		return "", remedy.Hint{}
	}
	if step == StepMemfd {
		if f.memfdNoexec == "2" {
			return "vm.memfd_noexec = 2 forbids executing the in-memory copy of nsbox: install nsbox owned by root (e.g. make install), so no copy is needed, or as root: sysctl -w vm.memfd_noexec=1", remedy.Hint{}
		}
		return "", remedy.Hint{}
	}
	if step == StepUserns && f.unprivClone == "0" {
		return "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0): as root, sysctl -w kernel.unprivileged_userns_clone=1", remedy.Hint{}
	}
	if f.appArmorRestricts() {
		return "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1) and no profile allows them for " +
			f.exe + ": as root, " + AppArmorInstallCommand(f.exe) + " (or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0)", remedy.Hint{}
	}
	if step != StepUserns && f.containerAppArmor() {
		return "the container's AppArmor profile (" + f.apparmorLabel + ") denies mount: start the container with " + f.containerFix("apparmor"), remedy.Hint{}
	}
	if step == StepProc && len(f.procCovers) > 0 {
		sharePID := remedy.Hint{Kind: remedy.SharePID}
		fix := sharePID.String()
		if f.container != "" {
			fix = "start the container with " + f.containerFix("proc") + ", or " + fix
		}
		return "mounts cover parts of this /proc (" + coverList(f.procCovers) +
			"), and the kernel mounts a new procfs only where the existing one is fully visible: " + fix, sharePID
	}
	// nsbox's own filter (internal/seccomp) refuses neither unshare
	// nor mount: past unshare, a filter is only suspect inside a container.
	switch {
	case f.seccomp == "2" && step == StepUserns:
		return "a seccomp filter refuses unshare (Seccomp: 2 in /proc/self/status; container runtimes' default profiles do this): start the container with " + f.containerFix("seccomp"), remedy.Hint{}
	case f.seccomp == "2" && f.container != "":
		return "the container's seccomp filter may refuse this call (Seccomp: 2 in /proc/self/status): start the container with " + f.containerFix("seccomp"), remedy.Hint{}
	}
	return "", remedy.Hint{}
}

// appArmorRestricts: the restriction is on and nsbox runs unconfined (a
// profile with "userns," shows as "nsbox (unconfined)" instead), or is
// already in the demoted profile.
func (f hostFacts) appArmorRestricts() bool {
	if f.apparmorRestrict != "1" {
		return false
	}
	return f.apparmorLabel == "" || f.apparmorLabel == "unconfined" || strings.HasPrefix(f.apparmorLabel, "unprivileged_userns")
}

// containerAppArmor: a container runtime's profile, which denies mount.
func (f hostFacts) containerAppArmor() bool {
	return strings.HasPrefix(f.apparmorLabel, "docker-default") || strings.HasPrefix(f.apparmorLabel, "containers-default") ||
		strings.HasPrefix(f.apparmorLabel, "cri-containerd")
}

// containerFix names the container setting that lifts what: "seccomp",
// "apparmor" or "proc", for the runtime nsbox runs under.
func (f hostFacts) containerFix(what string) string {
	if f.container == "kubernetes" {
		switch what {
		case "seccomp":
			return "securityContext.seccompProfile.type: Unconfined (docs/ci.md)"
		case "apparmor":
			return "securityContext.appArmorProfile.type: Unconfined (docs/ci.md)"
		}
		return "securityContext.procMount: Unmasked and hostUsers: false (docs/ci.md)"
	}
	switch what {
	case "seccomp":
		return "--security-opt seccomp=unconfined (docs/ci.md)"
	case "apparmor":
		return "--security-opt apparmor=unconfined (docs/ci.md)"
	}
	return "--security-opt systempaths=unconfined (docs/ci.md)"
}

func coverList(covers []string) string {
	if len(covers) > 4 {
		return strings.Join(covers[:4], ", ") + fmt.Sprintf(" and %d more", len(covers)-4)
	}
	return strings.Join(covers, ", ")
}

// AppArmorProfile returns the AppArmor profile that lets the nsbox binary
// at exe create user namespaces with capabilities where
// kernel.apparmor_restrict_unprivileged_userns = 1 (Ubuntu 23.10+). It
// confines nothing else ("unconfined"), as Ubuntu's own profiles for
// bwrap and unshare do. It goes to /etc/apparmor.d/nsbox, loaded with
// apparmor_parser -r.
func AppArmorProfile(exe string) string {
	if strings.ContainsAny(exe, " \t") {
		exe = `"` + exe + `"`
	}
	return "abi <abi/4.0>,\ninclude <tunables/global>\n\nprofile nsbox " + exe + " flags=(unconfined) {\n  userns,\n\n  include if exists <local/nsbox>\n}\n"
}

// AppArmorInstallCommand returns one shell command line that installs and
// loads AppArmorProfile(exe).
func AppArmorInstallCommand(exe string) string {
	text := strings.NewReplacer("%", "%%", `\`, `\\`, "'", `'\''`, "\n", `\n`).Replace(AppArmorProfile(exe))
	return "printf '" + text +
		"' > /etc/apparmor.d/nsbox && apparmor_parser -r /etc/apparmor.d/nsbox"
}

// AppArmorProfileNeeded reports whether the kernel restricts unprivileged
// user namespaces and this process runs without a profile that lifts it.
func AppArmorProfileNeeded() bool {
	return currentHostFacts().appArmorRestricts()
}

// currentHostFacts reads the facts of this host and process.
func currentHostFacts() hostFacts {
	exe, err := os.Executable()
	if err != nil {
		exe = "/usr/local/bin/nsbox"
	}
	return readHostFacts(os.ReadFile, os.Getenv, exe)
}

// Explain returns "cause: fix" for errno at step on this host, or "" when
// nothing the host shows explains it.
func Explain(step Step, errno syscall.Errno) string {
	return explain(step, errno, currentHostFacts())
}

// ExplainFix is Explain, and the remedy within the hint when it is one a
// caller may word in its own terms (remedy.None otherwise).
func ExplainFix(step Step, errno syscall.Errno) (string, remedy.Hint) {
	return explainFix(step, errno, currentHostFacts())
}

// MemfdNoexecFix is the fix for a host where vm.memfd_noexec = 2 forbids
// running nsbox's in-memory copy, whether or not this host is one.
func MemfdNoexecFix() string {
	return explain(StepMemfd, syscall.EACCES, hostFacts{memfdNoexec: "2"})
}
