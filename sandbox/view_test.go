package sandbox

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

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
