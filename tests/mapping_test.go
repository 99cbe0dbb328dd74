package tests

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/nsbox/nsbox/mapping"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// The caller's full maps, planned from its real /etc/subuid and
// /etc/subgid (mapping.ForCaller) and written by the installed newuidmap
// and newgidmap (setuid or file-capability helpers), as an unprivileged
// user must: the kernel lets such a user write no map of more than its
// own id, so the child's maps hold the subordinate ranges only if the
// helpers ran with what the plan gave them. (mapping's unit tests run as
// root, which writes maps itself, and use fake helpers.)
func TestMappingRealHelpers(t *testing.T) {
	requireUnprivileged(t)
	for _, root := range []bool{false, true} {
		t.Run(fmt.Sprintf("root=%v", root), func(t *testing.T) {
			p, err := mapping.ForCaller(mapping.Request{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Mode: mapping.Auto, Root: root})
			assert.NilError(t, err)
			assert.Assert(t, p.Helpers.Usable(), "newuidmap/newgidmap: %v", p.Helpers)
			assert.Assert(t, len(p.UIDs) > 1 && len(p.GIDs) > 1, "a full map from the subordinate ids: %v %v", p.UIDs, p.GIDs)
			assert.Check(t, is.Equal(p.Notice, ""))
			if root {
				assert.Check(t, is.Equal(p.UID, uint32(0)))
			}

			child := exec.Command("sleep", "30")
			child.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, Pdeathsig: syscall.SIGKILL}
			assert.NilError(t, child.Start())
			t.Cleanup(func() { child.Process.Kill(); child.Wait() })
			assert.NilError(t, p.Apply(child.Process.Pid))

			read := func(name string) string {
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", child.Process.Pid, name))
				assert.NilError(t, err)
				return normalizeMap(string(b))
			}
			assert.Check(t, is.Equal(read("uid_map"), normalizeMap(mapping.Format(p.UIDs))))
			assert.Check(t, is.Equal(read("gid_map"), normalizeMap(mapping.Format(p.GIDs))))
			assert.Check(t, is.Equal(read("setgroups"), "allow"), "newgidmap leaves setgroups allowed")
		})
	}
}
