package mapping

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Helpers names the setuid programs (shadow's newuidmap and newgidmap)
// that write multi-range maps for unprivileged users.
type Helpers struct {
	// NewUIDMap and NewGIDMap are absolute paths; "" means not found.
	NewUIDMap, NewGIDMap string
	// Problem is "" when both helpers are usable; otherwise one line
	// naming the cause and the fix ("…; fix: …").
	Problem string
}

// Usable reports whether both helpers were found and nothing is known to
// be wrong with them.
func (h Helpers) Usable() bool {
	return h.Problem == "" && h.NewUIDMap != "" && h.NewGIDMap != ""
}

// problem is Problem, or a description for a zero Helpers that was never
// looked up.
func (h Helpers) problem() string {
	if h.Problem != "" {
		return h.Problem
	}
	if h.NewUIDMap == "" || h.NewGIDMap == "" {
		return "newuidmap and newgidmap were not found; fix: apt-get install uidmap (shadow-utils on Fedora, shadow on Arch)"
	}
	return ""
}

// path returns the helper for kind, and whether it may be run.
func (h Helpers) path(gid bool) (string, bool) {
	p := h.NewUIDMap
	if gid {
		p = h.NewGIDMap
	}
	return p, p != "" && h.Problem == ""
}

// Capability numbers (linux/capability.h).
const (
	capSetgid = 6
	capSetuid = 7
)

// EnvHelperDir names the environment variable that makes FindHelpers
// look for newuidmap and newgidmap in that one directory only, instead of
// the standard places and PATH (tests use it to stand in a missing or
// broken helper; the setuid check still applies).
const EnvHelperDir = "NSBOX_HELPER_DIR"

// helperDirs are where FindHelpers looks first, whatever PATH says:
// where shadow's uidmap package installs the helpers. A variable so that
// tests can look elsewhere.
var helperDirs = []string{"/usr/bin", "/usr/sbin", "/bin", "/sbin"}

// FindHelpers looks for newuidmap and newgidmap in /usr/bin, /usr/sbin,
// /bin and /sbin, then in PATH's absolute entries (or only in
// $NSBOX_HELPER_DIR, see EnvHelperDir), and checks that each can work:
// owned by root with the setuid bit, or carrying file capabilities (the
// "security.capability" xattr) whose permitted set holds CAP_SETUID for
// newuidmap, CAP_SETGID for newgidmap; and not on a nosuid mount, which
// disables both. Problem describes the first failure.
//
// A helper can still fail when it runs (SELinux, an NSS subid module that
// errors, ranges it does not grant): Apply then returns a *HelperError.
func FindHelpers() Helpers {
	var h Helpers
	var missing, problems []string
	dirs, where := helperSearch()
	for _, t := range []struct {
		name string
		dst  *string
		cap  uint
	}{
		{"newuidmap", &h.NewUIDMap, capSetuid},
		{"newgidmap", &h.NewGIDMap, capSetgid},
	} {
		p := lookIn(dirs, t.name)
		if p == "" {
			missing = append(missing, t.name)
			continue
		}
		*t.dst = p
		if msg := checkHelper(p, t.cap); msg != "" {
			problems = append(problems, msg)
		}
	}
	const install = "fix: apt-get install uidmap (shadow-utils on Fedora, shadow on Arch)"
	switch {
	case len(missing) == 2:
		h.Problem = "newuidmap and newgidmap not found in " + where + "; " + install
	case len(missing) == 1:
		h.Problem = missing[0] + " not found in " + where + "; " + install
	case len(problems) > 0:
		h.Problem = problems[0]
	}
	return h
}

// helperSearch returns the directories FindHelpers searches, in order,
// and how messages name them.
func helperSearch() (dirs []string, where string) {
	if d := os.Getenv(EnvHelperDir); d != "" {
		return []string{d}, d + " (" + EnvHelperDir + ")"
	}
	dirs = append(dirs, helperDirs...)
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		// A relative entry (or "", the current directory) would find a
		// helper relative to wherever we run: not one to trust.
		if filepath.IsAbs(d) {
			dirs = append(dirs, d)
		}
	}
	where = "PATH"
	if len(helperDirs) > 0 {
		where = strings.Join(helperDirs, ", ") + " or PATH"
	}
	return dirs, where
}

// lookIn returns the first executable regular file named name in dirs,
// or "".
func lookIn(dirs []string, name string) string {
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if isProgram(p) {
			return p
		}
	}
	return ""
}

// isProgram reports whether p is an executable regular file (following
// symlinks): what lookIn takes.
func isProgram(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

// HelperLookups returns the paths FindHelpers looks at, in its order:
// for newuidmap, then newgidmap, each directory's up to the one it takes
// (all of them where it finds none). Its answer depends on these files
// and on nothing in the directories after the one it takes: a program
// that appears there is never looked at. The replayed start checks them
// (cmd/nsbox/replay.go), each with its path's components and its
// mount's flags, which checkHelper reads.
func HelperLookups() []string {
	dirs, _ := helperSearch()
	var paths []string
	for _, name := range []string{"newuidmap", "newgidmap"} {
		for _, d := range dirs {
			p := filepath.Join(d, name)
			paths = append(paths, p)
			if isProgram(p) {
				break
			}
		}
	}
	return paths
}

// checkHelper returns "" if the program at path can raise the capability
// numbered capBit, else one line naming the cause and the fix.
func checkHelper(path string, capBit uint) string {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fmt.Sprintf("stat %s: %v; fix: reinstall the uidmap package", path, err)
	}
	capName := "cap_setuid"
	if capBit == capSetgid {
		capName = "cap_setgid"
	}
	if !(st.Uid == 0 && st.Mode&unix.S_ISUID != 0) && !fileHasCap(path, capBit) {
		fix := fmt.Sprintf("chmod u+s %s (or setcap %s+ep %s)", path, capName, path)
		if st.Uid != 0 {
			fix = fmt.Sprintf("chown root %s && %s", path, fix)
		}
		return fmt.Sprintf("%s is neither setuid root nor has %s file capabilities; fix: %s", path, capName, fix)
	}
	var fs unix.Statfs_t
	if unix.Statfs(path, &fs) == nil && fs.Flags&unix.ST_NOSUID != 0 {
		return fmt.Sprintf("%s is on a nosuid mount, which ignores its setuid bit and file capabilities; fix: install uidmap on a filesystem mounted without nosuid", path)
	}
	return ""
}

// fileHasCap reports whether path's file capabilities permit capBit.
func fileHasCap(path string, capBit uint) bool {
	buf := make([]byte, 64)
	n, err := unix.Getxattr(path, "security.capability", buf)
	if err != nil {
		return false // none (ENODATA), or larger than any vfs_cap_data (ERANGE)
	}
	return capPermitted(buf[:n], capBit)
}

// vfs_cap_data (linux/capability.h): a little-endian magic_etc word whose
// top byte is the revision, then {permitted, inheritable} pairs of 32-bit
// words, low capabilities first; revision 3 appends the namespace root
// uid.
const (
	vfsCapRevisionMask = 0xFF000000
	vfsCapRevision1    = 0x01000000 // one pair: 12 bytes
	vfsCapRevision2    = 0x02000000 // two pairs: 20 bytes
	vfsCapRevision3    = 0x03000000 // two pairs and rootid: 24 bytes
)

// capPermitted reports whether the vfs_cap_data in data has capBit in its
// permitted set.
func capPermitted(data []byte, capBit uint) bool {
	if len(data) < 4 {
		return false
	}
	var size, words int
	switch binary.LittleEndian.Uint32(data) & vfsCapRevisionMask {
	case vfsCapRevision1:
		size, words = 12, 1
	case vfsCapRevision2:
		size, words = 20, 2
	case vfsCapRevision3:
		size, words = 24, 2
	default:
		return false
	}
	w := int(capBit / 32)
	if len(data) < size || w >= words {
		return false
	}
	permitted := binary.LittleEndian.Uint32(data[4+8*w:])
	return permitted&(1<<(capBit%32)) != 0
}
