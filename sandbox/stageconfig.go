package sandbox

import (
	"fmt"
	"io"
	"os"

	"github.com/nsbox/nsbox/mapping"
	"github.com/nsbox/nsbox/sandbox/internal/proc"
	"github.com/nsbox/nsbox/sandbox/internal/stage"
)

// The launcher's side of the stage (package internal/stage): a Spec
// turned into the stage's plain Config, and the stage's failures turned
// into this package's errors.

// stageConfig is the stage's Config for spec, whose user namespaces nest
// plans (planNesting), with the command's terminal at ttyFD (-1: none).
func stageConfig(s *Spec, nest nesting, ttyFD int) stage.Config {
	ns := s.Namespaces
	m := nest.plan
	c := stage.Config{
		Unshare:      ns.cloneFlags(),
		SetupRoot:    m.MapsInnerUID(0) && m.MapsInnerGID(0),
		Setgroups:    m.SetgroupsAllowed(),
		MountProc:    ns.Mount && ns.PID,
		LoopbackUp:   ns.Net,
		NoNewPrivs:   s.Process.NoNewPrivs,
		TTY:          ttyFD,
		ExtraFDs:     len(s.Process.ExtraFiles),
		UID:          s.Process.UID,
		GID:          s.Process.GID,
		Groups:       s.Process.Groups,
		Hostname:     s.Hostname,
		Cwd:          s.Process.Cwd,
		Args:         s.Process.Args,
		Argv0:        s.Process.Argv0,
		ExecWait:     s.BeforeExec != nil,
		CommandFirst: s.commandFirst(),
		PID1Command:  s.CommandIsPID1,
		Env:          s.Process.Env,
		NewRoot:      s.Mounts != nil && ns.Mount,
		OwnerUID:     innerOf(m.UIDs, m.HostUID),
		OwnerGID:     innerOf(m.GIDs, m.HostGID),
		RootMapped:   m.MapsInnerUID(0) && m.MapsInnerGID(0),
		Security:     stageSecurity(&s.Security, &s.Limits, s.Process.UID),
	}
	s.Network.records(&c)
	if c.NewRoot {
		c.Ops = make([]stage.Op, len(s.Mounts))
		for i := range s.Mounts {
			c.Ops[i] = s.Mounts[i].op()
		}
		if c.Cwd == "" {
			c.CwdTry, _ = os.Getwd()
		}
	}
	if nest.nested {
		c.Nest = &stage.Nest{UIDs: nest.uids, GIDs: nest.gids, UID: nest.outerUID, GID: nest.outerGID}
	}
	if s.ext.Enter.User != nil || s.ext.WriteMaps != nil {
		enterConfig(&c, s, nest.nested)
	}
	if s.ext.Enter.PID != nil {
		// (After User and CommandUser, as Namespaces.Files orders them.)
		c.EnterPidns = stage.ExtraFD + c.ExtraFDs + len(s.ext.Enter.Files()) - 1
		c.MountProc = ns.Mount
	}
	return c
}

// enterConfig is what changes with an entered user namespace
// (bwrapext.Settings.Enter.User): the stage reads its maps (enter.c), where the plan
// would have said what is mapped. Its descriptors follow the extra files.
// The same holds for maps the caller writes (bwrapext.Settings.WriteMaps).
func enterConfig(c *stage.Config, s *Spec, nested bool) {
	fd := stage.ExtraFD + c.ExtraFDs
	if s.ext.Enter.User != nil {
		c.EnterUserns = fd
	}
	if s.ext.Enter.CommandUser != nil {
		c.EnterUserns2 = fd + 1
	}
	c.MapsLater = s.ext.WriteMaps != nil
	c.SetupRoot, c.Setgroups, c.RootMapped = false, false, false
	c.OwnerUID, c.OwnerGID = -1, -1
	c.Nest = nil
	c.NestIdentity = nested && s.ext.Enter.CommandUser == nil
	c.KeepUID = s.Process.UID == uint32(os.Getuid())
	c.KeepGID = s.Process.GID == uint32(os.Getgid())
}

// op is the stage's mount op for m.
func (m *Mount) op() stage.Op {
	return stage.Op{
		Type:         string(m.Type),
		Source:       m.Source,
		Destination:  m.Destination,
		ReadOnly:     m.ReadOnly,
		Devices:      m.Devices,
		Optional:     m.Optional,
		Owned:        m.Owned,
		NonRecursive: m.NonRecursive,
		Tun:          m.Tun,
		Mode:         unixMode(m.Mode),
		ModeSet:      m.ModeSet,
		Size:         m.Size,
		Data:         m.Data,
		Lower:        m.Lower,
		Upper:        m.Upper,
		Work:         m.Work,
		What:         m.what(),
	}
}

// stageSecurity is security.c's part of the stage's config.
func stageSecurity(s *Security, l *Limits, uid uint32) stage.Security {
	r := s.records(uid)
	r.Rlimits = l.records()
	return r
}

// withTerminal asks PID 1 for a pseudo-terminal of rows × cols.
func withTerminal(c *stage.Config, rows, cols int) {
	c.PTY, c.PTYRows, c.PTYCols = true, rows, cols
}

// innerOf is the inner id that host id maps to, or -1.
func innerOf(ext []mapping.Extent, host uint32) int64 {
	for _, e := range ext {
		if host >= e.Outer && host-e.Outer < e.Count {
			return int64(e.Inner) + int64(host-e.Outer)
		}
	}
	return -1
}

// startStage starts the stage for a sandbox whose standard files are
// files and whose ids plan maps, from a sealed copy of nsbox when the
// sandbox could write the binary (stageexe.go), and returns it with the
// launcher's end of its socket; unshare is as for stage.Start.
func startStage(files []*os.File, plan mapping.Plan, unshare int) (*proc.Process, *os.File, error) {
	exe, release, err := stageExecutable(plan)
	if err != nil {
		return nil, nil, err
	}
	defer release()
	return stage.Start(exe, files, unshare)
}

// expect reads the next message and checks it is of kind want; the
// stage's failures come back as this package's errors (stageError).
func expect(r io.Reader, want uint32) (stage.Message, error) {
	m, err := stage.Expect(r, want)
	return m, stageError(err)
}

// stageError turns an ERROR message into a *SetupError, an EXEC_FAILED
// one into an *ExecError and the stage's silent end (io.EOF) into
// errStageGone; other errors pass.
func stageError(err error) error {
	if err == io.EOF {
		return errStageGone
	}
	if e, ok := err.(*stage.Error); ok {
		if e.Kind == stage.MsgExecFailed {
			return &ExecError{Command: e.Text, Err: e.Errno}
		}
		return &SetupError{Step: e.Text, Err: e.Errno}
	}
	return err
}

// messageError is stageError for a message m read where want was
// expected.
func messageError(m stage.Message, want uint32, what string) error {
	if e := m.AsError(); e != nil {
		return stageError(e)
	}
	return fmt.Errorf("stage protocol: expected %s%s, got %v", stage.KindName(want), what, m)
}
