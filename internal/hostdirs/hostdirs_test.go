package hostdirs

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestCwdWritable(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home", "u")
	assert.NilError(t, os.MkdirAll(filepath.Join(home, "src", "p"), 0o755))
	assert.NilError(t, os.MkdirAll(filepath.Join(home, ".config", "nvim"), 0o755))
	assert.NilError(t, os.Symlink(home, filepath.Join(t.TempDir(), "alias")))
	for _, tc := range []struct {
		name, cwd, why string
	}{
		{"root", "/", "is a system directory"},
		{"usr", "/usr", "is a system directory"},
		{"var/tmp itself", "/var/tmp", "is a system directory"},
		{"home", home, "is your home directory"},
		{"home with a trailing slash", home + "/", "is your home directory"},
		{"parent of home", filepath.Dir(home), "holds your home directory"},
		{"dot directory in home", filepath.Join(home, ".config", "nvim"), "is inside a hidden directory of your home (.config)"},
		{"project in home", filepath.Join(home, "src", "p"), ""},
		{"elsewhere", t.TempDir(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, why := CwdWritable(tc.cwd, home)
			assert.Check(t, is.Equal(why, tc.why))
			assert.Check(t, is.Equal(ok, tc.why == ""))
		})
	}
}

// cwdWritableByPath is CwdWritable's system-directory rule as it was, by
// resolving every directory: the reference the device-and-inode
// comparison must agree with.
func cwdWritableByPath(cwd string) bool {
	cwd = RealPath(cwd)
	for _, d := range System {
		if cwd == d || cwd == RealPath(d) {
			return false
		}
	}
	return true
}

// TestCwdWritableAgreesWithPaths: for every system directory, what its
// symlinks point to, a symlink to one of them, a bind-free copy of the
// same name elsewhere and a missing path, the answer is the one resolving
// every path gives.
func TestCwdWritableAgreesWithPaths(t *testing.T) {
	tmp := t.TempDir()
	assert.NilError(t, os.Symlink("/usr", filepath.Join(tmp, "usr-link")))
	assert.NilError(t, os.MkdirAll(filepath.Join(tmp, "usr", "bin"), 0o755))
	cwds := []string{filepath.Join(tmp, "usr-link"), filepath.Join(tmp, "usr", "bin"), filepath.Join(tmp, "missing"), "/lib32", tmp}
	for _, d := range System {
		cwds = append(cwds, d, RealPath(d), d+"/")
	}
	for _, cwd := range cwds {
		ok, _ := CwdWritable(cwd, "")
		assert.Check(t, is.Equal(ok, cwdWritableByPath(cwd)), cwd)
	}
	ok, _ := CwdWritable(filepath.Join(tmp, "usr-link"), "")
	assert.Check(t, !ok, "a symlink to /usr is /usr")
}

func BenchmarkCwdWritable(b *testing.B) {
	cwd := b.TempDir()
	b.Run("by inode", func(b *testing.B) {
		for b.Loop() {
			CwdWritable(cwd, "")
		}
	})
	b.Run("by path (before)", func(b *testing.B) {
		for b.Loop() {
			cwdWritableByPath(cwd)
		}
	})
}
