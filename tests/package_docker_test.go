package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// The Debian package, installed as a user would install it: in a clean
// Debian 12 container (a debootstrap'd bookworm, minbase plus man-db and
// bash-completion, imported with `docker import`, no registry), with no
// network, the package's Depends given as .deb files next to it.
//
// The .deb is NSBOX_DEB (hack/test.sh runs make deb and sets it), else
// built here from NSBOX_BIN with hack/deb.sh. The dependencies' .debs
// (uidmap and libsubid4: a minbase system has the rest) come from the
// host's apt cache or `apt-get download`, Debian's registry.

const debianImage = "nsbox-debian12:local"

// debianMirror is where debootstrap fetches bookworm from.
func debianMirror() string {
	if m := os.Getenv("NSBOX_DEBIAN_MIRROR"); m != "" {
		return m
	}
	return "http://deb.debian.org/debian"
}

// requireDebianImage makes the Debian 12 image once per Docker daemon (it
// is kept: later runs reuse it), or fails the test (skips outside CI).
// mmdebstrap, where installed, makes it about twice as fast as debootstrap
// (on the shared 2-core test machine: 7.7 against 17 minutes, most of it
// fetching and unpacking).
func requireDebianImage(t *testing.T) {
	t.Helper()
	if icmd.RunCommand("docker", "image", "inspect", debianImage).ExitCode == 0 {
		return
	}
	const include = "--include=man-db,bash-completion"
	env := "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	var script string
	switch {
	case lookPath("mmdebstrap"):
		// A tar stream straight into docker import; mmdebstrap leaves no
		// apt lists or downloaded .debs in it.
		script = "mmdebstrap --variant=minbase " + include + " bookworm - " + debianMirror() +
			" | docker import -c '" + env + "' - " + debianImage
	case lookPath("debootstrap"):
		root := filepath.Join(t.TempDir(), "rootfs")
		script = "debootstrap --variant=minbase " + include + " bookworm " + root + " " + debianMirror() +
			" && rm -rf " + root + "/var/cache/apt/archives/*.deb " + root + "/var/lib/apt/lists/*" +
			" && tar -C " + root + " -c . | docker import -c '" + env + "' - " + debianImage
	default:
		cannotRun(t, "neither mmdebstrap nor debootstrap to make the Debian 12 image (apt-get install mmdebstrap; hack/setup-host.sh installs it)")
	}
	t.Logf("making %s once (minutes): %s", debianImage, script)
	if res := icmd.RunCommand("bash", "-o", "pipefail", "-c", script); res.ExitCode != 0 {
		cannotRun(t, "making the Debian 12 image from %s failed (set NSBOX_DEBIAN_MIRROR to a reachable mirror): %s", debianMirror(), res.Combined())
	}
}

func lookPath(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// packageDebs returns a directory holding nsbox_*.deb and the .debs of
// its dependencies.
func packageDebs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	deb := os.Getenv("NSBOX_DEB")
	if deb == "" {
		_, self, _, _ := runtime.Caller(0)
		script := filepath.Join(filepath.Dir(self), "..", "hack", "deb.sh")
		if _, err := os.Stat(script); err != nil {
			cannotRun(t, "no NSBOX_DEB and no hack/deb.sh next to the test's source to build one (make deb; NSBOX_DEB=build/deb/nsbox_…deb)")
		}
		built := t.TempDir()
		cmd := icmd.Command(script, nsboxBin, runtime.GOARCH, built)
		cmd.Dir = filepath.Dir(script)
		icmd.RunCmd(cmd).Assert(t, icmd.Success)
		deb = mustGlob(t, built, "nsbox_*.deb")
	}
	b, err := os.ReadFile(deb)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(filepath.Join(dir, filepath.Base(deb)), b, 0o644))
	// Each as NAME.deb: apt takes the %3a (an epoch's colon) of a
	// downloaded file's name for part of a URL.
	for _, p := range []string{"uidmap", "libsubid4"} {
		cached := mustGlobOptional("/var/cache/apt/archives", p+"_*_"+runtime.GOARCH+".deb")
		if cached == "" {
			dl := icmd.Command("apt-get", "download", p)
			dl.Dir = t.TempDir()
			if res := icmd.RunCmd(dl); res.ExitCode != 0 {
				cannotRun(t, "apt-get download %s (the package's dependency, for a container without network): %s", p, res.Combined())
			}
			cached = mustGlob(t, dl.Dir, p+"_*.deb")
		}
		b, err := os.ReadFile(cached)
		assert.NilError(t, err)
		assert.NilError(t, os.WriteFile(filepath.Join(dir, p+".deb"), b, 0o644))
	}
	return dir
}

func mustGlob(t *testing.T, dir, pattern string) string {
	t.Helper()
	m := mustGlobOptional(dir, pattern)
	assert.Assert(t, m != "", "no %s in %s", pattern, dir)
	return m
}

// mustGlobOptional returns the last file matching pattern in dir, or "".
func mustGlobOptional(dir, pattern string) string {
	m, _ := filepath.Glob(filepath.Join(dir, pattern))
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1]
}

// packageScript runs in the container as its root. It snapshots the file
// list, installs, checks as user u, reinstalls (the upgrade path), and
// purges; each check prints a line the test looks for. The snapshot
// leaves out what is not the package's to clean: dpkg's and apt's own
// records and caches, man-db's index, logs, /tmp and the user's home.
const packageScript = `set -eu
snapshot() {
	find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /pkgs -o -path /tmp -o -path /home \
		-o -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/cache -o -path /var/log -o -path /run \) -prune -o -print | sort
}
cd /pkgs
useradd -m -s /bin/bash u
usermod --add-subuids 100000-165535 --add-subgids 100000-165535 u
mkdir -p /etc/apparmor.d/local
snapshot >/tmp/before

echo "== install"
# apt resolves Depends: uidmap from the .debs given, with no network.
apt-get install -y /pkgs/nsbox_*.deb /pkgs/uidmap.deb /pkgs/libsubid4.deb 2>&1 | grep -E '^(Setting up|E:)'
dpkg -s nsbox | grep -E '^(Status|Depends|Recommends):'
dpkg -L nsbox >/tmp/nsbox-files
as_u() { runuser -u u -- env HOME=/home/u PATH=/usr/bin:/bin sh -c "cd /home/u && $1"; }
echo "== check"
as_u 'nsbox check'
as_u 'nsbox run -- sh -c "echo ran-as-\$(id -u)"'
echo "== version"
nsbox version
echo "== man"
test -f /usr/share/man/man1/nsbox.1.gz && echo man-page-installed
MANWIDTH=80 man nsbox 2>&1 | grep -E '^(NAME|SYNOPSIS|COMMANDS)$|nsbox run \[flags\]' | head -4
echo "== completion"
as_u 'nsbox run -d --name web1 -- sleep 60 >/dev/null'
runuser -u u -- env HOME=/home/u bash -c '
	. /usr/share/bash-completion/bash_completion
	_completion_loader nsbox
	complete -p nsbox
	COMP_WORDS=(nsbox run --ro-b); COMP_CWORD=2; _nsbox; echo "flags: ${COMPREPLY[*]}"
	COMP_WORDS=(nsbox exec we); COMP_CWORD=2; _nsbox; echo "names: ${COMPREPLY[*]}"
	COMP_WORDS=(nsbox stop ""); COMP_CWORD=2; _nsbox; echo "stop: ${COMPREPLY[*]}"'
as_u 'nsbox stop --timeout 1 web1'
echo "== apparmor"
# Where the kernel mediates user namespaces (the sysctl exists), postinst
# writes the profile; a stand-in for the sysctl shows that branch here.
test ! -e /etc/apparmor.d/nsbox && echo no-profile-without-userns-mediation
echo 1 >/tmp/restrict
echo "== upgrade"
NSBOX_APPARMOR_RESTRICT_FILE=/tmp/restrict dpkg -i nsbox_*.deb >/dev/null
grep -h 'profile nsbox' /etc/apparmor.d/nsbox
touch /etc/apparmor.d/local/nsbox
echo "== purge"
dpkg --purge nsbox >/dev/null
test ! -e /etc/apparmor.d/nsbox && test ! -e /etc/apparmor.d/local/nsbox && echo profile-gone
while read -r f; do [ -d "$f" ] || [ ! -e "$f" ] || echo "left behind: $f"; done </tmp/nsbox-files
dpkg --purge uidmap libsubid4 >/dev/null
snapshot >/tmp/after
diff /tmp/before /tmp/after && echo no-leftovers
`

// The package installs offline with its Depends, gives an unprivileged
// user a working nsbox (check, run), its man page and its bash completion
// (flags, and the name of a running sandbox), writes the AppArmor profile
// only where the kernel wants it, and purging leaves no file behind.
func TestDockerDebianPackage(t *testing.T) {
	requireDocker(t)
	requireDebianImage(t)
	debs := packageDebs(t)
	// CAP_SYS_ADMIN in the container's bounding set: the setuid
	// newuidmap (euid 0, not the new namespace's owner) needs it to write
	// a map of subordinate ids, which Docker's default set leaves out.
	opts := append([]string{"--network", "none", "--cap-add", "SYS_ADMIN", "--security-opt", "systempaths=unconfined", "-v", debs + ":/pkgs:ro"}, unconfined...)
	res := inDebian(opts, packageScript)
	out := res.Combined()
	res.Assert(t, icmd.Success)
	for _, want := range []string{
		"Status: install ok installed",
		"Depends: uidmap",
		"Recommends: passt, slirp4netns",
		"✓ a default sandbox starts",
		"ran-as-1000",
		// uidmap (the Depends) maps the user's subordinate ids.
		"✓ subordinate id maps: written by newuidmap/newgidmap (uid map 0 100000 1000, 1000 1000 1, 1001 101000 64535)",
		"(static)",
		"man-page-installed",
		"SYNOPSIS",
		"nsbox run [flags]",
		"complete -F _nsbox nsbox",
		"flags: --ro-bind --ro-bind-try",
		"names: web1",
		"stop: web1",
		"no-profile-without-userns-mediation",
		"profile nsbox /usr/bin/nsbox",
		"profile-gone",
		"no-leftovers",
	} {
		assert.Check(t, is.Contains(out, want))
	}
	assert.Check(t, !strings.Contains(out, "left behind"))
	if t.Failed() {
		t.Log(out)
	}
}

// inDebian runs the shell script in a new Debian 12 container as its root.
func inDebian(opts []string, script string) *icmd.Result {
	args := append([]string{"run", "--rm"}, opts...)
	args = append(args, debianImage, "sh", "-c", script)
	return icmd.RunCmd(icmd.Command("docker", args...))
}
