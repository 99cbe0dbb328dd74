package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/moby/sys/mountinfo"
)

const overlayNeededBy = "--tmp-overlay, --overlay, --copy-up"

// checkOverlay mounts an overlayfs in a throwaway user+mount namespace
// (the probe is this binary again, through /proc/self/exe, so it runs
// wherever the binary lives). The probe names the step that failed and
// its cause: $TMPDIR not writable, AppArmor refusing the mount, a kernel
// too old for overlayfs in a user namespace, or a lower layer's
// filesystem that overlayfs refuses.
func checkOverlay() checkResult {
	r := checkResult{Name: "overlayfs in a user namespace", NeededBy: overlayNeededBy}
	cmd := exec.Command("/proc/self/exe", "check", "--probe-overlay")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "nsbox: "))
		if msg == "" {
			msg = err.Error()
		}
		r.Detail, r.Fix = splitFix(msg)
		return r
	}
	r.OK = true
	r.Detail = "mounts (" + strings.TrimSpace(string(out)) + ")"
	return r
}

// probeOverlay, run inside checkOverlay's namespaces, mounts an overlay
// as --tmp-overlay does: the upper layer on a tmpfs, the lower one in
// $TMPDIR on the host's filesystem. Its error is one line, "what failed:
// cause; fix: …".
func probeOverlay() error {
	dir, err := os.MkdirTemp("", "nsbox-check-")
	if err != nil {
		return fmt.Errorf("create the probe's lower layer in %s: %w; fix: set TMPDIR to a directory you can write", os.TempDir(), unwrapPath(err))
	}
	defer os.RemoveAll(dir)
	j := func(s string) string { return filepath.Join(dir, s) }
	if err := os.Mkdir(j("lower"), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(j("t"), 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", j("t"), "tmpfs", 0, "mode=0755"); err != nil {
		return mountRefused("a tmpfs for the upper layer", err)
	}
	defer unix.Unmount(j("t"), unix.MNT_DETACH)
	t := func(s string) string { return filepath.Join(dir, "t", s) }
	for _, d := range []string{"upper", "work", "merged"} {
		if err := os.Mkdir(t(d), 0o755); err != nil {
			return err
		}
	}
	for _, opts := range []string{"userxattr,", ""} {
		data := fmt.Sprintf("%slowerdir=%s,upperdir=%s,workdir=%s", opts, j("lower"), t("upper"), t("work"))
		if err = unix.Mount("overlay", t("merged"), "overlay", 0, data); err == nil {
			unix.Unmount(t("merged"), unix.MNT_DETACH)
			fmt.Println(strings.TrimSuffix("overlay "+opts, ","))
			return nil
		}
	}
	return mountRefused("overlay", err, j("lower"))
}

// mountRefused explains a mount the probe was refused: AppArmor (its
// mount mediation answers EACCES), a kernel before 5.11 (no overlayfs in
// a user namespace: EPERM), or, for the overlay, the lower layer's
// filesystem (lower names it).
func mountRefused(what string, err error, lower ...string) error {
	release := ""
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		release = unix.ByteSliceToString(u.Release[:])
	}
	switch {
	case errors.Is(err, unix.EACCES) && appArmorEnabled():
		return fmt.Errorf("mount %s: %w: AppArmor refuses mounts in this user namespace; fix: load a profile that allows nsbox to mount (see the AppArmor line, or run nsbox check as root for the profile to install)", what, err)
	case release != "" && !kernelAtLeast(release, 5, 11) && what == "overlay":
		return fmt.Errorf("mount %s: %w: this kernel (%s) has no overlayfs in a user namespace; fix: use a kernel ≥ 5.11", what, err, release)
	case len(lower) > 0:
		fsName := "its filesystem"
		if t := fsTypeOf(lower[0]); t != "" {
			fsName = "a " + t + " filesystem"
		}
		return fmt.Errorf("mount %s: %w: the kernel (%s) refuses the lower layer in %s, on %s; fix: --tmp-overlay works only over directories on filesystems overlayfs accepts as a lower layer; set TMPDIR elsewhere to probe another", what, err, release, os.TempDir(), fsName)
	}
	return fmt.Errorf("mount %s: %w", what, err)
}

// appArmorEnabled reports whether AppArmor is active in this kernel.
func appArmorEnabled() bool {
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && strings.TrimSpace(string(b)) == "Y"
}

// unwrapPath drops the path an *os.PathError repeats.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// fsTypeOf returns the type of the filesystem mounted at or above path,
// from /proc/self/mountinfo (the longest mount point that holds path), or
// "" if it cannot tell.
func fsTypeOf(path string) string {
	mounts, err := mountinfo.GetMounts(mountinfo.ParentsFilter(filepath.Clean(path)))
	if err != nil {
		return ""
	}
	best, fsType := -1, ""
	for _, m := range mounts {
		if len(m.Mountpoint) > best {
			best, fsType = len(m.Mountpoint), m.FSType
		}
	}
	return fsType
}
