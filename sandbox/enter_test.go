package sandbox

import (
	"os"
	"testing"

	"github.com/nsbox/nsbox/internal/bwrapext"
	"github.com/nsbox/nsbox/sandbox/internal/stage"
	"gotest.tools/v3/assert"
)

// TestEnterConfig: the entered namespaces' files follow the extra files in the
// stage, in the order User, CommandUser, PID, and an entered user
// namespace replaces what the plan decides.
func TestEnterConfig(t *testing.T) {
	f, err := os.Open(os.DevNull)
	assert.NilError(t, err)
	defer f.Close()
	s := testSpec()
	s.Process.Terminal = false
	s.Process.ExtraFiles = []*os.File{f, f}
	s.Process.UID = uint32(os.Getuid())
	s.Process.GID = uint32(os.Getgid()) + 1
	s.Mounts = []Mount{{Type: MountProc, Destination: "/proc"}}
	s.ext.Enter = bwrapext.Namespaces{User: f, PID: f}
	assert.NilError(t, s.Validate())
	c := stageConfig(s, planNesting(s), -1)
	assert.Equal(t, c.EnterUserns, stage.ExtraFD+2)
	assert.Equal(t, c.EnterUserns2, 0)
	assert.Equal(t, c.EnterPidns, stage.ExtraFD+3)
	assert.Assert(t, c.Nest == nil && c.NestIdentity && c.KeepUID && !c.KeepGID && !c.SetupRoot && !c.Setgroups)

	s.ext.Enter.CommandUser = f
	c = stageConfig(s, planNesting(s), -1)
	assert.Equal(t, c.EnterUserns2, stage.ExtraFD+3)
	assert.Equal(t, c.EnterPidns, stage.ExtraFD+4)
	assert.Assert(t, !c.NestIdentity)

	s.ext.Enter.User = nil
	assert.ErrorContains(t, s.Validate(), "Enter.CommandUser: needs Enter.User")
}

// TestWriteMapsConfig: maps the caller writes are read by PID 1, as an
// entered namespace's are, and cannot be combined with one.
func TestWriteMapsConfig(t *testing.T) {
	s := testSpec()
	s.Process.Terminal = false
	s.Process.UID = uint32(os.Getuid())
	s.Mapping.UIDs = nil // not applied, not checked
	s.ext.WriteMaps = func(int) error { return nil }
	assert.NilError(t, s.Validate())
	c := stageConfig(s, planNesting(s), -1)
	assert.Assert(t, c.MapsLater && c.EnterUserns == 0 && c.NestIdentity && c.KeepUID && c.Nest == nil)
	s.ext.Enter.User = os.Stdin
	assert.ErrorContains(t, s.Validate(), "WriteMaps: cannot be combined with Enter.User")
}

// TestCommandIsPID1Validate: the command as PID 1 needs a PID namespace
// and no terminal.
func TestCommandIsPID1Validate(t *testing.T) {
	s := testSpec()
	s.CommandIsPID1 = true
	assert.ErrorContains(t, s.Validate(), "CommandIsPID1: cannot be combined with Process.Terminal")
	s.Process.Terminal = false
	assert.NilError(t, s.Validate())
	assert.Assert(t, stageConfig(s, planNesting(s), -1).PID1Command)
	s.Namespaces.PID = false
	assert.ErrorContains(t, s.Validate(), "CommandIsPID1: needs a PID namespace of its own")
}
