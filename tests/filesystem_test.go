package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/fs"
	"gotest.tools/v3/icmd"
)

// The default view: the host's / is read-only, the current directory is
// writable, and what is created there belongs to the caller on the host.
func TestDefaultViewReadOnlyRootWritableCwd(t *testing.T) {
	requireUnprivileged(t)
	dir := fs.NewDir(t, "nsbox-cwd")
	res := nsboxWith([]string{"run", "--", "touch", "/usr/nsbox-should-fail"}, icmd.Dir(dir.Path()))
	assert.Equal(t, res.ExitCode, 1)
	assert.Check(t, is.Contains(res.Stderr(), "Read-only file system"))
	res = nsboxWith([]string{"run", "--", "sh", "-c", "touch ./x && pwd"}, icmd.Dir(dir.Path()))
	res.Assert(t, icmd.Expected{Out: dir.Path()})
	st, err := os.Stat(filepath.Join(dir.Path(), "x"))
	assert.NilError(t, err)
	assert.Equal(t, st.Sys().(*syscall.Stat_t).Uid, uint32(os.Getuid()))
	// With subordinate ids, the same: root inside is not the caller.
	res = nsboxWith([]string{"run", "--root", "--", "mkdir", "./made-as-root"}, icmd.Dir(dir.Path()))
	res.Assert(t, icmd.Success)
	st, err = os.Stat(filepath.Join(dir.Path(), "made-as-root"))
	assert.NilError(t, err)
	assert.Equal(t, st.Sys().(*syscall.Stat_t).Uid, uint32(os.Getuid()))
}

// Read-only holds for submounts of a read-only bind: the host's /dev/shm
// is a world-writable tmpfs below /dev.
func TestReadOnlyIsRecursive(t *testing.T) {
	requireUnprivileged(t)
	if _, err := os.Stat("/dev/shm"); err != nil {
		cannotRun(t, "no /dev/shm on the host: %v", err)
	}
	res := nsbox("run", "--ro-bind", "/dev:/tmp/hostdev", "--", "sh", "-c",
		"grep ' /tmp/hostdev' /proc/self/mountinfo; touch /tmp/hostdev/shm/nsbox-x")
	assert.Equal(t, res.ExitCode, 1, res.Combined())
	assert.Check(t, is.Contains(res.Stderr(), "Read-only file system"))
	lines := splitLines(res.Stdout())
	assert.Assert(t, len(lines) >= 2, "the host /dev has submounts: %s", res.Stdout())
	for _, l := range lines {
		opts := strings.Fields(l)[5]
		assert.Check(t, strings.HasPrefix(opts, "ro,"), "mount not read-only: %s", l)
		assert.Check(t, is.Contains(opts, "nosuid"), "mount without nosuid: %s", l)
	}
	// The root and its own submounts (/proc, /sys …) too.
	res = nsbox("run", "--", "sh", "-c", `awk '$5 == "/" || $5 == "/sys" {print $6}' /proc/self/mountinfo`)
	res.Assert(t, icmd.Success)
	for _, opts := range splitLines(res.Stdout()) {
		assert.Check(t, strings.HasPrefix(opts, "ro,"), "%s", res.Stdout())
	}
	// --remount-ro makes a writable mount read-only.
	res = nsbox("run", "--tmpfs", "/mnt", "--remount-ro", "/mnt", "--", "touch", "/mnt/x")
	assert.Equal(t, res.ExitCode, 1)
	assert.Check(t, is.Contains(res.Stderr(), "Read-only file system"))
}

func TestHostTmpIsInvisible(t *testing.T) {
	requireUnprivileged(t)
	f, err := os.CreateTemp("/tmp", "nsbox-visible-")
	assert.NilError(t, err)
	f.Close()
	defer os.Remove(f.Name())
	res := nsboxWith([]string{"run", "--", "sh", "-c", "ls -A /tmp; test -e " + f.Name()}, icmd.Dir("/"))
	assert.Equal(t, res.ExitCode, 1, res.Combined())
	assert.Equal(t, res.Stdout(), "")
}

func TestDevNodes(t *testing.T) {
	requireUnprivileged(t)
	res := nsbox("run", "--", "sh", "-c",
		`head -c 3 /dev/zero | od -An -tx1; echo hi > /dev/null; head -c 8 /dev/urandom | wc -c; `+
			`echo x > /dev/full && echo full-accepted; ls /dev | tr '\n' ' '; readlink /dev/ptmx /dev/stdout`)
	assert.Equal(t, res.Stdout(),
		" 00 00 00\n8\ncore fd full net null ptmx pts random shm stderr stdin stdout tty urandom zero pts/ptmx\n/proc/self/fd/1\n")
	// bubblewrap's /dev, plus net/tun in nsbox's default view (Mount.Tun)
	// for a sandbox nested inside; --dev alone is bubblewrap's exactly.
	bare := nsbox("run", "--empty", "--dev", "/dev", "--ro-bind", "/bin", "--ro-bind", "/usr", "--ro-bind", "/lib", "--ro-bind-try", "/lib64",
		"--setenv", "PATH=/usr/bin:/bin", "--", "ls", "/dev")
	bare.Assert(t, icmd.Success)
	assert.Check(t, !strings.Contains(bare.Stdout(), "net"), bare.Stdout())
	assert.Check(t, res.Stderr() != "", "writing /dev/full must fail")
	// A new devpts instance: a pty allocated inside shows up there.
	res = nsbox("run", "--", "script", "-qc", "tty", "/dev/null")
	res.Assert(t, icmd.Success)
	assert.Check(t, strings.HasPrefix(res.Stdout(), "/dev/pts/"), res.Stdout())
	// With only the caller's own id mapped, as root or not: without root
	// the setup runs as the outer namespace's root (the caller) and the
	// command in a nested user namespace, as the caller's uid.
	for _, root := range []string{"--root=true", "--root=false"} {
		res = nsbox("run", "--map", "single", root, "--", "sh", "-c", "id -u; script -qc tty /dev/null; grep -c ' /dev/pts .*ptmxmode=666' /proc/self/mountinfo")
		res.Assert(t, icmd.Success)
		lines := splitLines(res.Stdout())
		assert.Assert(t, len(lines) == 3, res.Stdout())
		want := fmt.Sprint(os.Getuid())
		if root == "--root=true" {
			want = "0"
		}
		assert.Check(t, is.Equal(lines[0], want))
		assert.Check(t, strings.HasPrefix(lines[1], "/dev/pts/"), res.Stdout())
		assert.Check(t, is.Equal(lines[2], "1"), "a new devpts instance")
	}
}

func TestMissingSource(t *testing.T) {
	requireUnprivileged(t)
	oneErrorLine(t, nsbox("run", "--ro-bind", "/nsbox-missing", "--", "true"), 125,
		"--ro-bind /nsbox-missing", "source does not exist", "fix:")
	oneErrorLine(t, nsbox("run", "--mount", "type=bind,source=/nsbox-missing,target=/x", "--", "true"), 125,
		"source does not exist")
	res := nsbox("run", "--ro-bind-try", "/nsbox-missing", "--bind-try", "/nsbox-missing:/y", "--", "sh", "-c", "test ! -e /nsbox-missing && test ! -e /y")
	res.Assert(t, icmd.Success)
}

func TestBadMountFlags(t *testing.T) {
	requireUnprivileged(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"relative destination", []string{"--tmpfs", "tmp"}, "--tmpfs"},
		{"bad mode", []string{"--chmod", "999:/tmp"}, "--chmod"},
		{"bad tmpfs option", []string{"--tmpfs", "/t:colour=red"}, "--tmpfs"},
		{"bad mount type", []string{"--mount", "type=nfs,target=/x"}, "--mount"},
		{"short overlay", []string{"--overlay", "/a:/b"}, "--overlay"},
		{"missing overlay upper", []string{"--overlay", "/usr:/nsbox-no-upper:/nsbox-no-work:/o"}, "upper directory"},
		{"empty and rootfs", []string{"--empty", "--rootfs", "/"}, "--empty"},
		{"shared mount namespace", []string{"--share", "mnt", "--tmpfs", "/x"}, "mount namespace"},
		// Fails inside, while building the root: still one line naming it.
		{"mount point under a file", []string{"--tmpfs", "/dev/null/x"}, "--tmpfs /dev/null/x"},
		{"tmp-overlay of a missing dir", []string{"--tmp-overlay", "/nsbox-not-here"}, "--tmp-overlay /nsbox-not-here"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oneErrorLine(t, nsbox(append(append([]string{"run"}, tc.args...), "--", "true")...), 125, tc.want)
		})
	}
}

func TestMountOps(t *testing.T) {
	requireUnprivileged(t)
	src := fs.NewDir(t, "nsbox-ops", fs.WithFile("f", "content\n"), fs.WithFile("resolv", "nameserver 10.0.2.3\n"))
	res := nsboxWith([]string{"run",
		// The host's / is read-only: new mount points go on a tmpfs.
		"--tmpfs", "/mnt",
		"--tmpfs", "/mnt/small:size=1m,mode=0700",
		"--dir", "/mnt/made/here",
		"--symlink", "/mnt/made/here:/mnt/made/link",
		"--chmod", "0711:/mnt/made/here",
		"--ro-bind", src.Path() + ":/mnt/data",
		"--file", filepath.Join(src.Path(), "resolv") + ":/etc/resolv.conf",
		"--file", "-:/mnt/from-stdin",
		"--mqueue", "/dev/mqueue",
		"--proc", "/mnt/proc2",
		"--mount", `type=tmpfs,"target=/mnt/with,comma",size=2m`,
		"--", "sh", "-c", `
			grep -E ' /mnt/small | /dev/mqueue | /mnt/proc2 ' /proc/self/mountinfo | awk '{print $5, $9}' | sort
			grep -E ' /mnt/(small|with)' /proc/self/mountinfo | grep -o 'size=[0-9]*k' | sort -u
			stat -c '%a %n' /mnt/small /mnt/made/here
			readlink /mnt/made/link
			cat /mnt/data/f /etc/resolv.conf /mnt/from-stdin
			echo more >> /etc/resolv.conf && echo writable
			touch /mnt/data/x 2>/dev/null || echo data-ro
			test -e /mnt/proc2/self/status && echo proc2
			test -d '/mnt/with,comma' && echo comma`,
	}, icmd.WithStdin(strings.NewReader("from stdin\n")))
	res.Assert(t, icmd.Success)
	assert.Equal(t, res.Stdout(), strings.Join([]string{
		"/dev/mqueue mqueue", "/mnt/proc2 proc", "/mnt/small tmpfs",
		"size=1024k", "size=2048k",
		"700 /mnt/small", "711 /mnt/made/here",
		"/mnt/made/here",
		"content", "nameserver 10.0.2.3", "from stdin",
		"writable", "data-ro", "proc2", "comma", ""}, "\n"))
	// The host's file is untouched by the write to the placed copy.
	b, err := os.ReadFile(filepath.Join(src.Path(), "resolv"))
	assert.NilError(t, err)
	assert.Equal(t, string(b), "nameserver 10.0.2.3\n")
}

func TestTmpOverlayAndCopyUp(t *testing.T) {
	requireUnprivileged(t)
	name := fmt.Sprintf("nsbox-overlay-%d", os.Getpid())
	res := nsbox("run", "--tmp-overlay", "/usr", "--", "sh", "-c", "touch /usr/"+name+" && ls /usr/"+name+" && ls /usr/bin/sh")
	res.Assert(t, icmd.Expected{Out: "/usr/" + name + "\n/usr/bin/sh\n"})
	_, err := os.Stat("/usr/" + name)
	assert.Check(t, os.IsNotExist(err), "the host's /usr changed: %v", err)

	// /sys has the host's mounts below it (cgroups): no overlay, so
	// copy-up falls back to a tmpfs of symlinks into a read-only copy.
	res = nsbox("run", "--copy-up", "/sys", "--", "sh", "-c", "touch /sys/"+name+" && readlink /sys/kernel && test -d /sys/fs/cgroup && echo ok")
	res.Assert(t, icmd.Expected{Out: ".nsbox-ro/kernel\nok\n"})

	res = nsbox("run", "--root", "--copy-up", "/etc", "--", "sh", "-c", "echo x > /etc/"+name+" && cat /etc/"+name+" /etc/hostname >/dev/null && echo ok")
	res.Assert(t, icmd.Expected{Out: "ok\n"})
	_, err = os.Stat("/etc/" + name)
	assert.Check(t, os.IsNotExist(err), "the host's /etc changed: %v", err)

	// The host's / has mounts below it that the kernel will not let an
	// overlay's lower reveal: each directory gets its own layer.
	res = nsbox("run", "--tmp-overlay", "/", "--", "sh", "-c",
		"touch /"+name+" /usr/"+name+" && echo ok; awk '$5==\"/usr\"{print $9}' /proc/self/mountinfo")
	res.Assert(t, icmd.Expected{Out: "ok\noverlay\n"})
	for _, p := range []string{"/" + name, "/usr/" + name} {
		_, err = os.Stat(p)
		assert.Check(t, os.IsNotExist(err), "the host changed: %s: %v", p, err)
	}
}

// A persistent overlay: writes land in the host's upper directory, owned
// by the caller; the lower stays as it was.
func TestOverlayUpperOnHost(t *testing.T) {
	requireUnprivileged(t)
	dir := fs.NewDir(t, "nsbox-ovl", fs.WithDir("lower", fs.WithFile("a", "lower\n")), fs.WithDir("upper"), fs.WithDir("work"))
	p := dir.Path()
	arg := fmt.Sprintf("%s/lower:%s/upper:%s/work:/tmp/merged", p, p, p)
	res := nsbox("run", "--overlay", arg, "--", "sh", "-c", "cat /tmp/merged/a; echo new > /tmp/merged/b; echo changed > /tmp/merged/a")
	res.Assert(t, icmd.Expected{Out: "lower\n"})
	b, err := os.ReadFile(filepath.Join(p, "upper", "b"))
	assert.NilError(t, err)
	assert.Equal(t, string(b), "new\n")
	b, err = os.ReadFile(filepath.Join(p, "lower", "a"))
	assert.NilError(t, err)
	assert.Equal(t, string(b), "lower\n")
	st, err := os.Stat(filepath.Join(p, "upper", "b"))
	assert.NilError(t, err)
	assert.Equal(t, st.Sys().(*syscall.Stat_t).Uid, uint32(os.Getuid()))
}

// busyboxTree builds a minimal root: /bin/busybox and its applet links.
func busyboxTree(t *testing.T) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		cannotRun(t, "no busybox (apt-get install busybox-static)")
	}
	root := fs.NewDir(t, "nsbox-rootfs", fs.WithDir("bin"))
	data, err := os.ReadFile(bb)
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(filepath.Join(root.Path(), "bin", "busybox"), data, 0o755))
	for _, applet := range []string{"sh", "ls", "chown", "touch", "stat", "id", "cat"} {
		assert.NilError(t, os.Symlink("busybox", filepath.Join(root.Path(), "bin", applet)))
	}
	return root.Path()
}

func TestRootfs(t *testing.T) {
	requireUnprivileged(t)
	root := busyboxTree(t)
	res := nsboxWith([]string{"run", "--rootfs", root, "--setenv", "PATH=/bin", "--", "sh", "-c", "ls /; pwd; ls /bin | wc -l"})
	res.Assert(t, icmd.Success)
	assert.Equal(t, res.Stdout(), "bin\ndev\nproc\ntmp\n/\n8\n")
	// The mount points made in the tree belong to the caller on the host.
	for _, d := range []string{"dev", "proc", "tmp"} {
		st, err := os.Stat(filepath.Join(root, d))
		assert.NilError(t, err)
		assert.Equal(t, st.Sys().(*syscall.Stat_t).Uid, uint32(os.Getuid()), d)
	}
}

// With --root and subordinate ids, a package manager inside can chown to
// many ids: 33 inside is subuid-start+32 on the host.
func TestRootfsChownToSubordinateIDs(t *testing.T) {
	requireUnprivileged(t)
	uStart, _ := subids(t, "/etc/subuid")
	gStart, _ := subids(t, "/etc/subgid")
	root := busyboxTree(t)
	res := nsbox("run", "--root", "--rootfs", root, "--setenv", "PATH=/bin", "--", "sh", "-c", "touch /f && chown 33:33 /f")
	res.Assert(t, icmd.Success)
	assertHostOwner(t, filepath.Join(root, "f"), uStart+32, gStart+32)
}

// A symlink planted in a bound directory, pointing at a host path, cannot
// send a mount, a created directory or a placed file out of the sandbox's
// root: destinations resolve inside it.
func TestPlantedSymlinkCannotEscape(t *testing.T) {
	requireUnprivileged(t)
	victim := fs.NewDir(t, "nsbox-victim")
	bound := fs.NewDir(t, "nsbox-bound")
	content := fs.NewFile(t, "nsbox-content", fs.WithContent("pwned\n"))
	links := map[string]string{
		"abs": victim.Path(),
		"rel": strings.Repeat("../", 20) + strings.TrimPrefix(victim.Path(), "/"),
		// nsbox builds the root next to the host's, under /oldroot.
		"old": "/oldroot" + victim.Path(),
	}
	for name, target := range links {
		assert.NilError(t, os.Symlink(target, filepath.Join(bound.Path(), name)))
	}
	for name := range links {
		t.Run(name, func(t *testing.T) {
			res := nsbox("run", "--bind", bound.Path()+":/b",
				"--dir", "/b/"+name+"/made-dir",
				"--file", content.Path()+":/b/"+name+"/placed",
				"--tmpfs", "/b/"+name+"/mounted",
				"--bind", content.Path()+":/b/"+name+"/bound-file",
				"--", "true")
			assert.Check(t, res.ExitCode == 0 || res.ExitCode == 125, res.Combined())
			entries, err := os.ReadDir(victim.Path())
			assert.NilError(t, err)
			assert.Check(t, len(entries) == 0, "setup wrote to the host through the %s symlink: %v", name, entries)
		})
	}
}

// --empty starts from nothing; --dev-bind keeps device nodes usable where
// a plain bind is nodev.
func TestEmptyRootAndDevBind(t *testing.T) {
	requireUnprivileged(t)
	bb, err := exec.LookPath("busybox")
	if err != nil {
		cannotRun(t, "no busybox (apt-get install busybox-static)")
	}
	res := nsbox("run", "--empty", "--ro-bind", bb+":/busybox", "--", "/busybox", "ls", "-A", "/")
	res.Assert(t, icmd.Expected{Out: "busybox\n"})

	// (Not under the sticky /tmp, where the kernel refuses O_CREAT opens
	// of a node the directory's owner does not own.)
	res = nsbox("run", "--dev-bind", "/dev/null:/dev/devnull", "--bind", "/dev/null:/dev/nodev", "--", "sh", "-c",
		"echo x > /dev/devnull && echo dev-ok; echo x > /dev/nodev || echo nodev-refused")
	assert.Equal(t, res.Stdout(), "dev-ok\nnodev-refused\n", res.Combined())
}

func TestSysFlag(t *testing.T) {
	requireUnprivileged(t)
	root := busyboxTree(t)
	res := nsbox("run", "--rootfs", root, "--sys", "--setenv", "PATH=/bin", "--", "sh", "-c", "ls /sys/kernel >/dev/null && echo sys; touch /sys/x || true")
	assert.Equal(t, res.Stdout(), "sys\n", res.Combined())
	assert.Check(t, is.Contains(res.Stderr(), "Read-only file system"))
}
