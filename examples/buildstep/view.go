package buildstep

// The read-only view, built from inside the sandbox.
//
// Until nsbox's Spec carries mounts of its own (the filesystem work:
// Spec.Mounts with read-only binds), the runner sets the view up itself:
// the sandbox's command is this very binary in setup mode, started as the
// sandbox's root (inner uid 0, which owns the new mount namespace). It
// binds the source tree onto itself read-only (recursively, with
// mount_setattr), binds the output directory onto itself writable, then
// drops to the caller's own inner uid and gid (which clears every
// capability, so the step cannot remount anything) and execs the step.
// no_new_privs, set by nsbox for the command, carries over the exec.
//
// With Spec.Mounts this file becomes:
//
//	spec.Mounts = append(sandbox.HostView(""),
//		sandbox.Mount{Type: sandbox.MountBind, Source: src, Destination: src, ReadOnly: true},
//		sandbox.Mount{Type: sandbox.MountBind, Source: out, Destination: out})
//
// and Init and setupMode go away.

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/nsbox/nsbox/sandbox"
	"golang.org/x/sys/unix"
)

// setupMode is argv[1] of the binary re-executed inside the sandbox.
const setupMode = "buildstep-setup-view"

// readOnlyView turns spec (a command line) into the setup-mode command that
// builds the view and then execs that command line.
func readOnlyView(spec *sandbox.Spec, src, out string) error {
	if !spec.Mapping.MapsInnerUID(0) || !spec.Mapping.MapsInnerGID(0) || spec.Mapping.UID == 0 {
		return errors.New("buildstep needs subordinate ids for the sandbox's root and a non-root caller; fix: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $USER (and install uidmap), and run as that user")
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("buildstep: find this program to re-execute it: %w", err)
	}
	uid, gid := spec.Mapping.UID, spec.Mapping.GID
	spec.Process.Args = append([]string{self, setupMode, src, out,
		strconv.FormatUint(uint64(uid), 10), strconv.FormatUint(uint64(gid), 10)}, spec.Process.Args...)
	spec.Process.UID, spec.Process.GID = 0, 0
	return nil
}

// Init must be called first in main, after sandbox.Init, by programs that
// use Runner: in the re-executed setup mode it builds the view and execs
// the step, and never returns. Otherwise it returns at once.
func Init() {
	if len(os.Args) < 7 || os.Args[1] != setupMode {
		return
	}
	if err := setupView(os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6:]); err != nil {
		fmt.Fprintf(os.Stderr, "buildstep: %v\n", err)
		os.Exit(125)
	}
}

func setupView(src, out, uidArg, gidArg string, argv []string) error {
	uid, err1 := strconv.Atoi(uidArg)
	gid, err2 := strconv.Atoi(gidArg)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("setup mode: %w", err)
	}
	ro := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	if err := unix.Mount(src, src, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind the source %s: %w", src, err)
	}
	if err := unix.MountSetattr(unix.AT_FDCWD, src, unix.AT_RECURSIVE, ro); err != nil {
		return fmt.Errorf("make the source %s read-only: %w", src, err)
	}
	// A bind of a path under the now read-only source starts read-only:
	// it is ours, so we may clear that.
	if err := unix.Mount(out, out, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind the output directory %s: %w", out, err)
	}
	if err := unix.MountSetattr(unix.AT_FDCWD, out, 0, &unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return fmt.Errorf("make the output directory %s writable: %w", out, err)
	}
	// The working directory was entered before the mounts: enter the
	// read-only view of it.
	if wd, err := os.Getwd(); err == nil {
		os.Chdir(wd)
	}
	// From root to the caller's id: the kernel clears every capability.
	if err := syscall.Setgroups(nil); err != nil && !errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("drop supplementary groups: %w", err)
	}
	if err := syscall.Setresgid(gid, gid, gid); err != nil {
		return fmt.Errorf("switch to gid %d: %w", gid, err)
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return fmt.Errorf("switch to uid %d: %w", uid, err)
	}
	return syscall.Exec(argv[0], argv, os.Environ())
}
