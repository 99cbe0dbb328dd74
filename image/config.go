package image

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/moby/sys/user"
	"golang.org/x/sys/unix"
)

// defaultPath is the PATH a sandbox gets when the image sets none, as
// Docker's.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Process is how the image says its command runs.
type Process struct {
	Args     []string // the command
	Env      []string // the image's environment, PATH and HOME filled in
	Cwd      string   // the image's WorkingDir, or /
	UID, GID uint32   // the image's User, resolved in its /etc/passwd and /etc/group
	// Groups are the User's supplementary groups: those of the image's
	// /etc/group that list the user, and the groups a UID:GID form does
	// not name. Setting them needs a map that allows setgroups(2).
	Groups []uint32
	Home   string
	// StopSignal is the image's StopSignal, what asks the command to
	// end; 0 if the image names none (SIGTERM, then).
	StopSignal unix.Signal
}

// Process resolves img's configuration: the command is Entrypoint
// followed by args, or by Cmd when args is empty (Docker's rule); User
// (NAME, UID, NAME:GROUP, UID:GID) is looked up in the image's own
// /etc/passwd and /etc/group (moby/sys/user, as runc does).
func (s *Store) Process(img *Image, args []string) (Process, error) {
	c := img.Config
	p := Process{Cwd: c.WorkingDir}
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	p.Args = append(append([]string{}, c.Entrypoint...), args...)
	if len(args) == 0 {
		p.Args = append(p.Args, c.Cmd...)
	}
	if len(p.Args) == 0 {
		return p, fmt.Errorf("image %s names no command (no Entrypoint or Cmd); fix: give one: nsbox run --image %s -- COMMAND", img.Ref, img.Ref)
	}
	lowers := s.LowerDirs(img)
	passwd, _ := readMerged(lowers, "etc/passwd")
	group, _ := readMerged(lowers, "etc/group")
	u, err := user.GetExecUser(c.User, &user.ExecUser{Home: "/"}, readerOrNil(passwd), readerOrNil(group))
	if err != nil {
		return p, fmt.Errorf("image %s: user %q: %w", img.Ref, c.User, err)
	}
	if u.Uid < 0 || u.Gid < 0 {
		return p, fmt.Errorf("image %s: user %q: negative id", img.Ref, c.User)
	}
	p.UID, p.GID, p.Home = uint32(u.Uid), uint32(u.Gid), u.Home
	for _, g := range u.Sgids {
		if g >= 0 && uint32(g) != p.GID && len(p.Groups) < 64 {
			p.Groups = append(p.Groups, uint32(g))
		}
	}
	if c.StopSignal != "" {
		if p.StopSignal, err = parseSignal(c.StopSignal); err != nil {
			return p, fmt.Errorf("image %s: StopSignal %q: %w", img.Ref, c.StopSignal, err)
		}
	}
	p.Env = append([]string{}, c.Env...)
	if !hasKey(p.Env, "PATH") {
		p.Env = append(p.Env, defaultPath)
	}
	if !hasKey(p.Env, "HOME") {
		p.Env = append(p.Env, "HOME="+p.Home)
	}
	return p, nil
}

func hasKey(env []string, k string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, k+"=") {
			return true
		}
	}
	return false
}

func readerOrNil(b []byte) io.Reader {
	if b == nil {
		return nil
	}
	return bytes.NewReader(b)
}

// readMerged reads the regular file rel as the stacked layers show it:
// from the topmost layer that has it, nil if a whiteout hides it or no
// layer has it. It opens beneath each layer without following symlinks
// and reads at most 4 MiB.
func readMerged(lowers []string, rel string) ([]byte, error) {
	for _, l := range lowers {
		root, err := unix.Open(l, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV}
		fd, err := unix.Openat2(root, rel, &how)
		unix.Close(root)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return nil, err // a whiteout (a device), a symlink: hidden
		}
		f := os.NewFile(uintptr(fd), rel)
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			f.Close()
			return nil, errors.New(rel + " is not a regular file")
		}
		b, err := io.ReadAll(io.LimitReader(f, 4<<20))
		f.Close()
		return b, err
	}
	return nil, os.ErrNotExist
}

// parseSignal reads a signal as images name them: SIGTERM, TERM, 15,
// SIGRTMIN+3 (as systemd images do), RTMAX-1.
func parseSignal(s string) (unix.Signal, error) {
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	n, err := strconv.Atoi(name)
	switch {
	case err == nil:
	case strings.HasPrefix(name, "RTMIN"), strings.HasPrefix(name, "RTMAX"):
		// glibc's SIGRTMIN, 34, as Docker counts (the C library keeps
		// 32 and 33), to the kernel's SIGRTMAX, 64.
		base, sign, off := 34, 1, strings.TrimPrefix(name[5:], "+")
		if name[:5] == "RTMAX" {
			base, sign, off = 64, -1, strings.TrimPrefix(name[5:], "-")
		}
		d := 0
		if off != "" {
			if d, err = strconv.Atoi(off); err != nil || strings.Trim(off, "0123456789") != "" {
				return 0, errors.New("not a signal")
			}
		}
		n = base + sign*d
	default:
		n = int(unix.SignalNum("SIG" + name))
	}
	if n < 1 || n > 64 {
		return 0, errors.New("not a signal (a name like SIGTERM, or 1 to 64)")
	}
	return unix.Signal(n), nil
}
