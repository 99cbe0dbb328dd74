//go:build nsbox_configcheck

package stage

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/nsbox/nsbox/mapping"
)

// The CONFIG protocol's two halves together: config.go encodes the
// configs package sandbox builds, config.c (through configcheck.go) decodes them as the stage does
// and writes the decoded struct back out. A key the decoder lacks, a value
// it stores differently (a number cut to an int, a flag dropped), or a key
// only one side knows fails here.

// seccompAllow is a one-instruction filter program (BPF_RET; the
// decoder checks the length, the kernel the program).
var seccompAllow = []byte{6, 0, 0, 0, 0, 0, 0, 0}

// everyMount is one op of each mount type, with every field its type
// uses, as package sandbox turns its Mounts into ops.
func everyMount() []Op {
	return []Op{{Type: "bind", Source: "/srv/a b", Destination: "/m/bind", ReadOnly: true, Devices: true, Optional: true, What: "bind mount /srv/a b on /m/bind"}, {Type: "tmpfs", Destination: "/m/tmpfs", Mode: 0x3ff, Size: 5368709120, What: "tmpfs mount on /m/tmpfs"}, {Type: "dir", Destination: "/m/dir", Mode: 0x1e8, What: "dir mount on /m/dir"}, {Type: "symlink", Source: "../target", Destination: "/m/symlink", What: "symlink mount ../target on /m/symlink"}, {Type: "chmod", Destination: "/m/chmod", Mode: 0x1e8, What: "chmod mount on /m/chmod"}, {Type: "remount-ro", Destination: "/m/remount-ro", What: "remount-ro mount on /m/remount-ro"}, {Type: "proc", Destination: "/m/proc", What: "proc mount on /m/proc"}, {Type: "dev", Destination: "/m/dev", What: "dev mount on /m/dev"}, {Type: "mqueue", Destination: "/m/mqueue", What: "mqueue mount on /m/mqueue"}, {Type: "file", Destination: "/m/file", ReadOnly: true, Mode: 0x180, Data: []uint8{0x6c, 0x69, 0x6e, 0x65, 0x0, 0xff, 0xa}, What: "file mount on /m/file"}, {Type: "overlay", Destination: "/m/overlay", Lower: []string{"/l1", "/l:2"}, Upper: "/up", Work: "/work", What: "overlay mount on /m/overlay"}, {Type: "tmp-overlay", Destination: "/m/tmp-overlay", What: "tmp-overlay mount on /m/tmp-overlay"}, {Type: "copy-up", Destination: "/m/copy-up", What: "copy-up mount on /m/copy-up"}, {Type: "file", Destination: "/empty", What: "file mount on /empty"}, {Type: "remount-ro", Destination: "/m/shallow", NonRecursive: true, What: "remount-ro mount on /m/shallow"}, {Type: "dir", Destination: "/m/dir0", ModeSet: true, What: "--perms 0000 --dir /m/dir0"}}
}

// configCases are stage configs as package sandbox builds them for Start
// and Join (its default view, --root, nesting, every mount type, the
// security and network records), as plain values: the launcher's side of
// each (Spec to Config) is package sandbox's business and test.
func configCases(testing.TB) map[string]Config {
	hostView := []Op{{Type: "bind", Source: "/", Destination: "/", ReadOnly: true, What: "the read-only host root"}, {Type: "dev", Destination: "/dev", Tun: true, What: "dev mount on /dev"}, {Type: "proc", Destination: "/proc", What: "proc mount on /proc"}, {Type: "tmpfs", Destination: "/tmp", Mode: 0x3ff, What: "tmpfs mount on /tmp"}, {Type: "tmpfs", Destination: "/run", Mode: 0x1ed, What: "the empty /run (sockets hidden)"}, {Type: "dir", Destination: "/run/lock", Mode: 0x3ff, What: "/run/lock"}, {Type: "file", Destination: "/run/host/container-manager", ReadOnly: true, Mode: 0x124, Data: []uint8{0x6e, 0x73, 0x62, 0x6f, 0x78, 0xa}, What: "/run/host/container-manager"}, {Type: "symlink", Source: "/dev/shm", Destination: "/run/shm", What: "/run/shm"}, {Type: "tmpfs", Destination: "/home", Mode: 0x1ed, What: "the empty /home (homes hidden)"}, {Type: "tmpfs", Destination: "/root", Owned: true, Mode: 0x1c0, What: "the private home /root"}, {Type: "bind", Source: "/home/u/src", Destination: "/home/u/src", What: "the current directory /home/u/src"}}
	security := Security{Seccomp: [][]byte{seccompAllow}}
	return map[string]Config{
		"--disable-userns":                        Config{Unshare: 1845624832, SetupRoot: true, Setgroups: true, MountProc: true, LoopbackUp: true, NoNewPrivs: true, TTY: -1, UID: 0x3e8, GID: 0x3e8, Args: []string{"make", "", "-j=4"}, Env: []string{"A=b=c", "EMPTY=", "U=é"}, NewRoot: true, OwnerUID: 1000, OwnerGID: 1000, RootMapped: true, CwdTry: "/home/u/src", Ops: hostView, Nest: &Nest{UIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, GIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, UID: 0x3e8, GID: 0x3e8}, Security: Security{Seccomp: [][]byte{seccompAllow}, AssertUsernsDisabled: true}},
		"--map single (nested)":                   Config{Unshare: 1845624832, SetupRoot: true, MountProc: true, LoopbackUp: true, NoNewPrivs: true, TTY: -1, UID: 0x3e8, GID: 0x3e8, Args: []string{"make", "", "-j=4"}, Env: []string{"A=b=c", "EMPTY=", "U=é"}, NewRoot: true, RootMapped: true, CwdTry: "/home/u/src", Ops: hostView, Nest: &Nest{UIDs: []mapping.Extent{{Inner: 0x3e8, Count: 0x1}}, GIDs: []mapping.Extent{{Inner: 0x3e8, Count: 0x1}}}, Security: security},
		"--net slirp4netns (net-wait)":            Config{Unshare: 1845624832, SetupRoot: true, Setgroups: true, MountProc: true, LoopbackUp: true, NoNewPrivs: true, TTY: -1, UID: 0x3e8, GID: 0x3e8, Args: []string{"make", "", "-j=4"}, Env: []string{"A=b=c", "EMPTY=", "U=é"}, NewRoot: true, OwnerUID: 1000, OwnerGID: 1000, RootMapped: true, CwdTry: "/home/u/src", Ops: hostView, Nest: &Nest{UIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, GIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, UID: 0x3e8, GID: 0x3e8}, Security: security, NetWait: true},
		"--net user (tap)":                        Config{Unshare: 1845624832, SetupRoot: true, Setgroups: true, MountProc: true, LoopbackUp: true, NoNewPrivs: true, TTY: -1, UID: 0x3e8, GID: 0x3e8, Args: []string{"make", "", "-j=4"}, Env: []string{"A=b=c", "EMPTY=", "U=é"}, NewRoot: true, OwnerUID: 1000, OwnerGID: 1000, RootMapped: true, CwdTry: "/home/u/src", Ops: hostView, Nest: &Nest{UIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, GIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, UID: 0x3e8, GID: 0x3e8}, Security: security, TAP: &TAP{Name: "tap0", MTU: 65520, VnetHdr: true, Address4: netip.MustParsePrefix("10.0.2.100/24"), Gateway4: netip.MustParseAddr("10.0.2.2"), Address6: netip.MustParsePrefix("fd00::100/64"), Gateway6: netip.MustParseAddr("fd00::2")}},
		"--no-seccomp":                            Config{Unshare: 1845624832, SetupRoot: true, Setgroups: true, MountProc: true, LoopbackUp: true, NoNewPrivs: true, TTY: -1, UID: 0x3e8, GID: 0x3e8, Args: []string{"make", "", "-j=4"}, Env: []string{"A=b=c", "EMPTY=", "U=é"}, NewRoot: true, OwnerUID: 1000, OwnerGID: 1000, RootMapped: true, CwdTry: "/home/u/src", Ops: hostView, Nest: &Nest{UIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, GIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, UID: 0x3e8, GID: 0x3e8}, Security: Security{}},
		"--root":                                  Config{Unshare: 1845624832, SetupRoot: true, Setgroups: true, MountProc: true, LoopbackUp: true, NoNewPrivs: true, TTY: -1, Hostname: "box", Args: []string{"make", "", "-j=4"}, Argv0: "-login shell", Env: []string{"A=b=c", "EMPTY=", "U=é"}, NewRoot: true, RootMapped: true, CwdTry: "/home/u/src", Ops: hostView, Nest: &Nest{UIDs: []mapping.Extent{{Count: 0x1}, {Inner: 0x1, Outer: 0x1, Count: 0x10000}}, GIDs: []mapping.Extent{{Count: 0x1}, {Inner: 0x1, Outer: 0x1, Count: 0x10000}}}, Security: Security{Caps: 2199023255551, Seccomp: [][]byte{seccompAllow}}},
		"--rootfs, every mount type, --chdir":     Config{Unshare: 1845624832, SetupRoot: true, Setgroups: true, MountProc: true, LoopbackUp: true, NoNewPrivs: true, TTY: -1, UID: 0x3e8, GID: 0x3e8, Cwd: "/m/dir", Args: []string{"make", "", "-j=4"}, Env: []string{"A=b=c", "EMPTY=", "U=é"}, NewRoot: true, OwnerUID: 1000, OwnerGID: 1000, RootMapped: true, Ops: append([]Op{{Type: "bind", Source: "/rootfs", Destination: "/", What: "bind mount /rootfs on /"}}, everyMount()...), Nest: &Nest{UIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, GIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, UID: 0x3e8, GID: 0x3e8}, Security: security},
		"--share all (no new root)":               Config{SetupRoot: true, Setgroups: true, NoNewPrivs: true, TTY: -1, UID: 0x3e8, GID: 0x3e8, Args: []string{"make", "", "-j=4"}, Env: []string{"A=b=c", "EMPTY=", "U=é"}, OwnerUID: 1000, OwnerGID: 1000, RootMapped: true, Security: security},
		"--tty":                                   Config{Unshare: 1845624832, SetupRoot: true, Setgroups: true, MountProc: true, LoopbackUp: true, NoNewPrivs: true, TTY: -1, UID: 0x3e8, GID: 0x3e8, Args: []string{"make", "", "-j=4"}, Env: []string{"A=b=c", "EMPTY=", "U=é"}, NewRoot: true, OwnerUID: 1000, OwnerGID: 1000, RootMapped: true, CwdTry: "/home/u/src", Ops: hostView, Nest: &Nest{UIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, GIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, UID: 0x3e8, GID: 0x3e8}, PTY: true, PTYRows: 50, PTYCols: 132, PTYKeep: 2, Security: security},
		"BeforeExec (exec-wait)":                  Config{Unshare: 1845624832, SetupRoot: true, Setgroups: true, MountProc: true, LoopbackUp: true, NoNewPrivs: true, ExecWait: true, TTY: -1, UID: 0x3e8, GID: 0x3e8, Args: []string{"make", "", "-j=4"}, Env: []string{"A=b=c", "EMPTY=", "U=é"}, NewRoot: true, OwnerUID: 1000, OwnerGID: 1000, RootMapped: true, CwdTry: "/home/u/src", Ops: hostView, Nest: &Nest{UIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, GIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, UID: 0x3e8, GID: 0x3e8}, Security: security},
		"CommandCreated (command-first)":          Config{Unshare: 1845624832, SetupRoot: true, Setgroups: true, MountProc: true, LoopbackUp: true, NoNewPrivs: true, ExecWait: true, CommandFirst: true, TTY: -1, UID: 0x3e8, GID: 0x3e8, Args: []string{"make", "", "-j=4"}, Env: []string{"A=b=c", "EMPTY=", "U=é"}, NewRoot: true, OwnerUID: 1000, OwnerGID: 1000, RootMapped: true, CwdTry: "/home/u/src", Ops: hostView, Nest: &Nest{UIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, GIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, UID: 0x3e8, GID: 0x3e8}, Security: security},
		"Default":                                 Config{Unshare: 1845624832, SetupRoot: true, Setgroups: true, MountProc: true, LoopbackUp: true, NoNewPrivs: true, TTY: -1, Args: []string{"true"}, Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/u", "TERM=xterm"}, NewRoot: true, OwnerUID: -1, OwnerGID: -1, RootMapped: true, CwdTry: "/home/u/src", Ops: []Op{{Type: "bind", Source: "/", Destination: "/", ReadOnly: true, What: "the read-only host root"}, {Type: "dev", Destination: "/dev", Tun: true, What: "dev mount on /dev"}, {Type: "proc", Destination: "/proc", What: "proc mount on /proc"}, {Type: "tmpfs", Destination: "/tmp", Mode: 0x3ff, What: "tmpfs mount on /tmp"}, {Type: "tmpfs", Destination: "/run", Mode: 0x1ed, What: "the empty /run (sockets hidden)"}, {Type: "dir", Destination: "/run/lock", Mode: 0x3ff, What: "/run/lock"}, {Type: "file", Destination: "/run/host/container-manager", ReadOnly: true, Mode: 0x124, Data: []uint8{0x6e, 0x73, 0x62, 0x6f, 0x78, 0xa}, What: "/run/host/container-manager"}, {Type: "symlink", Source: "/dev/shm", Destination: "/run/shm", What: "/run/shm"}, {Type: "tmpfs", Destination: "/home", Mode: 0x1ed, What: "the empty /home (homes hidden)"}, {Type: "tmpfs", Destination: "/root", Owned: true, Mode: 0x1c0, What: "the private home /root"}, {Type: "bind", Source: "/work/wt/split-stage/sandbox", Destination: "/work/wt/split-stage/sandbox", What: "the current directory /work/wt/split-stage/sandbox"}}, Nest: &Nest{UIDs: []mapping.Extent{{Count: 0x10000}}, GIDs: []mapping.Extent{{Count: 0x10000}}}, Security: Security{Caps: 2199023255551, Seccomp: [][]byte{seccompAllow}}},
		"ExtraFiles":                              Config{Unshare: 1845624832, SetupRoot: true, Setgroups: true, MountProc: true, LoopbackUp: true, NoNewPrivs: true, TTY: -1, ExtraFDs: 2, UID: 0x3e8, GID: 0x3e8, Args: []string{"make", "", "-j=4"}, Env: []string{"A=b=c", "EMPTY=", "U=é"}, NewRoot: true, OwnerUID: 1000, OwnerGID: 1000, RootMapped: true, CwdTry: "/home/u/src", Ops: hostView, Nest: &Nest{UIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, GIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, UID: 0x3e8, GID: 0x3e8}, Security: security},
		"default view":                            Config{Unshare: 1845624832, SetupRoot: true, Setgroups: true, MountProc: true, LoopbackUp: true, NoNewPrivs: true, UID: 0x3e8, GID: 0x3e8, Args: []string{"make", "", "-j=4"}, Env: []string{"A=b=c", "EMPTY=", "U=é"}, NewRoot: true, OwnerUID: 1000, OwnerGID: 1000, RootMapped: true, CwdTry: "/home/u/src", Ops: hostView, Nest: &Nest{UIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, GIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, UID: 0x3e8, GID: 0x3e8}, Security: security},
		"exec (join)":                             Config{Unshare: 1845624832, Setgroups: true, NoNewPrivs: true, TTY: -1, UID: 0x3e8, GID: 0x3e8, Cwd: "/w", Args: []string{"sh"}, Env: []string{"A=1"}, JoinPID: 4242, JoinStart: 0x10000000000, JoinNested: true, Security: security},
		"nsbox mount (live)":                      Config{Unshare: 1845624832, TTY: -1, Args: []string{"nsbox-live"}, JoinPID: 4242, JoinStart: 7, JoinNested: true, Live: &Live{Op: LiveMount, Src: "/home/u/data", Dest: "/mnt/data", Anchor: "/run/user/1000/nsbox-live/4242-7/ab", ReadOnly: true, Mkdir: true}, Security: security},
		"nsbox pause (live signal)":               Config{Unshare: 1845624832, TTY: -1, Args: []string{"nsbox-live"}, JoinPID: 4242, JoinStart: 7, JoinNested: true, Live: &Live{Op: LiveSignal, Signal: 19}, Security: security},
		"Sandbox.Dial (live socket)":              Config{Unshare: 1845624832, TTY: -1, Args: []string{"nsbox-live"}, JoinPID: 4242, JoinStart: 7, JoinNested: true, Live: &Live{Op: LiveSocket, Family: 2, Type: 1}, Security: security},
		"exec (join) of a CommandIsPID1 sandbox":  Config{Unshare: 1845624832, Setgroups: true, NoNewPrivs: true, TTY: -1, UID: 0x3e8, GID: 0x3e8, Args: []string{"sh"}, JoinPID: 4242, JoinStart: 1, JoinNested: true, JoinPID1: true, Security: security},
		"Enter: bwrap --userns --userns2 --pidns": Config{Unshare: 1845624832, MountProc: true, NoNewPrivs: true, TTY: -1, UID: 0x3e8, GID: 0x3e8, Args: []string{"sh"}, NewRoot: true, OwnerUID: -1, OwnerGID: -1, Ops: hostView, EnterUserns: 4, EnterUserns2: 5, EnterPidns: 6, KeepUID: true, KeepGID: true, Security: security},
		"Enter: bwrap --userns --uid 0":           Config{Unshare: 1845624832, NoNewPrivs: true, TTY: -1, Args: []string{"sh"}, NewRoot: true, OwnerUID: -1, OwnerGID: -1, Ops: hostView, EnterUserns: 4, NestIdentity: true, KeepGID: true, Security: security},
		"WriteMaps: bwrap --userns-block-fd":      Config{Unshare: 1845624832, MountProc: true, NoNewPrivs: true, TTY: -1, UID: 0x3e8, GID: 0x3e8, Args: []string{"sh"}, NewRoot: true, OwnerUID: -1, OwnerGID: -1, Ops: hostView, NestIdentity: true, KeepUID: true, KeepGID: true, MapsLater: true, Security: security},
		"CommandIsPID1 (pid1-command)":            Config{Unshare: 1845624832, SetupRoot: true, MountProc: true, NoNewPrivs: true, PID1Command: true, TTY: -1, UID: 0x3e8, GID: 0x3e8, Args: []string{"sh"}, NewRoot: true, RootMapped: true, Ops: hostView, Nest: &Nest{UIDs: []mapping.Extent{{Inner: 0x3e8, Count: 0x1}}, GIDs: []mapping.Extent{{Inner: 0x3e8, Count: 0x1}}}, Security: security},
		"image user with groups (Process.Groups)": Config{Unshare: 1845624832, SetupRoot: true, Setgroups: true, MountProc: true, LoopbackUp: true, NoNewPrivs: true, TTY: -1, UID: 0x3e8, GID: 0x3e8, Groups: []uint32{10, 27, 4294967294}, Args: []string{"sh"}, Security: security},
		"landlock":                                Config{Unshare: 1845624832, SetupRoot: true, Setgroups: true, MountProc: true, LoopbackUp: true, NoNewPrivs: true, TTY: -1, UID: 0x3e8, GID: 0x3e8, Args: []string{"make", "", "-j=4"}, Env: []string{"A=b=c", "EMPTY=", "U=é"}, NewRoot: true, OwnerUID: 1000, OwnerGID: 1000, RootMapped: true, CwdTry: "/home/u/src", Ops: hostView, Nest: &Nest{UIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, GIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, UID: 0x3e8, GID: 0x3e8}, Security: Security{Seccomp: [][]byte{seccompAllow}, Landlock: &Landlock{FS: 65535, Net: 3, Scoped: 3, Paths: []LandlockPath{{13, false, "/usr"}, {65535, false, "/tmp"}, {13, true, "/lib64"}, {65535, true, "/a:b"}}, Ports: []LandlockPort{{1, 8080}, {2, 443}, {2, 65535}}}}},
		"overlays":                                Config{Unshare: 1845624832, SetupRoot: true, Setgroups: true, MountProc: true, LoopbackUp: true, NoNewPrivs: true, TTY: -1, UID: 0x3e8, GID: 0x3e8, Args: []string{"make", "", "-j=4"}, Env: []string{"A=b=c", "EMPTY=", "U=é"}, NewRoot: true, OwnerUID: 1000, OwnerGID: 1000, RootMapped: true, CwdTry: "/home/u/src", Ops: []Op{{Type: "bind", Source: "/", Destination: "/", ReadOnly: true, What: "the read-only host root"}, {Type: "dev", Destination: "/dev", Tun: true, What: "dev mount on /dev"}, {Type: "proc", Destination: "/proc", What: "proc mount on /proc"}, {Type: "tmpfs", Destination: "/tmp", Mode: 0x3ff, What: "tmpfs mount on /tmp"}, {Type: "tmpfs", Destination: "/run", Mode: 0x1ed, What: "the empty /run (sockets hidden)"}, {Type: "dir", Destination: "/run/lock", Mode: 0x3ff, What: "/run/lock"}, {Type: "file", Destination: "/run/host/container-manager", ReadOnly: true, Mode: 0x124, Data: []uint8{0x6e, 0x73, 0x62, 0x6f, 0x78, 0xa}, What: "/run/host/container-manager"}, {Type: "symlink", Source: "/dev/shm", Destination: "/run/shm", What: "/run/shm"}, {Type: "tmpfs", Destination: "/home", Mode: 0x1ed, What: "the empty /home (homes hidden)"}, {Type: "tmpfs", Destination: "/root", Owned: true, Mode: 0x1c0, What: "the private home /root"}, {Type: "bind", Source: "/home/u/src", Destination: "/home/u/src", What: "the current directory /home/u/src"}, {Type: "overlay", Destination: "/usr", Lower: []string{"/usr"}, Upper: "/var/tmp/u", Work: "/var/tmp/w", What: "overlay mount on /usr"}, {Type: "tmp-overlay", Destination: "/etc", What: "tmp-overlay mount on /etc"}, {Type: "tmp-overlay", Destination: "/srv", Lower: []string{"/srv/b", "/srv/a"}, What: "tmp-overlay mount on /srv"}, {Type: "overlay", Destination: "/srv/ro", Lower: []string{"/srv/b", "/srv/a"}, What: "overlay mount on /srv/ro"}, {Type: "copy-up", Destination: "/opt", What: "copy-up mount on /opt"}}, Nest: &Nest{UIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, GIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, UID: 0x3e8, GID: 0x3e8}, Security: security},
		"seccomp, caps, rlimits, new session":     Config{Unshare: 1845624832, SetupRoot: true, Setgroups: true, MountProc: true, LoopbackUp: true, NoNewPrivs: true, TTY: -1, UID: 0x3e8, GID: 0x3e8, Args: []string{"make", "", "-j=4"}, Env: []string{"A=b=c", "EMPTY=", "U=é"}, NewRoot: true, OwnerUID: 1000, OwnerGID: 1000, RootMapped: true, CwdTry: "/home/u/src", Ops: hostView, Nest: &Nest{UIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, GIDs: []mapping.Extent{{Count: 0x3e8}, {Inner: 0x3e8, Outer: 0x3e8, Count: 0x1}, {Inner: 0x3e9, Outer: 0x3e9, Count: 0xfc17}}, UID: 0x3e8, GID: 0x3e8}, Security: Security{Caps: 12288, Seccomp: [][]byte{seccompAllow, make([]byte, 8), make([]byte, 16)}, NewSession: true, Rlimits: []Rlimit{{7, 1024, 4096}, {4, 0, 18446744073709551615}}}},
	}
}

// canonical sorts records by key, keeping the order of a repeated key
// and each mount op ("mount" and the "mount-*" records after it) whole:
// the C side writes its keys in table order.
func canonical(b []byte) (top []string, ops [][]string) {
	byKey := func(r []string) {
		slices.SortStableFunc(r, func(a, b string) int {
			ka, _, _ := strings.Cut(a, "=")
			kb, _, _ := strings.Cut(b, "=")
			return strings.Compare(ka, kb)
		})
	}
	if len(b) == 0 {
		return nil, nil
	}
	for _, r := range strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00") {
		switch k, _, _ := strings.Cut(r, "="); {
		case k == "mount":
			ops = append(ops, []string{r})
		case strings.HasPrefix(k, "mount-") && len(ops) > 0:
			ops[len(ops)-1] = append(ops[len(ops)-1], r)
		default:
			top = append(top, r)
		}
	}
	byKey(top)
	for _, op := range ops {
		byKey(op)
	}
	return top, ops
}

// assertRoundTrip decodes b with the stage's decoder and checks the
// decoded struct holds exactly b's records.
func assertRoundTrip(t *testing.T, b []byte, areas uint, versioned bool) {
	t.Helper()
	out, err := decodeConfigC(b, areas, versioned)
	assert.NilError(t, err, "the stage refuses what the launcher sends")
	wantTop, wantOps := canonical(b)
	gotTop, gotOps := canonical(out)
	assert.DeepEqual(t, gotTop, wantTop)
	assert.DeepEqual(t, gotOps, wantOps)
}

func TestConfigRoundTrip(t *testing.T) {
	used := map[string]bool{}
	for name, c := range configCases(t) {
		t.Run(name, func(t *testing.T) {
			b := c.Encode()
			for _, r := range strings.Split(string(b), "\x00") {
				k, _, _ := strings.Cut(r, "=")
				used[k] = true
			}
			assert.Assert(t, bytes.HasPrefix(b, []byte(fmt.Sprintf("v=%d\x00", ConfigVersion))), "the version comes first")
			assertRoundTrip(t, b, configAreaAll, true)
		})
	}
	// NET_READY carries the device's records only, without a version.
	t.Run("NET_READY", func(t *testing.T) {
		b := EncodeTAP(TAP{Name: "eth0", MTU: 1500, Address4: netip.MustParsePrefix("10.0.2.100/24"), Gateway6: netip.MustParseAddr("fe80::1")})
		assertRoundTrip(t, b, configAreaTAP, false)
		_, err := decodeConfigC(append(b, "uid=1\x00"...), configAreaTAP, false)
		assert.ErrorContains(t, err, `config record "uid": unknown key`)
	})

	// Every key of the decoder's tables is sent by some case above, and
	// each is known once: no table line the launcher never uses.
	var keys []string
	seen := map[string]string{}
	for _, ak := range configKeysC() {
		area, k, _ := strings.Cut(ak, " ")
		assert.Check(t, seen[k] == "", "key %q is in both %s and %s", k, seen[k], area)
		seen[k] = area
		keys = append(keys, k)
		assert.Check(t, used[k], "the decoder's key %q (%s) is sent by no spec here: add a case, or drop the key", k, area)
	}
	assert.Check(t, len(keys) > 40, "%v", keys)
}

// A base message the decoder accepts, for the refusal cases.
func baseConfig() []byte {
	c := Config{TTY: -1, Args: []string{"true"}, Security: Security{}}
	return c.Encode()
}

func rec(rs ...string) []byte {
	return []byte(strings.Join(rs, "\x00") + "\x00")
}

func TestConfigRefused(t *testing.T) {
	base := baseConfig()
	without := func(key string) []byte {
		var out []byte
		for _, r := range bytes.SplitAfter(base, []byte{0}) {
			if !bytes.HasPrefix(r, []byte(key+"=")) {
				out = append(out, r...)
			}
		}
		return out
	}
	withRoot := append(slices.Clone(base), rec("new-root=1", "owner-uid=1000", "owner-gid=1000")...)
	for _, tc := range []struct {
		name string
		msg  []byte
		err  string
	}{
		{"unknown key", append(slices.Clone(base), rec("foo=1")...), `config record "foo": unknown key`},
		{"a renamed security key", append(slices.Clone(base), rec("secomp=00")...), `config record "secomp": unknown key`},
		{"no '='", append(slices.Clone(base), rec("lo")...), `config record "lo": no '='`},
		{"empty record", append(slices.Clone(base), 0), `config record "": no '='`},
		{"no version", without("v"), `config record "v": missing: the protocol version must be the first record`},
		{"empty message", nil, `config record "v": missing`},
		{"other version", append(rec("v=1"), without("v")...), `config record "v": protocol version 1, this stage speaks 2; fix:`},
		{"version twice", append(slices.Clone(base), rec("v=2")...), `config record "v": the protocol version must be the first record, once`},
		{"letters", append(without("uid"), rec("uid=abc")...), `config record "uid": "abc" is not a decimal number in 0..4294967294`},
		{"uid -1", append(without("uid"), rec("uid=-1")...), `config record "uid": "-1" is not a decimal number`},
		{"uid 2^32-1 (setresuid's 'unchanged')", append(without("uid"), rec("uid=4294967295")...), `config record "uid"`},
		{"uid 2^32", append(without("uid"), rec("uid=4294967296")...), `config record "uid"`},
		{"leading space", append(without("uid"), rec("uid= 1")...), `config record "uid"`},
		{"plus sign", append(without("uid"), rec("uid=+1")...), `config record "uid"`},
		{"leading zero", append(without("uid"), rec("uid=01")...), `config record "uid"`},
		{"minus zero", append(without("tty"), rec("tty=-0")...), `config record "tty"`},
		{"trailing junk", append(without("unshare"), rec("unshare=12x")...), `config record "unshare"`},
		{"overflow", append(without("unshare"), rec("unshare=99999999999999999999")...), `config record "unshare"`},
		{"empty number", append(without("gid"), rec("gid=")...), `config record "gid"`},
		{"bool 2", append(slices.Clone(base), rec("lo=2")...), `config record "lo": "2" is not 0 or 1`},
		{"twice", append(slices.Clone(base), rec("uid=0")...), `config record "uid": given twice`},
		{"flag twice", append(slices.Clone(base), rec("proc=1", "proc=1")...), `config record "proc": given twice`},
		{"missing caps", without("caps"), `config record "caps": missing`},
		{"missing tty", without("tty"), `config record "tty": missing`},
		{"no command", without("arg"), `config record "arg": missing`},
		{"join-pid alone", append(slices.Clone(base), rec("join-pid=5")...), `config record "join-start": missing; "join-pid" needs it`},
		{"pty-rows alone", append(slices.Clone(base), rec("pty-rows=5")...), `config record "pty-rows": given without "pty"`},
		{"owner-uid without a new root", append(slices.Clone(base), rec("owner-uid=5")...), `config record "owner-uid": given without "new-root"`},
		{"new root without owner", append(slices.Clone(base), rec("new-root=1")...), `config record "owner-uid": missing; "new-root" needs it`},
		{"hostname too long", append(slices.Clone(base), rec("hostname="+strings.Repeat("h", 65))...), `config record "hostname": longer than 64 bytes`},
		{"mount op before any mount", append(slices.Clone(withRoot), rec("mount-dst=/x")...), `config record "mount-dst": before any "mount" record`},
		{"mount without a new root", append(slices.Clone(base), rec("mount=dir", "mount-dst=/x", "mount-flags=0", "mount-mode=0", "mount-what=x")...), `config record "mount": given without "new-root"`},
		{"unknown mount type", append(slices.Clone(withRoot), rec("mount=nfs")...), `config record "mount": "nfs": unknown mount type`},
		{"mount op without dst", append(slices.Clone(withRoot), rec("mount=dir", "mount-flags=0", "mount-mode=0", "mount-what=x", "mount=proc")...), `config record "mount-dst": missing in mount op 1 (x)`},
		{"last mount op without what", append(slices.Clone(withRoot), rec("mount=dir", "mount-dst=/x", "mount-flags=0", "mount-mode=0")...), `config record "mount-what": missing in mount op 1`},
		{"mount-dst twice", append(slices.Clone(withRoot), rec("mount=dir", "mount-dst=/x", "mount-dst=/y")...), `config record "mount-dst": given twice in mount op 1`},
		{"unknown mount key", append(slices.Clone(withRoot), rec("mount=dir", "mount-dest=/x")...), `config record "mount-dest": unknown key`},
		{"mount flag bits", append(slices.Clone(withRoot), rec("mount=dir", "mount-flags=128")...), `config record "mount-flags"`},
		{"mount mode", append(slices.Clone(withRoot), rec("mount=dir", "mount-mode=4096")...), `config record "mount-mode"`},
		{"mount size 0", append(slices.Clone(withRoot), rec("mount=tmpfs", "mount-size=0")...), `config record "mount-size"`},
		{"mount data odd", append(slices.Clone(withRoot), rec("mount=file", "mount-data=abc")...), `config record "mount-data": "abc": not lowercase hex`},
		{"mount data upper case", append(slices.Clone(withRoot), rec("mount=file", "mount-data=AB")...), `config record "mount-data"`},
		{"seccomp bad hex", append(slices.Clone(base), rec("seccomp=zz")...), `config record "seccomp": "zz": not lowercase hex`},
		{"seccomp partial instruction", append(slices.Clone(base), rec("seccomp=00000000000000")...), `config record "seccomp": "00000000000000": not 1 to 4096`},
		{"seccomp empty", append(slices.Clone(base), rec("seccomp=")...), `config record "seccomp"`},
		{"rlimit resource", append(slices.Clone(base), rec("rlimit=16:1:1")...), `config record "rlimit": "16:1:1": want RESOURCE:SOFT:HARD`},
		{"rlimit soft above hard", append(slices.Clone(base), rec("rlimit=7:2:1")...), `config record "rlimit": "7:2:1": soft limit above the hard one`},
		{"rlimit short", append(slices.Clone(base), rec("rlimit=7:2")...), `config record "rlimit"`},
		{"landlock short", append(slices.Clone(base), rec("landlock=1:2")...), `config record "landlock": "1:2": want FS:NET:SCOPED`},
		{"landlock twice", append(slices.Clone(base), rec("landlock=1:2:3", "landlock=1:2:3")...), `config record "landlock": given twice`},
		{"landlock-path without landlock", append(slices.Clone(base), rec("landlock-path=1:0:/x")...), `config record "landlock-path": given without "landlock"`},
		{"landlock-path optional 2", append(slices.Clone(base), rec("landlock=1:2:3", "landlock-path=1:2:/x")...), `config record "landlock-path"`},
		{"landlock-path without a path", append(slices.Clone(base), rec("landlock=1:2:3", "landlock-path=1:0:")...), `config record "landlock-path"`},
		{"landlock port 65536", append(slices.Clone(base), rec("landlock=1:2:3", "landlock-port=1:65536")...), `config record "landlock-port"`},
		{"tap name too long", append(slices.Clone(base), rec("tap=abcdefghijklmnop")...), `config record "tap": longer than 15 bytes`},
		{"tap address", append(slices.Clone(base), rec("tap=t", "tap-addr4=10.0.2.300/24")...), `config record "tap-addr4": "10.0.2.300/24": not an IPv4 or IPv6 address`},
		{"tap prefix bits", append(slices.Clone(base), rec("tap=t", "tap-addr6=fd00::1/129")...), `config record "tap-addr6"`},
		{"tap-mtu without tap", append(slices.Clone(base), rec("tap-mtu=1500")...), `config record "tap-mtu": given without "tap"`},
		{"nest-uid alone", append(slices.Clone(base), rec("nest-uid=1000")...), `config record "nest-gid": missing; "nest-uid" needs it`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeConfigC(tc.msg, configAreaAll, true)
			assert.ErrorContains(t, err, tc.err)
			assert.Check(t, is.Equal(strings.Count(err.Error(), "\n"), 0))
		})
	}
	_, err := decodeConfigC(base, configAreaAll, true)
	assert.NilError(t, err)
}

// The stage itself (this test binary re-executed with the stage's
// variable) refuses a bad CONFIG before it creates anything: one ERROR
// naming the record, exit 125.
func TestStageRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  []byte
		err  string
	}{
		{"unknown key", append(baseConfig(), rec("seccomp-off=1")...), `config record "seccomp-off": unknown key`},
		{"other version", append(rec("v=1"), baseConfig()[len("v=2\x00"):]...), `config record "v": protocol version 1, this stage speaks 2`},
		{"bad number", append(baseConfig(), rec("pty=1", "pty-rows=1e3", "pty-cols=80")...), `config record "pty-rows": "1e3" is not a decimal number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, child, err := socketPair()
			assert.NilError(t, err)
			defer parent.Close()
			p, err := os.StartProcess("/proc/self/exe", []string{"nsbox-stage"}, &os.ProcAttr{
				Env:   []string{Env + "=1"},
				Files: []*os.File{os.Stdin, os.Stdout, os.Stderr, child},
			})
			child.Close()
			assert.NilError(t, err)
			assert.NilError(t, WriteMessage(parent, MsgConfig, 0, tc.msg))
			_, err = Expect(parent, MsgUsernsReady)
			var setup *Error
			assert.Assert(t, errors.As(err, &setup), "%v", err)
			assert.Check(t, is.Equal(setup.Kind, uint32(MsgError)))
			assert.Check(t, strings.HasPrefix(setup.Text, tc.err), "%v", setup)
			assert.Check(t, is.Equal(setup.Errno, syscall.EINVAL))
			st, err := p.Wait()
			assert.NilError(t, err)
			assert.Equal(t, st.ExitCode(), 125, "the launcher's exit code")
		})
	}
}

// The decoder's tables hold exactly protocol.h's keys.
func TestDecoderKeysAreProtocolKeys(t *testing.T) {
	var want, got []string
	for macro, k := range protocolKeys(t) {
		if macro != "KEY_VERSION" {
			want = append(want, k)
		}
	}
	for _, ak := range configKeysC() {
		_, k, _ := strings.Cut(ak, " ")
		got = append(got, k)
	}
	slices.Sort(want)
	slices.Sort(got)
	assert.DeepEqual(t, got, want)
}

// Each Op field sets the MOUNT_* bit the stage means by it: an op with
// one field set decodes, in C, to one flag of that name. (Comparing the
// records' text could not catch two bits swapped between the sides.)
func TestMountFlagsMeanTheirField(t *testing.T) {
	for want, op := range map[string]Op{
		"readonly":     {ReadOnly: true},
		"devices":      {Devices: true},
		"optional":     {Optional: true},
		"owned":        {Owned: true},
		"nonrecursive": {NonRecursive: true},
		"tun":          {Tun: true},
		"mode-set":     {ModeSet: true},
	} {
		op.Type, op.Destination, op.What = "dir", "/d", "d"
		c := Config{TTY: -1, Args: []string{"true"}, NewRoot: true, Ops: []Op{op}}
		out, err := decodeConfigC(c.Encode(), configAreaAll, true)
		assert.NilError(t, err)
		var got []string
		for _, r := range strings.Split(string(out), "\x00") {
			if v, ok := strings.CutPrefix(r, "mount-flags="); ok {
				n, err := strconv.Atoi(v)
				assert.NilError(t, err)
				for bit := 1; bit <= n; bit <<= 1 {
					if n&bit != 0 {
						got = append(got, mountFlagNameC(bit))
					}
				}
			}
		}
		assert.Check(t, is.DeepEqual(got, []string{want}), "Op field for %q", want)
	}
}
