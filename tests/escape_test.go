package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/fs"
	"gotest.tools/v3/icmd"
)

// The escape suite: each test is an attack a hostile command makes from
// inside a sandbox started with documented flags, and must fail. Where the
// protection can be switched off, a control shows the attack would work.

// Root inside, with every capability of its user namespace, tries to undo
// nsbox's mounts: remount the read-only / writable, unmount /tmp and
// /proc to see the host's, and unmount what it mounted over them to reveal
// anything but the sandbox's. The kernel refuses: the command's mount
// namespace was copied from one owned by a more privileged user namespace,
// so every mount in it is locked (sandbox/nested.go).
func TestEscapeRootCannotUndoMounts(t *testing.T) {
	requireUnprivileged(t)
	// A directory of ours on the host that the sandbox sees read-only
	// (under the host's /, not the private /tmp or home): a writable
	// remount of / would let the command create the marker there.
	visible, err := os.MkdirTemp("/var/tmp", "nsbox-escape-")
	assert.NilError(t, err)
	defer os.RemoveAll(visible)
	marker := filepath.Join(visible, "marker")
	hostTmp := fs.NewFile(t, "nsbox-host-tmp-marker")
	script := `
		mount -o remount,bind,rw / 2>/dev/null && echo REMOUNT-RW
		mount -o remount,bind,rw,suid / 2>/dev/null && echo REMOUNT-SUID
		umount -l /tmp 2>/dev/null && echo UMOUNT-TMP
		umount -l /proc 2>/dev/null && echo UMOUNT-PROC
		umount -l /dev 2>/dev/null && echo UMOUNT-DEV
		touch ` + marker + ` 2>/dev/null && echo WROTE-HOST
		test -e ` + hostTmp.Path() + ` && echo SEES-HOST-TMP
		mount -t tmpfs over /tmp && umount /tmp && test -e ` + hostTmp.Path() + ` && echo REVEALED-HOST-TMP
		test "$(ls /proc | grep -c '^[0-9]')" -lt 10 && echo own-proc
		echo done`
	for _, mode := range [][]string{{"--root"}, {"--root", "--map", "single"}, {"--root", "--net", "user"}, {"--root", "--tmp-overlay", "/opt"}} {
		res := nsbox(append(append([]string{"run"}, mode...), "--", "sh", "-c", script)...)
		res.Assert(t, icmd.Success)
		assert.Check(t, is.Equal(res.Stdout(), "own-proc\ndone\n"), "%v", mode)
		_, err := os.Stat(marker)
		assert.Check(t, os.IsNotExist(err), "%v wrote a host directory", mode)
	}
	// The control: with the launcher's mount namespace shared there is
	// nothing of nsbox's to lock, and the host's /tmp is simply visible.
	res := nsbox("run", "--share", "mnt", "--", "sh", "-c", "test -e "+hostTmp.Path()+" && echo sees-host-tmp")
	res.Assert(t, icmd.Expected{Out: "sees-host-tmp"})
}

// PID 1 is out of the command's reach: its descriptors (which during setup
// included host directories) cannot be listed or followed, and the command
// itself holds nothing but stdio, in every mode that opens something of
// the host's during setup.
func TestEscapeNoHostDescriptors(t *testing.T) {
	requireUnprivileged(t)
	lower := fs.NewDir(t, "nsbox-lower", fs.WithFile("f", "x"))
	upper := fs.NewDir(t, "nsbox-upper")
	work := fs.NewDir(t, "nsbox-work")
	bound := fs.NewDir(t, "nsbox-bound")
	// What the command may hold: stdio, and the directory ls itself opens.
	script := `ls /proc/1/fd/ >/dev/null 2>&1 && echo PID1-FDS
		ls /proc/1/root/ >/dev/null 2>&1 && echo PID1-ROOT
		for fd in /proc/self/fd/*; do n=${fd##*/}; [ "$n" -gt 2 ] && echo "fd $n -> $(readlink $fd)"; done
		echo done`
	modes := map[string][]string{
		"default":     nil,
		"root":        {"--root"},
		"overlay":     {"--root", "--tmpfs", "/mnt", "--overlay", lower.Path() + ":" + upper.Path() + ":" + work.Path() + ":/mnt/o"},
		"single root": {"--root", "--map", "single", "--tmpfs", "/mnt", "--overlay", lower.Path() + ":" + upper.Path() + ":" + work.Path() + ":/mnt/o"},
		"tmp-overlay": {"--root", "--tmp-overlay", "/opt"},
		"rootfs":      {"--root", "--rootfs", "/"},
		"bind":        {"--root", "--bind", bound.Path()},
		"net user":    {"--root", "--net", "user"},
		"tty":         {"--root", "-t"},
	}
	for name, flags := range modes {
		t.Run(name, func(t *testing.T) {
			res := nsbox(append(append([]string{"run"}, flags...), "--", "sh", "-c", script)...)
			res.Assert(t, icmd.Success)
			out := strings.ReplaceAll(res.Stdout(), "\r", "")
			// The one extra descriptor allowed is the shell's own
			// glob of /proc/self/fd, gone by the time readlink runs.
			for _, l := range splitLines(out) {
				if l == "done" || strings.HasSuffix(l, "(deleted)") || strings.HasSuffix(l, "-> ") {
					continue
				}
				t.Errorf("%s: %s", name, l)
			}
		})
	}
}

// nsbox exec joins the command's locked namespaces, not the setup's: a
// joined root command cannot undo the mounts either.
func TestEscapeExecCannotUndoMounts(t *testing.T) {
	s := newStateEnv(t)
	s.start("locked", "--root", "--", "sleep", "60")
	res := s.run("exec", "locked", "--root", "--", "sh", "-c",
		"mount -o remount,bind,rw / 2>/dev/null && echo REMOUNT; umount -l /tmp 2>/dev/null && echo UMOUNT; ls /proc/1/fd >/dev/null 2>&1 && echo PID1-FDS; echo done")
	res.Assert(t, icmd.Expected{Out: "done"})
	assert.Check(t, is.Equal(res.Stdout(), "done\n"))
}

// A sandbox inside a sandbox mounts its own /proc: the outer one leaves its
// procfs fully visible (no read-only binds over /proc/sys and the like,
// which the sandbox cannot write anyway), as the kernel requires for a new
// procfs in a nested user namespace.
func TestNestedSandboxMountsProc(t *testing.T) {
	requireUnprivileged(t)
	for _, outer := range [][]string{nil, {"--root"}, {"--map", "single"}} {
		args := append(append([]string{"run"}, outer...), "--", nsboxBin, "run", "--map", "single", "--", "sh", "-c", "echo $$; ls /proc/sys >/dev/null && echo sys")
		res := nsbox(args...)
		res.Assert(t, icmd.Expected{Out: "2\nsys\n"}) // the command is pid 2: nsbox's init is 1
	}
}

// --net user at both levels: the outer sandbox's /dev has /dev/net/tun, so
// the inner one makes its TAP device (in a network namespace of its own,
// the only kind the kernel lets it configure) and reaches the outer
// sandbox's network through it.
func TestNestedNetUser(t *testing.T) {
	requireUnprivileged(t)
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		cannotRun(t, "no /dev/net/tun on this host (hack/setup-host.sh)")
	}
	res := nsbox("run", "--net", "user", "--", nsboxBin, "run", "--net", "user", "--", "sh", "-c", "grep -c tap0 /proc/net/dev")
	res.Assert(t, icmd.Expected{Out: "1\n"})
}

// Without /dev/net/tun (here an outer sandbox's empty /dev/net), --net user
// fails in one line with the fix, exit 125, whether the TAP device is made
// by PID 1 or by the holder of the command's nested namespaces beside it
// (nest.c): the error is the holder's, not the stage's that follows it.
func TestNetUserWithoutTunOneLine(t *testing.T) {
	requireUnprivileged(t)
	for _, inner := range [][]string{{}, {"--root"}, {"--map", "single"}} {
		args := append([]string{"run", "--tmpfs", "/dev/net", "--", nsboxBin, "run", "--net", "user"}, inner...)
		res := nsbox(append(args, "--", "true")...)
		assert.Check(t, is.Equal(res.ExitCode, 125), "%v: %s", inner, res.Combined())
		lines := strings.Split(strings.TrimSpace(res.Stderr()), "\n")
		last := lines[len(lines)-1]
		assert.Check(t, strings.HasPrefix(last, "nsbox: open /dev/net/tun for --net user: ") && strings.Contains(last, "; fix: "), "%v: %s", inner, res.Stderr())
		for _, l := range lines[:len(lines)-1] {
			assert.Check(t, strings.HasPrefix(l, "nsbox: notice: "), "%v: a line more than the error: %s", inner, res.Stderr())
		}
	}
}
