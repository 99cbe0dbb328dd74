package sandbox

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nsbox/nsbox/internal/hostdirs"
)

// View describes nsbox run's default filesystem: the host's / read-only
// (every submount too), a minimal /dev, a new /proc and an empty /tmp, with
// the user's secrets and sockets hidden:
//
//   - /home and Home are covered: a private tmpfs owned by the command
//     stands at Home, so tools write their caches there and the real
//     dotfiles, keys and tokens stay out of sight;
//   - /run (and /var/run where it is a directory of its own) is an empty
//     tmpfs: no session bus, no ssh or gpg agent, no docker or podman
//     socket, no Wayland display; the X11 sockets in /tmp/.X11-unix are
//     behind the private /tmp;
//   - Cwd is bound read-write at its own path, unless it is a system
//     directory (/, /usr, /var/tmp …), the home directory or holds it, or
//     lies in a hidden directory of the home (~/.ssh, ~/.config …), where
//     a command could plant code the user runs later
//     (internal/hostdirs.CwdWritable); then the command sees it as the
//     rest of the view shows it.
//
// The zero View is that view without a working directory and a home.
type View struct {
	// Cwd is the working directory; "" binds none.
	Cwd string
	// Home is the home directory the command gets ($HOME); "" hides only
	// /home.
	Home string
	// ShareHome binds the real Home read-only instead of a private tmpfs
	// (a dev shell's dotfiles).
	ShareHome bool
	// HomeSource, when set, is a host directory bound read-write at Home:
	// a home that persists from one sandbox to the next.
	HomeSource string
	// RuntimeDir is $XDG_RUNTIME_DIR: it gets an empty tmpfs of the
	// command's own (mode 0700), as a login session would.
	RuntimeDir string
}

// Mounts is the view as mount ops, and why Cwd is not writable ("" when
// it is, or when there is no Cwd).
func (v View) Mounts() ([]Mount, string) {
	ms := []Mount{{Type: MountBind, Source: "/", Destination: "/", ReadOnly: true, Flag: "the read-only host root"}}
	ms = append(ms, BaseView()...)
	ms = append(ms, v.hideSockets()...)
	ms = append(ms, v.home()...)
	why := ""
	if v.Cwd != "" {
		ok, reason := hostdirs.CwdWritable(v.Cwd, v.Home)
		if ok {
			ms = append(ms, Mount{Type: MountBind, Source: v.Cwd, Destination: v.Cwd, Flag: "the current directory " + v.Cwd})
		}
		why = reason
	}
	// Last, so that no bind of the view (the current directory, a shared
	// home) can show the real $XDG_RUNTIME_DIR, and nsbox's state
	// directory in it, from below: a tmpfs applied earlier would be
	// covered by a bind of a directory that holds it.
	return append(ms, v.runtimeDir()...), why
}

// hideSockets covers /run and a /var/run of its own with empty tmpfs, and
// brings back what is no socket but is looked for there: the resolver's
// configuration when /etc/resolv.conf links into /run, /run/lock and
// /run/shm.
func (v View) hideSockets() []Mount {
	var ms []Mount
	for _, d := range []string{"/run", "/var/run"} {
		if st, err := os.Lstat(d); err == nil && st.IsDir() {
			ms = append(ms, Mount{Type: MountTmpfs, Destination: d, Mode: 0o755, Flag: "the empty " + d + " (sockets hidden)"})
		}
	}
	if len(ms) == 0 {
		return nil
	}
	ms = append(ms, Mount{Type: MountDir, Destination: "/run/lock", Mode: 0o777 | fs.ModeSticky, Flag: "/run/lock"})
	ms = append(ms, Mount{Type: MountFile, Destination: "/run/host/container-manager", Data: []byte("nsbox\n"), Mode: 0o444, ReadOnly: true, Flag: "/run/host/container-manager"})
	if t, err := os.Readlink("/run/shm"); err == nil {
		ms = append(ms, Mount{Type: MountSymlink, Source: t, Destination: "/run/shm", Flag: "/run/shm"})
	}
	if r, err := filepath.EvalSymlinks("/etc/resolv.conf"); err == nil && strings.HasPrefix(r, "/run/") {
		ms = append(ms, Mount{Type: MountBind, Source: r, Destination: r, ReadOnly: true, Optional: true, Flag: "the resolver's " + r})
	}
	return ms
}

// runtimeDir covers $XDG_RUNTIME_DIR, wherever it is, with an empty tmpfs
// of the command's own: the session's sockets (bus, agents, Wayland) live
// there, and so does nsbox's own state directory.
func (v View) runtimeDir() []Mount {
	rd := filepath.Clean(v.RuntimeDir)
	if !filepath.IsAbs(v.RuntimeDir) || rd == "/" {
		return nil
	}
	for _, d := range hostdirs.System {
		if rd == d {
			return nil
		}
	}
	if st, err := os.Stat(rd); err != nil || !st.IsDir() {
		return nil
	}
	return ownedTmpfs(rd, "the private XDG_RUNTIME_DIR "+rd)
}

// ownedTmpfs is a private 0700 tmpfs at dst that belongs to the command.
// The directories on the way to it, where setup must create them, are
// made 0755 first: an op's mode also narrows the parents it creates
// (bubblewrap's rule for --perms), and a 0700 parent owned by setup's
// root would lock the command out of its own home.
func ownedTmpfs(dst, flag string) []Mount {
	var ms []Mount
	if parent := filepath.Dir(dst); parent != "/" {
		ms = append(ms, Mount{Type: MountDir, Destination: parent, Mode: 0o755, Flag: flag})
	}
	return append(ms, Mount{Type: MountTmpfs, Destination: dst, Mode: 0o700, Owned: true, Flag: flag})
}

// home hides /home and puts the command's home at Home.
func (v View) home() []Mount {
	var ms []Mount
	if st, err := os.Stat("/home"); err == nil && st.IsDir() {
		ms = append(ms, Mount{Type: MountTmpfs, Destination: hostdirs.RealPath("/home"), Mode: 0o755, Flag: "the empty /home (homes hidden)"})
	}
	h := v.Home
	if h == "" || h == "/" || !filepath.IsAbs(h) {
		return ms
	}
	for _, d := range hostdirs.System {
		if h == d && d != "/root" {
			return ms // a daemon's home (/var/lib …): not a tmpfs over the system
		}
	}
	switch {
	case v.HomeSource != "":
		ms = append(ms, Mount{Type: MountBind, Source: v.HomeSource, Destination: h, Flag: "--home " + v.HomeSource})
	case v.ShareHome:
		ms = append(ms, Mount{Type: MountBind, Source: h, Destination: h, ReadOnly: true, Optional: true, Flag: "--share-home"})
	default:
		ms = append(ms, ownedTmpfs(h, "the private home "+h)...)
	}
	return ms
}
