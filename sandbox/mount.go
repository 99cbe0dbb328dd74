package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nsbox/nsbox/internal/hostdirs"
	"github.com/nsbox/nsbox/internal/remedy"
)

// MountType names what one mount operation does. The types follow
// bubblewrap's options, plus overlays and copy-up.
type MountType string

const (
	// MountBind binds Source (a host path) at Destination. ReadOnly makes
	// it read-only, recursively; Devices keeps device nodes usable
	// (--dev-bind); Optional skips a missing Source (--bind-try).
	MountBind MountType = "bind"
	// MountTmpfs mounts an empty tmpfs at Destination, of Size bytes
	// (0: the kernel's default, half of RAM) and Mode (0: 0755).
	MountTmpfs MountType = "tmpfs"
	// MountDir creates the directory Destination (Mode, 0: 0755).
	MountDir MountType = "dir"
	// MountSymlink creates Destination as a symlink to Source.
	MountSymlink MountType = "symlink"
	// MountChmod sets the permission bits of Destination to Mode.
	MountChmod MountType = "chmod"
	// MountRemountRO makes the mount at Destination read-only, recursively
	// (NonRecursive: that mount only, as bubblewrap's --remount-ro).
	MountRemountRO MountType = "remount-ro"
	// MountProc mounts a new procfs at Destination when the sandbox has a
	// PID namespace of its own (the host's /proc bound otherwise), with
	// /proc/sys, sysrq-trigger, irq and bus read-only.
	MountProc MountType = "proc"
	// MountDev builds a minimal /dev at Destination, as bubblewrap's --dev.
	MountDev MountType = "dev"
	// MountMqueue mounts the IPC namespace's POSIX message queues.
	MountMqueue MountType = "mqueue"
	// MountFile places a file holding Data at Destination (Mode, 0: 0644).
	// The file lives on a private tmpfs and is bound over Destination, so
	// it can be placed on a read-only root; ReadOnly makes it read-only.
	MountFile MountType = "file"
	// MountOverlay mounts overlayfs at Destination: Lower (host paths,
	// topmost first), with writes going to the host directory Upper and
	// Work as its scratch directory (same filesystem as Upper). Without
	// Upper and Work the overlay is read-only and needs two Lower at least
	// (bubblewrap's --ro-overlay).
	MountOverlay MountType = "overlay"
	// MountTmpOverlay puts a throwaway writable layer over Destination:
	// writes go to a private tmpfs and vanish with the sandbox. With
	// Lower, the layer goes over those host directories (topmost first)
	// instead of Destination's own contents (bubblewrap's --tmp-overlay).
	MountTmpOverlay MountType = "tmp-overlay"
	// MountCopyUp makes the directory Destination writable for the
	// sandbox's life: an overlay with a private upper where the kernel
	// allows it, else a tmpfs of symlinks to the original entries
	// (rootlesskit's --copy-up).
	MountCopyUp MountType = "copy-up"
)

var mountTypes = []MountType{MountBind, MountTmpfs, MountDir, MountSymlink, MountChmod, MountRemountRO,
	MountProc, MountDev, MountMqueue, MountFile, MountOverlay, MountTmpOverlay, MountCopyUp}

// Mount is one operation of the sandbox's filesystem setup. Paths in
// Destination are inside the sandbox and are resolved inside its new
// root: a symlink met on the way is followed as if the new root were /,
// never out of it. Source, Lower, Upper and Work are host paths.
type Mount struct {
	Type        MountType `json:"type"`
	Source      string    `json:"source,omitempty"`
	Destination string    `json:"destination"`
	ReadOnly    bool      `json:"readOnly,omitempty"`
	// Devices allows device nodes in a bind (nodev is set otherwise).
	Devices bool `json:"devices,omitempty"`
	// Optional skips a bind whose Source does not exist.
	Optional bool `json:"optional,omitempty"`
	// Mode is the permission bits of what the op creates; 0 is the type's
	// default. Directories created on the way to Destination get 0755,
	// less group (other) read and search when Mode gives the group
	// (others) nothing, as bubblewrap's --perms does.
	Mode fs.FileMode `json:"mode,omitempty"`
	// ModeSet makes a zero Mode mean mode 0000 (bubblewrap's --perms
	// 0000), not the type's default.
	ModeSet bool `json:"modeSet,omitempty"`
	// Size limits a tmpfs, in bytes; 0 is the kernel's default.
	Size int64 `json:"size,omitempty"`
	// Data is the content of a MountFile.
	Data []byte `json:"data,omitempty"`
	// Lower, Upper and Work configure a MountOverlay; Lower also a
	// MountTmpOverlay over host directories.
	Lower []string `json:"lower,omitempty"`
	Upper string   `json:"upper,omitempty"`
	Work  string   `json:"work,omitempty"`
	// Owned makes the root of a MountTmpfs belong to the command's uid and
	// gid (root of the sandbox's namespace otherwise): a private home.
	Owned bool `json:"owned,omitempty"`
	// NonRecursive makes a MountRemountRO change the mount at Destination
	// only: mounts below it keep their own read-write or read-only flag
	// (bubblewrap's --remount-ro). False makes them read-only too.
	NonRecursive bool `json:"nonRecursive,omitempty"`
	// Tun adds the host's /dev/net/tun to a MountDev (bubblewrap's --dev
	// has no such node), so a sandbox nested inside can use --net user.
	// The device only makes interfaces in a network namespace whose
	// owner grants CAP_NET_ADMIN: the command's own nested ones.
	Tun bool `json:"tun,omitempty"`
	// Flag is how the user asked for this op (e.g. "--ro-bind /x"); error
	// messages name it. "" names the op by its type.
	Flag string `json:"-"`
}

// maxFileData bounds the Data of all MountFile ops together: they travel
// in the CONFIG message, hex-encoded.
const maxFileData = 1 << 20

// what names the op in error messages.
func (m *Mount) what() string {
	if m.Flag != "" {
		return m.Flag
	}
	if m.Source != "" {
		return fmt.Sprintf("%s mount %s on %s", m.Type, m.Source, m.Destination)
	}
	return fmt.Sprintf("%s mount on %s", m.Type, m.Destination)
}

// HostView is nsbox run's default filesystem for the working directory
// cwd: View{Cwd: cwd, Home: the caller's home ($HOME if absolute, else
// its passwd entry's), RuntimeDir: $XDG_RUNTIME_DIR}.
func HostView(cwd string) []Mount {
	ms, _ := View{Cwd: cwd, Home: hostdirs.UserHome(), RuntimeDir: os.Getenv("XDG_RUNTIME_DIR")}.Mounts()
	return ms
}

// BaseView is what every sandbox root gets besides its tree: /dev, /proc
// and a tmpfs on /tmp.
func BaseView() []Mount {
	return []Mount{
		{Type: MountDev, Destination: "/dev", Tun: true},
		{Type: MountProc, Destination: "/proc"},
		{Type: MountTmpfs, Destination: "/tmp", Mode: 0o777 | fs.ModeSticky},
	}
}

// validateMounts checks the ops. Its errors are *SpecError naming the op
// (Mounts[i], and its Flag as Value), the cause and the fix. An Optional bind whose source is missing passes: the stage
// skips it.
func (s *Spec) validateMounts() error {
	if s.Mounts == nil {
		return nil
	}
	if !s.Namespaces.Mount {
		return &SpecError{Field: "Mounts", Problem: "mount operations need a mount namespace of the sandbox's own", Fix: remedy.Hint{Kind: remedy.OwnNamespace, Arg: "mnt"}}
	}
	data := 0
	for i := range s.Mounts {
		m := &s.Mounts[i]
		field := fmt.Sprintf("Mounts[%d]", i)
		if err := m.validate(); err != nil {
			var se *SpecError
			if errors.As(err, &se) && se.Field == "" {
				se.Field, se.Value = field, m.what()
				return se
			}
			return &SpecError{Field: field, Value: m.what(), Err: err}
		}
		data += len(m.Data)
		if data > maxFileData {
			return &SpecError{Field: field, Value: m.what(), Problem: fmt.Sprintf("the files placed in the sandbox hold more than %d bytes together", maxFileData),
				Fix: remedy.Hint{Kind: remedy.BindLarge}}
		}
	}
	return nil
}

// validate checks one op.
func (m *Mount) validate() error {
	known := false
	for _, t := range mountTypes {
		known = known || t == m.Type
	}
	if !known {
		return fmt.Errorf("unknown mount type %q", m.Type)
	}
	if err := checkPath("destination", m.Destination, true); err != nil {
		return err
	}
	if m.Mode&^(fs.ModePerm|fs.ModeSticky|fs.ModeSetuid|fs.ModeSetgid) != 0 {
		return fmt.Errorf("mode %v has bits besides permissions; fix: give an octal mode such as 0755", m.Mode)
	}
	if m.Size < 0 {
		return errors.New("negative size")
	}
	if m.Owned && m.Type != MountTmpfs {
		return errors.New("only a tmpfs can be owned by the command")
	}
	if m.NonRecursive && m.Type != MountRemountRO {
		return errors.New("only a remount-ro can be non-recursive")
	}
	if m.Tun && m.Type != MountDev {
		return errors.New("only a dev mount can hold /dev/net/tun")
	}
	switch m.Type {
	case MountBind:
		if err := checkPath("source", m.Source, true); err != nil {
			return err
		}
		if _, err := os.Stat(m.Source); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				if m.Optional {
					return nil
				}
				return &SpecError{Problem: "source does not exist", Fix: remedy.Hint{Kind: remedy.OptionalSource, Arg: m.Source}}
			}
			return fmt.Errorf("source: %w", unwrapPathError(err))
		}
	case MountSymlink:
		if m.Source == "" || strings.IndexByte(m.Source, 0) >= 0 {
			return errors.New("empty symlink target, or one with a NUL byte")
		}
	case MountOverlay, MountTmpOverlay:
		if m.Type == MountOverlay && len(m.Lower) == 0 {
			return &SpecError{Problem: "no lower directory", Fix: remedy.Hint{Kind: remedy.OverlayLower}}
		}
		for _, l := range m.Lower {
			if err := checkDir("lower directory", l); err != nil {
				return err
			}
		}
		if m.Type == MountTmpOverlay {
			break
		}
		if m.Upper == "" && m.Work == "" {
			if len(m.Lower) < 2 {
				return errors.New("a read-only overlay (no upper directory) needs two lower directories at least; fix: add a lower directory, or bind the one read-only")
			}
			break
		}
		if err := checkDir("upper directory", m.Upper); err != nil {
			return err
		}
		if err := checkDir("work directory", m.Work); err != nil {
			return err
		}
	}
	return nil
}

// checkPath wants an absolute, NUL-free path.
func checkPath(what, p string, absolute bool) error {
	switch {
	case p == "":
		return fmt.Errorf("no %s path given", what)
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("%s %q contains a NUL byte", what, p)
	case absolute && !filepath.IsAbs(p):
		return fmt.Errorf("%s %q is not absolute; fix: give a path starting with /", what, p)
	}
	return nil
}

// checkDir wants an existing host directory.
func checkDir(what, p string) error {
	if err := checkPath(what, p, true); err != nil {
		return err
	}
	st, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s %s does not exist; fix: create it (mkdir -p %s)", what, p, p)
	case err != nil:
		return fmt.Errorf("%s: %w", what, unwrapPathError(err))
	case !st.IsDir():
		return fmt.Errorf("%s %s is not a directory", what, p)
	}
	return nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// unixMode turns permission bits into chmod(2)'s.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}
