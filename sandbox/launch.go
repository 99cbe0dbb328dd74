package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/nsbox/nsbox/internal/bwrapext"
	"github.com/nsbox/nsbox/internal/cgroup"
	"github.com/nsbox/nsbox/internal/hostcheck"
	"github.com/nsbox/nsbox/internal/replay"
	"github.com/nsbox/nsbox/mapping"
	"github.com/nsbox/nsbox/sandbox/internal/proc"
	"github.com/nsbox/nsbox/sandbox/internal/stage"
	"github.com/nsbox/nsbox/sandbox/internal/tty"
)

// Start launches the sandbox described by spec and returns once its command
// is running (exec succeeded). The caller must call Wait. What spec leaves
// unset is planned first and written into it: a nil Process.Env is the
// caller's environment, an empty Mapping the caller's own ids (root inside
// when Process.UID is 0), and with an empty Mapping, zero Namespaces and
// nil Mounts are every namespace and the default view (HostView of the
// working directory). A Spec with only Process.Args thus runs the command
// as root of a sandbox that maps the caller, with the caller's
// environment and nsbox run's view of the host; Default also maps the
// caller's subordinate ids and sets no_new_privs.
//
// The order is the kernel's, and this function reads as it:
//
//  1. re-execute nsbox as the stage (stage.c), which creates the user
//     namespace, alone and first;
//  2. write its uid_map and gid_map from out here (spec.Mapping.Apply:
//     direct writes for a single own-id mapping, newuidmap/newgidmap for
//     more; if a helper fails under --map auto, steps 1 and 2 again with
//     only the caller's own ids, and a notice to spec.Notify). Not with
//     an entered user namespace, whose maps exist, nor when the caller
//     writes them once PID 1 exists, while PID 1 waits;
//  3. the stage creates the other namespaces (while we write the maps),
//     becomes root in its user namespace and starts PID 1 as our own
//     child;
//  4. PID 1 sets up mounts, the loopback link and the hostname, then
//     (after spec.BeforeExec has returned, if set) forks and execs the
//     command, and reports.
//
// Any failure kills whatever was started and returns an error; ExitCode
// maps it to nsbox's exit code; a step the host refused carries the cause
// and fix (hints.go, internal/hostcheck). Cancelling ctx kills the whole sandbox.
func Start(ctx context.Context, spec *Spec) (*Sandbox, error) {
	sb, err := start(ctx, spec)
	return sb, explainSetup(err)
}

func start(ctx context.Context, spec *Spec) (*Sandbox, error) {
	if !initChecked.Load() {
		return nil, errNoInit
	}
	if err := spec.fillIn(); err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	stdio, err := openCommandStdio(&spec.Process)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			stdio.abort()
		}
	}()
	ctty := tty.ForegroundOf(stdio.files)
	if spec.Security.NewSession {
		ctty = tty.Foreground{} // the command gets no controlling terminal
	}
	cg, err := spec.Limits.cgroup()
	if err != nil {
		return nil, err
	}
	defer func() {
		if !ok {
			cg.Remove() // runs after the processes are reaped below
		}
	}()

	// 1–2. The stage and its maps; under --map auto once more with only
	// the caller's own ids if newuidmap/newgidmap fail when they run
	// (mapping.Plan.Fallback: the stage's CONFIG depends on the maps, so
	// the retry is a fresh stage).
	// The stage's files: stdio, Process.ExtraFiles, then the entered
	// namespaces.
	files := append(append([]*os.File(nil), stdio.files...), spec.ext.Enter.Files()...)
	stageProc, parent, err := startMapped(ctx, spec, files, ctty.Slot(), cg)
	if err != nil && spec.Mapping.Fallback && errors.Is(err, mapping.ErrHelperFailed) {
		if single, ok := spec.Mapping.Single(); ok {
			retry := *spec
			retry.Mapping = single
			if retry.Validate() == nil {
				notice := spec.Mapping.FallbackNotice(err)
				spec.Mapping = single
				if spec.Notify != nil {
					spec.Notify(notice)
				}
				stageProc, parent, err = startMapped(ctx, spec, files, ctty.Slot(), cg)
			}
		}
	}
	stdio.started()
	if err != nil {
		return nil, err
	}
	defer func() {
		if !ok {
			parent.Close()
		}
	}()
	var pid1 *proc.Process
	defer func() {
		if !ok {
			killAndReap(stageProc)
			killAndReap(pid1)
		}
	}()
	stop := context.AfterFunc(ctx, func() { stageProc.Kill() })
	defer stop()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if spec.ext.WriteMaps == nil {
		if err := stage.WriteMessage(parent, stage.MsgMapsDone, 0, nil); err != nil {
			return nil, fmt.Errorf("resume the sandbox stage: %w", err)
		}
	}

	// 3. PID 1, our child thanks to CLONE_PARENT: its pid cannot be
	// reused before we reap it.
	m, err := expect(parent, stage.MsgPID1)
	if err != nil {
		return nil, err
	}
	pid1 = proc.Open(int(m.Value))
	// 3a. The network, served from here once its device exists. Made
	// by the nested namespaces' holder beside PID 1's mounts, the TAP
	// device comes right after PID1, while the stage waits for those
	// mounts to end: it is served meanwhile, not once the stage is
	// reaped. (With maps the caller writes, PID 1 waits for them first.)
	var netStop func() error
	serve := func() error {
		if spec.Network == nil {
			return nil
		}
		netStop, err = startNetwork(parent, spec.Network, pid1.Pid)
		return err
	}
	defer func() {
		if !ok && netStop != nil {
			netStop()
		}
	}()
	if spec.ext.WriteMaps == nil {
		if err := serve(); err != nil {
			return nil, err
		}
	}
	if _, err := stageProc.Wait(); err != nil {
		return nil, fmt.Errorf("reap the sandbox stage: %w", err)
	}
	// With an entered PID namespace and a new one below it, a process
	// made in the entered one cloned PID 1 (enter.c), our child too.
	if mid := intermediateOf(m.Payload); mid > 0 {
		proc.Open(mid).Wait()
	}
	if spec.Started != nil {
		if err := spec.Started(pid1.Pid, parseNamespaceIDs(m.Payload, spec.Namespaces)); err != nil {
			return nil, err
		}
	}
	stop()
	stop = context.AfterFunc(ctx, func() { pid1.Kill() })
	defer stop()
	// 3b. The maps, by the caller (bwrapext.Settings.WriteMaps); PID 1
	// waits for them, and makes its device after.
	if spec.ext.WriteMaps != nil {
		if err := spec.ext.WriteMaps(pid1.Pid); err != nil {
			return nil, err
		}
		if err := stage.WriteMessage(parent, stage.MsgMapsDone, 0, nil); err != nil {
			return nil, fmt.Errorf("resume PID 1 after the maps were written: %w", err)
		}
		if err := serve(); err != nil {
			return nil, err
		}
	}

	// 3c. The caller's go-ahead: PID 1 waits for it once setup is done,
	// with the command's process forked first (bwrapext.Settings.CommandCreated).
	if spec.BeforeExec != nil {
		if spec.commandFirst() {
			if err := commandCreated(parent, pid1.Pid, spec); err != nil {
				return nil, err
			}
		}
		if err := spec.BeforeExec(); err != nil {
			return nil, err
		}
		if err := stage.WriteMessage(parent, stage.MsgExecGo, 0, nil); err != nil {
			// PID 1 is gone, most likely because setup failed: the
			// ERROR it sent first says why.
			if m, rerr := stage.ReadMessage(parent); rerr == nil && m.Kind == stage.MsgError {
				return nil, &SetupError{Step: string(m.Payload), Err: syscall.Errno(m.Value)}
			}
			return nil, fmt.Errorf("let PID 1 run the command: %w", err)
		}
	}

	// 4. The command runs, or the reason it does not; with a terminal,
	// PID 1 first sends the pty's master.
	master, err := receiveTerminal(ctx, parent, &spec.Process)
	if err != nil {
		return nil, err
	}
	defer func() {
		if !ok && master != nil {
			master.Close()
		}
	}()
	if err := awaitExec(parent, spec.CommandIsPID1); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	ok = true
	sb := &Sandbox{pid1: pid1, sync: parent, stdio: stdio, tty: ctty, cgroup: cg, done: make(chan struct{}), netStop: stopOnce(netStop), handOffReady: make(chan struct{}, 1), pid1IsCommand: spec.CommandIsPID1,
		live: TargetOf(spec, pid1.Pid, 0)}
	sb.live.Cgroup = cg.Dir()
	if master != nil {
		sb.pty = startRelay(master, &spec.Process)
	}
	sb.cancelOn(ctx, &spec.Process)
	go sb.watch()
	return sb, nil
}

// awaitExec waits for the command's exec: EXEC_OK from PID 1, or, when
// PID 1 is the command (Spec.CommandIsPID1), the end of the socket, which
// PID 1 holds close-on-exec (its failures come as messages before).
func awaitExec(parent *os.File, pid1IsCommand bool) error {
	if !pid1IsCommand {
		_, err := expect(parent, stage.MsgExecOK)
		return err
	}
	m, err := stage.ReadMessage(parent)
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return fmt.Errorf("wait for the command's exec: %w", err)
	}
	return messageError(m, stage.MsgExecOK, " or the end of the socket")
}

// startMapped starts the stage (from a sealed copy of nsbox if the
// sandbox could write the binary: stageexe.go; if we die, it dies), puts
// it in the cgroup, sends its CONFIG and, once it has made its user
// namespace, writes the maps from out here. On failure it kills and reaps
// the stage.
func startMapped(ctx context.Context, spec *Spec, files []*os.File, ttyFD int, cg *cgroup.Group) (*proc.Process, *os.File, error) {
	nest := planNesting(spec)
	cfg := stageConfig(spec, nest, ttyFD)
	if spec.Process.Terminal {
		withTerminalFor(&cfg, &spec.Process)
	}
	plan := spec.Mapping
	if spec.ext.Enter.User != nil || spec.ext.WriteMaps != nil {
		// Its maps are unknown here: any id may be mapped.
		all := []mapping.Extent{{Inner: 0, Outer: 0, Count: 1<<32 - 1}}
		plan = mapping.Plan{UIDs: all, GIDs: all}
	}
	// A stage that made its namespaces early serves only the sandbox
	// that wants exactly those, enters none, and is not put into a
	// cgroup below.
	unshare := cfg.Unshare
	if cg != nil || cfg.JoinPID != 0 || spec.ext.Enter != (bwrapext.Namespaces{}) {
		unshare = -1
	}
	g, err := startGuarded(ctx, files, plan, unshare)
	if err != nil {
		return nil, nil, err
	}
	defer g.release()
	stageProc, parent := g.proc, g.parent
	// Before the stage creates anything, so that all of the sandbox is
	// born inside the limits.
	if err := cg.Add(stageProc.Pid); err != nil {
		return nil, nil, err
	}
	enc := cfg.Encode()
	if sent := spec.replay.Sent; sent != nil {
		s := replay.Sent{Config: enc, EarlyPrefork: stage.EarlyPrefork(stageProc.Pid)}
		if spec.ext.Enter.User == nil && spec.ext.WriteMaps == nil {
			s.UIDMap, s.GIDMap, s.MapsOK = nest.plan.Steps()
		}
		if err := sent(s); err != nil {
			return nil, nil, err
		}
	}
	if err := stage.WriteMessage(parent, stage.MsgConfig, 0, enc); err != nil {
		return nil, nil, fmt.Errorf("send the sandbox configuration: %w", err)
	}
	if _, err := expect(parent, stage.MsgUsernsReady); err != nil {
		return nil, nil, userNamespaceError(err)
	}
	// (nest.plan: spec.Mapping, or its setup form, see nested.go.) An
	// entered user namespace has its maps; WriteMaps writes them later.
	if spec.ext.Enter.User != nil || spec.ext.WriteMaps != nil {
		return g.keep()
	}
	if err := nest.plan.Apply(stageProc.Pid); err != nil {
		err = fmt.Errorf("set up the uid/gid maps: %w", err)
		if explained := mapError(err, nest.plan); explained != err {
			return nil, nil, explained
		}
		return nil, nil, explainMaps(err)
	}
	return g.keep()
}

// intermediateOf reads the "intermediate=PID" line of PID1's payload
// (enter.c), 0 if there is none.
func intermediateOf(payload []byte) int {
	for line := range strings.Lines(string(payload)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "intermediate="); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// guardedStage is a stage process just started and the launcher's end of
// its socket, for Start and Join alike: until keep hands them on, the
// end of ctx kills the stage, and release (deferred right after
// startGuarded) kills and reaps it and closes the socket, so that no
// failure on the way leaves a stage behind. release always disarms ctx:
// the caller guards what it kept in its own terms.
type guardedStage struct {
	proc   *proc.Process
	parent *os.File
	stop   func() bool
	kept   bool
}

// startGuarded starts the stage (startStage) with files, for a sandbox
// whose maps are plan (unshare: see stage.Start), and guards it.
func startGuarded(ctx context.Context, files []*os.File, plan mapping.Plan, unshare int) (*guardedStage, error) {
	proc, parent, err := startStage(files, plan, unshare)
	if err != nil {
		return nil, err
	}
	return &guardedStage{proc: proc, parent: parent, stop: context.AfterFunc(ctx, func() { proc.Kill() })}, nil
}

// keep hands the stage and its socket on: release then leaves them be.
func (g *guardedStage) keep() (*proc.Process, *os.File, error) {
	g.kept = true
	return g.proc, g.parent, nil
}

// release disarms ctx and, unless kept, kills and reaps the stage and
// closes the socket.
func (g *guardedStage) release() {
	g.stop()
	if !g.kept {
		g.parent.Close()
		killAndReap(g.proc)
	}
}

// killAndReap ends a process we started and waits for it; nil is fine.
func killAndReap(p *proc.Process) {
	if p == nil {
		return
	}
	p.Kill()
	p.Wait()
}

// userNamespaceError adds the fix to a failed unshare(CLONE_NEWUSER).
func userNamespaceError(err error) error {
	var se *SetupError
	if errors.As(err, &se) && se.Hint == "" {
		se.Hint = hostcheck.Explain(hostcheck.StepUserns, se.Err)
	}
	return err
}
