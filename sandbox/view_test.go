package sandbox

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

// The view hides /home, the home and the runtime directory behind
// tmpfs the command owns; cwd is bound only where allowed, and the
// runtime directory's tmpfs comes last, so that no bind of the view shows
// the real one (with nsbox's state directory) from below.
func TestViewMounts(t *testing.T) {
	home := t.TempDir()
	rt := t.TempDir()
	cwd := filepath.Join(home, "proj")
	assert.NilError(t, os.Mkdir(cwd, 0o755))
	ms, why := View{Cwd: cwd, Home: home, RuntimeDir: rt}.Mounts()
	assert.Check(t, is.Equal(why, ""))
	find := func(ms []Mount, dst string) *Mount {
		for i := range ms {
			if ms[i].Destination == dst {
				return &ms[i]
			}
		}
		return nil
	}
	for _, dst := range []string{home, rt} {
		m := find(ms, dst)
		assert.Assert(t, m != nil, dst)
		assert.Check(t, m.Type == MountTmpfs && m.Owned && m.Mode == 0o700, "%+v", m)
	}
	m := find(ms, cwd)
	assert.Assert(t, m != nil)
	assert.Check(t, is.DeepEqual(*m, Mount{Type: MountBind, Source: cwd, Destination: cwd, Flag: "the current directory " + cwd}))
	assert.Check(t, is.Equal(ms[len(ms)-1].Destination, rt))

	// $XDG_RUNTIME_DIR inside the current directory: covered after it.
	inner := filepath.Join(cwd, "rt")
	assert.NilError(t, os.Mkdir(inner, 0o700))
	ms, _ = View{Cwd: cwd, Home: home, RuntimeDir: inner}.Mounts()
	last := ms[len(ms)-1]
	assert.Check(t, last.Type == MountTmpfs && last.Destination == inner && last.Owned, "%+v", last)

	ms, why = View{Cwd: home, Home: home, ShareHome: true}.Mounts()
	assert.Check(t, is.Equal(why, "is your home directory"))
	m = find(ms, home)
	assert.Assert(t, m != nil)
	assert.Check(t, m.Type == MountBind && m.ReadOnly && m.Source == home, "%+v", m)

	ms, _ = View{Home: home, HomeSource: rt}.Mounts()
	m = find(ms, home)
	assert.Assert(t, m != nil)
	assert.Check(t, m.Type == MountBind && !m.ReadOnly && m.Source == rt, "%+v", m)
	for _, m := range ms {
		assert.Check(t, m.validate() == nil || m.Type == MountBind, "%+v", m)
	}
}
