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
