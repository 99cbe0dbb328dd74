package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/nsbox/nsbox/internal/cgroup"
	"github.com/nsbox/nsbox/internal/procfs"
	"github.com/nsbox/nsbox/internal/remedy"
	"github.com/nsbox/nsbox/mapping"
	"github.com/nsbox/nsbox/sandbox/internal/proc"
	"github.com/nsbox/nsbox/sandbox/internal/stage"
)

// parseNamespaceIDs reads the "name=inode\n" lines the stage sends with
// PID1 (namespace_ids in join.c) and keeps the namespaces ns creates.
func parseNamespaceIDs(b []byte, ns Namespaces) map[string]uint64 {
	own := map[string]bool{"user": true, "mnt": ns.Mount, "pid": ns.PID, "net": ns.Net,
		"ipc": ns.IPC, "uts": ns.UTS, "cgroup": ns.Cgroup}
	ids := map[string]uint64{}
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		k, v, ok := strings.Cut(string(line), "=")
		if !ok || !own[k] {
			continue
		}
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			ids[k] = n
		}
	}
	return ids
}

// Target is a running sandbox to join, as nsbox records it (package
// cmd/nsbox/internal/state keeps these facts for nsbox exec).
type Target struct {
	// Pid is the host pid of the sandbox's PID 1, and StartTime that
	// process's start time (field 22 of /proc/PID/stat). Join refuses a
	// process whose start time differs: the pid was reused.
	Pid       int
	StartTime uint64
	// Namespaces are the namespaces the sandbox has of its own; Join
	// enters them, after its user namespace, which it always enters.
	Namespaces Namespaces
	// Setgroups tells whether the sandbox's gid map allows setgroups(2)
	// (mapping.Plan.SetgroupsAllowed).
	Setgroups bool
	// Security and Limits are applied to the joined command as Start
	// applies them to the sandbox's command: capabilities, seccomp
	// filters, Landlock, rlimits, a new session. Give the sandbox's
	// Spec.Security and Spec.Limits (NewSession as the joining caller's
	// stdin calls for). The cgroup limits (memory, pids, cpus) are not
	// set again: they bound the joined command through Cgroup. The zero
	// value is the defaults: no capabilities for a non-root uid, nsbox's
	// seccomp filter.
	Security Security
	Limits   Limits
	// Cgroup is the host path of the sandbox's own cgroup v2 directory
	// (Limits.OwnCgroup, or any cgroup limit), "" when it has none. Join
	// puts the joined command in it, so that the limits bound it and
	// Pause freezes it with the rest; Pause, Resume and Paused use its
	// freezer. TargetOf cannot know it (the launcher names the cgroup):
	// a Sandbox from Start has it, and nsbox records it in its state.
	Cgroup string
	// CommandIsPID1: the sandbox's command is its PID 1
	// (Spec.CommandIsPID1), whose namespaces Join enters.
	CommandIsPID1 bool
}

// TargetOf describes the running sandbox made from spec whose PID 1 is pid
// with that start time: what Join needs, from the spec's namespaces,
// mapping, security settings and limits.
func TargetOf(spec *Spec, pid int, startTime uint64) Target {
	// Maps nsbox did not write (Enter.User, WriteMaps) may deny
	// setgroups: do not count on it.
	setgroups := spec.Mapping.SetgroupsAllowed() && spec.ext.Enter.User == nil && spec.ext.WriteMaps == nil
	return Target{Pid: pid, StartTime: startTime, Namespaces: spec.Namespaces,
		Setgroups: setgroups, Security: spec.Security, Limits: spec.Limits,
		CommandIsPID1: spec.CommandIsPID1}
}

// Join starts p inside the running sandbox t, as nsbox exec does, and
// returns once p's command runs. The process enters the namespaces of the
// sandbox's command (PID 1's oldest child; PID 1 itself is not readable):
// the sandbox's user namespace first, then its PID, network, IPC, UTS and
// cgroup namespaces, then, with a mount namespace of the sandbox's own,
// the command's nested user and mount namespaces (nested.go), then its
// root directory and p.Cwd ("/" if empty). It becomes a process of the
// sandbox's PID namespace, so it dies when the sandbox ends. p.UID and
// p.GID must be mapped in the command's user namespace; p.NoNewPrivs
// applies as for Start, and so does p.Terminal: a pseudo-terminal from the
// sandbox's own /dev/ptmx, which the command leads as a session of its
// own.
//
// The returned Sandbox stands for the joined command, not the whole
// sandbox: Pid is the command's host pid, Signal signals the command, Wait
// returns its status (an *ExitError when it is not 0), and cancelling ctx
// kills the command alone.
func Join(ctx context.Context, t Target, p *Process) (*Sandbox, error) {
	if len(p.Args) == 0 || p.Args[0] == "" {
		return nil, &SpecError{Field: "Join.Process.Args", Problem: "no command given", Fix: remedy.Hint{Kind: remedy.Command}}
	}
	p.inheritEnv()
	for _, s := range append(append([]string{p.Cwd}, p.Args...), p.Env...) {
		if strings.IndexByte(s, 0) >= 0 {
			return nil, fmt.Errorf("%q contains a NUL byte", s)
		}
	}
	if t.Pid <= 0 {
		return nil, fmt.Errorf("join a sandbox: no PID 1 given")
	}
	stdio, err := openCommandStdio(p)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			stdio.abort()
		}
	}()
	g, err := startGuarded(ctx, stdio.files, joinedMaps(t.Pid), -1)
	stdio.started()
	if err != nil {
		return nil, err
	}
	defer g.release()
	stageProc, parent := g.proc, g.parent
	// Into the sandbox's cgroup before the stage enters anything, so the
	// command is born inside its limits and its freezer.
	if t.Cgroup != "" {
		cg, err := cgroup.Open(t.Cgroup)
		if err == nil {
			err = cg.Add(stageProc.Pid)
		}
		if err != nil {
			return nil, fmt.Errorf("join: %w; fix: join from the delegated cgroup the sandbox was started in (the kernel moves a process only where its cgroup and the destination's common ancestor is yours)", err)
		}
	}

	cfg := stage.Config{
		Unshare:    t.Namespaces.cloneFlags(),
		Setgroups:  t.Setgroups,
		NoNewPrivs: p.NoNewPrivs,
		TTY:        -1,
		ExtraFDs:   len(p.ExtraFiles),
		UID:        p.UID,
		GID:        p.GID,
		Cwd:        p.Cwd,
		Args:       p.Args,
		Env:        p.Env,
		JoinPID:    t.Pid,
		JoinStart:  t.StartTime,
		JoinNested: t.Namespaces.Mount,
		JoinPID1:   t.CommandIsPID1,
		Security:   stageSecurity(&t.Security, &t.Limits, p.UID),
	}
	if p.Terminal {
		withTerminalFor(&cfg, p)
	}
	if err := stage.WriteMessage(parent, stage.MsgConfig, 0, cfg.Encode()); err != nil {
		return nil, fmt.Errorf("send the join configuration: %w", err)
	}
	master, err := receiveTerminal(ctx, parent, p)
	if err != nil {
		return nil, err
	}
	defer func() {
		if !ok && master != nil {
			master.Close()
		}
	}()
	m, err := expect(parent, stage.MsgExecOK)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	// The command is our child (the stage cloned it with CLONE_PARENT):
	// its pid cannot be reused before we reap it.
	cmd := proc.Open(int(m.Value))
	if _, err := stageProc.Wait(); err != nil {
		cmd.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("reap the join stage: %w", err)
	}
	ok = true
	g.keep()
	sb := &Sandbox{pid1: cmd, sync: parent, stdio: stdio, done: make(chan struct{}), live: t}
	if master != nil {
		sb.pty = startRelay(master, p)
	}
	sb.cancelOn(ctx, p)
	go sb.watch()
	return sb, nil
}

// joinedMaps reads the id maps of the running sandbox, so startStage can
// tell whether ids inside could write the nsbox binary (stageexe.go).
// Unreadable maps count as mapping the caller's own ids, the cautious
// answer.
func joinedMaps(pid int) mapping.Plan {
	read := func(file string, own uint32) []mapping.Extent {
		b, err := procfs.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
		var ext []mapping.Extent
		if err == nil {
			ext, err = mapping.ParseMap(string(b))
		}
		if err != nil || len(ext) == 0 {
			return []mapping.Extent{{Inner: own, Outer: own, Count: 1}}
		}
		return ext
	}
	return mapping.Plan{UIDs: read("uid_map", uint32(os.Getuid())), GIDs: read("gid_map", uint32(os.Getgid()))}
}
