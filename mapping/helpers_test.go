package mapping

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// writeExe creates an executable shell script in dir.
func writeExe(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	assert.NilError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755))
	return p
}

func assertOneLine(t *testing.T, s string) {
	t.Helper()
	assert.Assert(t, !strings.ContainsAny(s, "\n\r"), "not one line: %q", s)
}

// searchPathOnly makes FindHelpers search only PATH, as the tests below
// set it.
func searchPathOnly(t *testing.T) {
	old := helperDirs
	helperDirs = nil
	t.Setenv(EnvHelperDir, "")
	t.Cleanup(func() { helperDirs = old })
}

func TestFindHelpers(t *testing.T) {
	searchPathOnly(t)
	t.Run("empty PATH", func(t *testing.T) {
		t.Setenv("PATH", "")
		h := FindHelpers()
		assert.Assert(t, !h.Usable())
		assert.Equal(t, h.NewUIDMap, "")
		assert.Equal(t, h.NewGIDMap, "")
		assert.Assert(t, is.Contains(h.Problem, "apt-get install uidmap"))
		assert.Assert(t, is.Contains(h.Problem, "newuidmap and newgidmap not found"))
		assertOneLine(t, h.Problem)
	})
	t.Run("only newgidmap", func(t *testing.T) {
		dir := t.TempDir()
		writeExe(t, dir, "newgidmap", "exit 0\n")
		t.Setenv("PATH", dir)
		h := FindHelpers()
		assert.Assert(t, !h.Usable())
		assert.Equal(t, h.NewUIDMap, "")
		assert.Equal(t, h.NewGIDMap, filepath.Join(dir, "newgidmap"))
		assert.Assert(t, is.Contains(h.Problem, "newuidmap not found in PATH; fix: apt-get install uidmap"))
	})
	t.Run("not setuid", func(t *testing.T) {
		dir := t.TempDir()
		uidmap := writeExe(t, dir, "newuidmap", "exit 0\n")
		gidmap := writeExe(t, dir, "newgidmap", "exit 0\n")
		t.Setenv("PATH", dir)
		h := FindHelpers()
		assert.Assert(t, !h.Usable())
		assert.Equal(t, h.NewUIDMap, uidmap)
		assert.Equal(t, h.NewGIDMap, gidmap)
		assert.Assert(t, is.Contains(h.Problem, uidmap+" is neither setuid root nor has cap_setuid file capabilities; fix: "))
		assert.Assert(t, is.Contains(h.Problem, "chmod u+s "+uidmap))
		assertOneLine(t, h.Problem)
	})
	t.Run("relative PATH entry is not trusted", func(t *testing.T) {
		dir := t.TempDir()
		writeExe(t, dir, "newuidmap", "exit 0\n")
		writeExe(t, dir, "newgidmap", "exit 0\n")
		t.Chdir(filepath.Dir(dir))
		t.Setenv("PATH", filepath.Base(dir))
		h := FindHelpers()
		assert.Equal(t, h.NewUIDMap, "")
		assert.Assert(t, is.Contains(h.Problem, "not found in PATH"))
	})
	t.Run("setuid root", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to make a setuid-root file")
		}
		dir := t.TempDir()
		for _, name := range []string{"newuidmap", "newgidmap"} {
			p := writeExe(t, dir, name, "exit 0\n")
			assert.NilError(t, os.Chown(p, 0, 0))
			assert.NilError(t, os.Chmod(p, os.ModeSetuid|0o755))
		}
		t.Setenv("PATH", dir)
		h := FindHelpers()
		var fs unix.Statfs_t
		assert.NilError(t, unix.Statfs(dir, &fs))
		if fs.Flags&unix.ST_NOSUID != 0 {
			assert.Assert(t, is.Contains(h.Problem, "nosuid"))
			return
		}
		assert.Assert(t, h.Usable(), "problem: %s", h.Problem)
	})
	t.Run("setuid but not root-owned", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to chown")
		}
		dir := t.TempDir()
		for _, name := range []string{"newuidmap", "newgidmap"} {
			p := writeExe(t, dir, name, "exit 0\n")
			assert.NilError(t, os.Chown(p, 1234, 1234))
			assert.NilError(t, os.Chmod(p, os.ModeSetuid|0o755))
		}
		t.Setenv("PATH", dir)
		h := FindHelpers()
		assert.Assert(t, !h.Usable())
		assert.Assert(t, is.Contains(h.Problem, "neither setuid root"))
		assert.Assert(t, is.Contains(h.Problem, "fix: chown root "))
	})
	t.Run("file capabilities", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to set security.capability")
		}
		dir := t.TempDir()
		for _, tc := range []struct {
			name string
			bit  uint
		}{{"newuidmap", capSetuid}, {"newgidmap", capSetgid}} {
			p := writeExe(t, dir, tc.name, "exit 0\n")
			err := unix.Setxattr(p, "security.capability", capData(vfsCapRevision2|1, 1<<tc.bit, 0, 0, 0), 0)
			if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
				t.Skipf("cannot set file capabilities here: %v", err)
			}
			assert.NilError(t, err)
		}
		t.Setenv("PATH", dir)
		h := FindHelpers()
		var fs unix.Statfs_t
		assert.NilError(t, unix.Statfs(dir, &fs))
		if fs.Flags&unix.ST_NOSUID != 0 {
			assert.Assert(t, is.Contains(h.Problem, "nosuid"))
			return
		}
		assert.Assert(t, h.Usable(), "problem: %s", h.Problem)
	})
	t.Run("system", func(t *testing.T) {
		t.Setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
		h := FindHelpers()
		var st unix.Stat_t
		if h.NewUIDMap == "" || unix.Stat(h.NewUIDMap, &st) != nil {
			t.Skipf("no newuidmap installed: %s", h.Problem)
		}
		t.Logf("helpers: %+v", h)
		if st.Uid == 0 && st.Mode&unix.S_ISUID != 0 {
			var fs unix.Statfs_t
			if unix.Statfs(h.NewUIDMap, &fs) == nil && fs.Flags&unix.ST_NOSUID == 0 {
				assert.Assert(t, h.Usable(), "problem: %s", h.Problem)
			}
		}
	})
}

// capData builds a vfs_cap_data value.
func capData(magic uint32, words ...uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, magic)
	for _, w := range words {
		b = binary.LittleEndian.AppendUint32(b, w)
	}
	return b
}

func TestCapPermitted(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		bit  uint
		want bool
	}{
		{"rev2 setuid", capData(vfsCapRevision2|1, 1<<7, 0, 0, 0), capSetuid, true},
		{"rev2 setuid, not effective", capData(vfsCapRevision2, 1<<7, 0, 0, 0), capSetuid, true},
		{"rev2 setgid only", capData(vfsCapRevision2|1, 1<<6, 0, 0, 0), capSetuid, false},
		{"rev2 setgid", capData(vfsCapRevision2|1, 1<<6, 0, 0, 0), capSetgid, true},
		{"rev2 inheritable only", capData(vfsCapRevision2|1, 0, 1<<7, 0, 0), capSetuid, false},
		{"rev3 setuid", capData(vfsCapRevision3|1, 1<<7, 0, 0, 0, 1000), capSetuid, true},
		{"rev1 setuid", capData(vfsCapRevision1|1, 1<<7, 0), capSetuid, true},
		{"rev1 high cap", capData(vfsCapRevision1|1, 0, 0), 40, false},
		{"rev2 high cap", capData(vfsCapRevision2|1, 0, 0, 1<<(40-32), 0), 40, true},
		{"rev2 truncated", capData(vfsCapRevision2|1, 1<<7), capSetuid, false},
		{"unknown revision", capData(0x04000001, 1<<7, 0, 0, 0), capSetuid, false},
		{"empty", nil, capSetuid, false},
		{"short", []byte{1, 2}, capSetuid, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, capPermitted(tc.data, tc.bit), tc.want)
		})
	}
}

func TestFindHelpersStandardPaths(t *testing.T) {
	t.Setenv(EnvHelperDir, "")
	t.Setenv("PATH", "")
	if _, err := os.Stat("/usr/bin/newuidmap"); err != nil {
		t.Skip("no /usr/bin/newuidmap here")
	}
	h := FindHelpers()
	assert.Equal(t, h.NewUIDMap, "/usr/bin/newuidmap", "found whatever PATH is")

	dir := t.TempDir()
	t.Setenv(EnvHelperDir, dir)
	h = FindHelpers()
	assert.Equal(t, h.NewUIDMap, "")
	assert.Assert(t, is.Contains(h.Problem, "newuidmap and newgidmap not found in "+dir+" (NSBOX_HELPER_DIR)"))
	p := writeExe(t, dir, "newuidmap", "exit 0\n")
	writeExe(t, dir, "newgidmap", "exit 0\n")
	h = FindHelpers()
	assert.Equal(t, h.NewUIDMap, p)
	assert.Assert(t, is.Contains(h.Problem, "neither setuid root"))
}

// HelperLookups stops, for each helper, at the directory FindHelpers
// takes it from: a helper in a later directory is never looked at, one
// in an earlier directory (or one made usable there) is.
func TestHelperLookups(t *testing.T) {
	searchPathOnly(t)
	first, second, third := t.TempDir(), t.TempDir(), t.TempDir()
	writeExe(t, second, "newuidmap", "exit 0\n")
	writeExe(t, third, "newuidmap", "exit 0\n")
	writeExe(t, third, "newgidmap", "exit 0\n")
	// Not executable: FindHelpers passes it over, and so goes on.
	assert.NilError(t, os.WriteFile(filepath.Join(first, "newgidmap"), nil, 0o644))
	t.Setenv("PATH", first+":relative:"+second+":"+third)
	h := FindHelpers()
	assert.Equal(t, h.NewUIDMap, filepath.Join(second, "newuidmap"))
	assert.Equal(t, h.NewGIDMap, filepath.Join(third, "newgidmap"))
	assert.DeepEqual(t, HelperLookups(), []string{
		filepath.Join(first, "newuidmap"), filepath.Join(second, "newuidmap"),
		filepath.Join(first, "newgidmap"), filepath.Join(second, "newgidmap"), filepath.Join(third, "newgidmap"),
	})

	t.Setenv(EnvHelperDir, third)
	assert.DeepEqual(t, HelperLookups(), []string{filepath.Join(third, "newuidmap"), filepath.Join(third, "newgidmap")})
	t.Setenv(EnvHelperDir, "")
	t.Setenv("PATH", "")
	assert.Check(t, is.Len(HelperLookups(), 0))
}
