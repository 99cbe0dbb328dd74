// Finding the cgroup v2 hierarchy and the caller's delegated cgroup in it.

package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// hierarchy is where the cgroup v2 hierarchy is mounted and which
// controllers are bound to cgroup v1 hierarchies, from mountinfo.
type hierarchy struct {
	mount string   // mount point of the v2 hierarchy; "" if none
	root  string   // the mount's root within it ("/" unless bind-mounted)
	v1    []string // controllers bound to v1 (super options of "cgroup" mounts)
}

// readHierarchy parses mountinfo (proc(5): ID PARENT MAJ:MIN ROOT POINT
// OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS, octal escapes in
// paths). The first cgroup2 mount of the whole hierarchy wins.
func readHierarchy(mountinfo string) hierarchy {
	var h hierarchy
	for line := range strings.Lines(mountinfo) {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if sep < 6 || len(f) < sep+4 {
			continue
		}
		switch f[sep+1] {
		case "cgroup2":
			if h.mount == "" {
				h.mount, h.root = unescape(f[4]), unescape(f[3])
			}
		case "cgroup":
			for _, o := range strings.Split(f[sep+3], ",") {
				switch o {
				case "rw", "ro":
				default:
					if !strings.Contains(o, "=") {
						h.v1 = append(h.v1, o)
					}
				}
			}
		}
	}
	return h
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// v2Path maps a cgroup path as /proc/PID/cgroup shows it ("0::/a/b") to
// its directory under h's mount, or "" if the mount does not show it.
func (h hierarchy) v2Path(cg string) string {
	if h.mount == "" {
		return ""
	}
	rel, ok := strings.CutPrefix(cg, strings.TrimSuffix(h.root, "/"))
	if !ok || rel != "" && rel[0] != '/' {
		return ""
	}
	return filepath.Join(h.mount, rel)
}

// v2Of reads the v2 cgroup of process pid ("self" for the caller) from
// /proc/PID/cgroup, as a path in the caller's cgroup namespace.
func v2Of(pid string) (string, error) {
	b, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		return "", fmt.Errorf("read /proc/%s/cgroup: %w", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		if p, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "0::"); ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("/proc/%s/cgroup has no cgroup v2 line", pid)
}

func loadHierarchy() (hierarchy, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return hierarchy{}, fmt.Errorf("read /proc/self/mountinfo: %w", err)
	}
	h := readHierarchy(string(b))
	if h.mount == "" {
		return h, errors.New("this host has no cgroup v2 hierarchy mounted (cgroup v1 only); fix: boot with systemd.unified_cgroup_hierarchy=1 and run nsbox in a systemd user session")
	}
	return h, nil
}

// Delegated returns the caller's cgroup v2 directory when the caller may
// create child cgroups in it and move processes into them, or an error
// naming why not and the fix. It works wherever the v2 hierarchy is
// mounted (pure v2 or hybrid).
func Delegated() (string, error) {
	h, err := loadHierarchy()
	if err != nil {
		return "", err
	}
	return h.delegated()
}

// delegated is Delegated in the hierarchy h.
func (h hierarchy) delegated() (string, error) {
	cg, err := v2Of("self")
	if err != nil {
		return "", err
	}
	path := h.v2Path(cg)
	if path == "" {
		return "", fmt.Errorf("your cgroup %s is outside the cgroup v2 mount at %s; fix: run nsbox where the cgroup v2 hierarchy is mounted whole", cg, h.mount)
	}
	if unix.Access(path, unix.W_OK) != nil || unix.Access(filepath.Join(path, "cgroup.procs"), unix.W_OK) != nil {
		return "", fmt.Errorf("your cgroup %s is not delegated to you; fix: run nsbox in a delegated systemd scope, e.g. systemd-run --user --scope -p Delegate=yes nsbox run …", path)
	}
	return path, nil
}

// Check returns the delegated cgroup (see [Delegated]) under which a
// sandbox may have a cgroup with the controllers ctrl, or an error naming
// what is missing and the fix: a controller bound to cgroup v1 (a hybrid
// host, where no v2 cgroup has it), one the kernel lacks, or one not
// delegated to the caller.
func Check(ctrl []string) (string, error) {
	h, err := loadHierarchy()
	if err != nil {
		return "", err
	}
	root := filepath.Join(h.mount, "cgroup.controllers")
	if h.root != "/" {
		root = "" // the hierarchy's root is not in view: skip to delegation
	}
	if root != "" && len(ctrl) > 0 {
		have, _ := os.ReadFile(root)
		for _, c := range ctrl {
			if hasWord(string(have), c) {
				continue
			}
			if slices.Contains(h.v1, c) {
				return "", fmt.Errorf("the %s controller is bound to cgroup v1 on this host (hybrid layout), so the cgroup v2 hierarchy at %s cannot limit it; fix: boot with systemd.unified_cgroup_hierarchy=1 (cgroup v2 only), or leave the limit out", c, h.mount)
			}
			return "", fmt.Errorf("the kernel offers no %s controller in cgroup v2 (%s lists %q); fix: use a kernel with it, or leave the limit out", c, root, strings.TrimSpace(string(have)))
		}
	}
	parent, err := h.delegated()
	if err != nil {
		return "", err
	}
	if len(ctrl) == 0 {
		return parent, nil
	}
	have, _ := os.ReadFile(filepath.Join(parent, "cgroup.controllers"))
	for _, c := range ctrl {
		if !hasWord(string(have), c) {
			return "", fmt.Errorf("your cgroup %s was not given the %s controller; fix: run nsbox in a scope with it delegated, e.g. systemd-run --user --scope -p Delegate=yes nsbox run …", parent, c)
		}
	}
	return parent, nil
}

// hasWord reports whether the space-separated list s holds w.
func hasWord(s, w string) bool {
	return slices.Contains(strings.Fields(s), w)
}
