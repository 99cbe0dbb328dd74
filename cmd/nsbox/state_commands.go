package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nsbox/nsbox/cmd/nsbox/internal/state"
	"github.com/nsbox/nsbox/cmd/nsbox/internal/ties"
	"github.com/nsbox/nsbox/internal/cgroup"
	"github.com/nsbox/nsbox/sandbox"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// stateUsage is the help of the commands that act on running sandboxes.
func stateUsage(cmd string) string {
	switch cmd {
	case "ps":
		return `Usage: nsbox ps [--json]

Lists your running sandboxes: name, PID 1's host pid, age, command. Entries
left by a launcher that died are removed. --json prints the full records
(as nsbox inspect), one array.
`
	case "inspect":
		return `Usage: nsbox inspect NAME

Prints what nsbox knows about the running sandbox NAME as JSON: PID 1's host
pid and start time, the launcher's pid, the namespace inodes, the uid and gid
maps as the kernel shows them (/proc/PID/uid_map), the working directory, the
network, and the spec it was started with.
`
	case "exec":
		return `Usage: nsbox exec NAME [flags] [--] COMMAND [ARG...]

Runs COMMAND inside the running sandbox NAME: it joins the sandbox's user
namespace first, then its mount, PID, network, IPC, UTS and cgroup
namespaces, then its root and working directory. COMMAND is a process of the
sandbox's PID namespace (it sees the sandbox's /proc) and is killed when the
sandbox ends. By default it runs as the sandbox's command does (same uid,
gid, environment, directory), under the sandbox's capabilities, seccomp
filter, Landlock rules and rlimits, with no_new_privs set. At a terminal
it gets a terminal of the sandbox's own, never yours (see --tty).

Flags:
` + newExecFlags().fs.FlagUsages() + `
Examples:
  nsbox run --name b -- sleep 600 &
  nsbox exec b -- ps -e
  nsbox exec b --root -- sh
  nsbox exec b -- bash -l          # at a terminal: an interactive shell on a terminal of its own

Exit status: COMMAND's own; 125 when nsbox fails, 126/127 as for run.
`
	case "kill":
		return `Usage: nsbox kill NAME [SIGNAL]

Sends SIGNAL (a name like TERM or SIGTERM, or a number; default KILL) to the
sandbox NAME. nsbox's PID 1 passes it to the command; KILL ends the whole
sandbox at once, and nsbox kill then waits until it is gone.
`
	case "stop":
		return `Usage: nsbox stop [--timeout SECONDS] NAME

Ends the sandbox NAME: SIGTERM (or the StopSignal of its --image) to its
command, then SIGKILL to the whole
sandbox if it is still there after the timeout (default 10 seconds). Returns
once the sandbox is gone.
`
	case "logs":
		return `Usage: nsbox logs NAME

Prints the output (stdout and stderr) of the detached sandbox NAME, started
with nsbox run --detach, as far as it has been written. After the sandbox
ended, its log stays in the state directory ($XDG_RUNTIME_DIR/nsbox/.logs)
until a later detached sandbox of the same name ends.
`
	}
	return usage
}

// stateCommand runs ps, inspect, exec, kill, stop and logs.
func stateCommand(cmd string, args []string, stdout, stderr io.Writer) error {
	for _, a := range args {
		if a == "--" || cmd == "exec" {
			break // exec: the command's own -h is not ours
		}
		if a == "-h" || a == "--help" {
			fmt.Fprint(stdout, stateUsage(cmd))
			return nil
		}
	}
	dir, err := state.Dir()
	if err != nil {
		return err
	}
	switch cmd {
	case "ps":
		return psCommand(dir, args, stdout, stderr)
	case "exec":
		return execCommand(dir, args, stdout)
	}
	fs := newStopFlags() // kill, inspect, logs: refused below
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("%s: %v; fix: see nsbox help %s", cmd, err, cmd)}
	}
	args = fs.Args()
	max := 1
	if cmd == "kill" {
		max = 2
	}
	if len(args) < 1 || len(args) > max || (cmd != "stop" && fs.Changed("timeout")) {
		return usageError{fmt.Sprintf("%s: wrong arguments; fix: %s", cmd, strings.SplitN(stateUsage(cmd), "\n", 2)[0])}
	}
	live, err := lookup(dir, args[0])
	if cmd == "logs" && errors.Is(err, state.ErrNotFound) {
		if p := state.EndedLog(dir, args[0]); p != "" {
			return printFile(p, stdout, "logs "+args[0])
		}
	}
	if err != nil {
		return err
	}
	defer live.Close()
	switch cmd {
	case "inspect":
		b, err := json.MarshalIndent(viewOf(live), "", "  ")
		if err != nil {
			return fmt.Errorf("inspect %s: %w", live.Name, err)
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	case "logs":
		if _, err := os.Lstat(live.LogPath()); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("logs %s: the sandbox was not started with --detach; its output went to the terminal of nsbox run", live.Name)
		}
		return printFile(live.LogPath(), stdout, "logs "+live.Name)
	case "kill":
		sig := unix.SIGKILL
		if len(args) == 2 {
			if sig, err = parseSignal(args[1]); err != nil {
				return err
			}
		}
		return killSandbox(live, sig, 0)
	}
	timeout, _ := fs.GetFloat64("timeout")
	if timeout < 0 {
		return usageError{"stop: --timeout must not be negative"}
	}
	sig := unix.SIGTERM
	if s := live.Entry.StopSignal; s > 0 && s <= 64 {
		sig = unix.Signal(s) // an image's StopSignal
	}
	return killSandbox(live, sig, time.Duration(timeout*float64(time.Second)))
}

// printFile copies the log at path to w. The log is in the state
// directory, which no sandbox should reach, but is not trusted for that:
// a symlink is not followed and anything but a regular file (a FIFO would
// block nsbox forever) is refused.
func printFile(path string, w io.Writer, what string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err == unix.ELOOP {
		return fmt.Errorf("%s: %s is a symlink, not the log nsbox wrote; fix: remove it", what, path)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, &os.PathError{Op: "open", Path: path, Err: err})
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("%s: %s is not a regular file, not the log nsbox wrote; fix: remove it", what, path)
	}
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// lookup finds the running sandbox name, checked against the kernel, with
// the fix in the error. The caller closes it.
func lookup(dir, name string) (*state.Live, error) {
	live, err := state.Get(dir, name)
	if errors.Is(err, state.ErrNotFound) {
		return nil, fmt.Errorf("%w; fix: nsbox ps lists the running sandboxes", err)
	}
	return live, err
}

func psCommand(dir string, args []string, stdout, stderr io.Writer) error {
	fs := newPsFlags()
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return usageError{"ps: wrong arguments; fix: nsbox ps [--json]"}
	}
	list, refused, err := state.List(dir)
	if err != nil {
		return err
	}
	for _, l := range list {
		defer l.Close()
	}
	for _, err := range refused {
		fmt.Fprintf(stderr, "nsbox: not listed: %v\n", err)
	}
	if asJSON, _ := fs.GetBool("json"); asJSON {
		entries := make([]liveView, 0, len(list))
		for _, l := range list {
			entries = append(entries, viewOf(l))
		}
		b, err := json.MarshalIndent(entries, "", "  ")
		if err != nil {
			return fmt.Errorf("ps: %w", err)
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tPID\tUP\tNET\tPORTS\tCOMMAND")
	for _, l := range list {
		cmd := ""
		if l.Spec != nil {
			cmd = strings.Join(l.Spec.Process.Args, " ")
		}
		if len(cmd) > 60 {
			cmd = cmd[:57] + "..."
		}
		net, ports := "none", "-"
		switch {
		case l.Network != nil:
			net = l.Network.Mode
			if len(l.Network.Ports) > 0 {
				ports = strings.Join(l.Network.Ports, ",")
			}
		case l.Spec != nil && !l.Spec.Namespaces.Net:
			net = "host"
		}
		up := since(l.Created)
		if paused(l) {
			up += " (paused)"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", l.Name, l.Pid, up, net, ports, cmd)
	}
	return w.Flush()
}

// since renders how long ago t was, as ps does: 42s, 5m, 3h, 2d.
func since(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// parseSignal accepts KILL, SIGKILL, kill or 9.
func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, usageError{fmt.Sprintf("kill: unknown signal %q; fix: a name like TERM, INT, KILL or a number", s)}
}

// killSandbox sends sig to the sandbox's PID 1 through the pidfd lookup
// pinned it with. With a grace period (stop), it waits that long for PID 1
// to exit, then sends SIGKILL. After SIGKILL it waits until the sandbox is
// gone from nsbox ps.
func killSandbox(l *state.Live, sig unix.Signal, grace time.Duration) error {
	fd := l.PidFD()
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil // it ended on its own meanwhile
		}
		return fmt.Errorf("signal sandbox %s (pid %d): %w", l.Name, l.Pid, err)
	}
	if sig == unix.SIGKILL {
		killCgroup(l)
	}
	if sig != unix.SIGKILL && paused(l) {
		// A paused sandbox takes no signal but SIGKILL until it runs
		// again (frozen or stopped): it is resumed to act on this one.
		if sb, err := sandbox.Lookup(l.Target()); err == nil {
			sb.Resume()
		}
	}
	if sig != unix.SIGKILL && grace == 0 {
		return nil
	}
	if sig != unix.SIGKILL && !exited(fd, grace) {
		if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("kill sandbox %s (pid %d): %w", l.Name, l.Pid, err)
		}
		killCgroup(l)
	}
	if !exited(fd, 10*time.Second) || !l.WaitGone(10*time.Second) {
		return fmt.Errorf("sandbox %s did not end within 10s of SIGKILL; fix: check its launcher, pid %d", l.Name, l.LauncherPid)
	}
	return nil
}

// killCgroup kills every process in the sandbox's own cgroup, if it has
// one (cgroup.kill): SIGKILL to PID 1 ends its PID namespace, this also
// reaches a process that is in the cgroup but not in that namespace.
func killCgroup(l *state.Live) {
	if l.Cgroup == "" {
		return
	}
	if g, err := cgroup.Open(l.Cgroup); err == nil {
		g.Kill()
	}
}

// exited waits up to d for the process behind pidfd to exit.
func exited(pidfd int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms < 0 {
			ms = 0
		}
		p := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(p, ms)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0
	}
}

// execFlags are the flags of nsbox exec.
type execFlags struct {
	fs       *pflag.FlagSet
	root     bool
	uid, gid uint32
	chdir    string
	setenv   []string
	unsetenv []string
	clearenv bool
	tty      bool
}

func newExecFlags() *execFlags {
	f := &execFlags{fs: pflag.NewFlagSet("exec", pflag.ContinueOnError)}
	fs := f.fs
	fs.SetInterspersed(false)
	fs.SortFlags = false
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	fs.BoolVar(&f.root, "root", false, "run as root (uid 0, gid 0) inside, if the sandbox maps 0")
	fs.Uint32Var(&f.uid, "uid", 0, "run as this `UID` inside (default: the sandbox command's)")
	fs.Uint32Var(&f.gid, "gid", 0, "run as this `GID` inside (default: the sandbox command's)")
	fs.StringVar(&f.chdir, "chdir", "", "run in `DIR` inside (default: the sandbox command's directory)")
	listVar(fs, &f.setenv, "setenv", "", "set `KEY=VALUE` (repeatable)")
	listVar(fs, &f.unsetenv, "unsetenv", "", "remove `KEY` from the environment (repeatable)")
	fs.BoolVar(&f.clearenv, "clearenv", false, "start from an empty environment instead of the sandbox command's")
	fs.BoolVarP(&f.tty, "tty", "t", false, ttyUsage)
	fs.BoolP("help", "h", false, "show this help")
	return f
}

func execCommand(dir string, args []string, stdout io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, stateUsage("exec"))
		return nil
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return usageError{"exec: name the sandbox first; fix: nsbox exec NAME [flags] [--] COMMAND"}
	}
	name := args[0]
	f := newExecFlags()
	if err := f.fs.Parse(args[1:]); err != nil {
		return usageError{fmt.Sprintf("exec: %v; fix: see nsbox help exec", err)}
	}
	if help, _ := f.fs.GetBool("help"); help {
		fmt.Fprint(stdout, stateUsage("exec"))
		return nil
	}
	if f.fs.NArg() == 0 {
		return usageError{"exec: no command given; fix: nsbox exec NAME [flags] [--] COMMAND [ARG...]"}
	}
	for _, kv := range f.setenv {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return usageError{fmt.Sprintf("--setenv %q: not KEY=VALUE; fix: e.g. --setenv LANG=C.UTF-8", kv)}
		}
	}
	live, err := lookup(dir, name)
	if err != nil {
		return err
	}
	defer live.Close()
	spec := live.Spec
	if spec == nil {
		return fmt.Errorf("sandbox %s: its record has no spec; fix: restart it with this version of nsbox", name)
	}
	if err := live.Joinable(); err != nil {
		return err
	}
	if paused(live) {
		return fmt.Errorf("sandbox %s is paused: the command would stop at once; fix: nsbox resume %s", name, name)
	}
	p := &sandbox.Process{
		Args:       f.fs.Args(),
		Env:        editEnv(spec.Process.Env, f.clearenv, f.unsetenv, f.setenv),
		Cwd:        live.Cwd,
		UID:        spec.Process.UID,
		GID:        spec.Process.GID,
		NoNewPrivs: true,
		Terminal:   f.tty || !f.fs.Changed("tty") && callerHasTerminal(),
		Stdin:      os.Stdin,
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
	}
	if f.root {
		p.UID, p.GID = 0, 0
	}
	if f.fs.Changed("uid") {
		p.UID = f.uid
	}
	if f.fs.Changed("gid") {
		p.GID = f.gid
	}
	if f.chdir != "" {
		p.Cwd = f.chdir
	}
	if !spec.Mapping.MapsInnerUID(p.UID) || !spec.Mapping.MapsInnerGID(p.GID) {
		return usageError{fmt.Sprintf("exec: uid %d / gid %d not mapped in sandbox %s; fix: pick ids its maps contain (nsbox inspect %s)", p.UID, p.GID, name, name)}
	}
	// The sandbox's security settings, except that a new session follows
	// this command's stdin, as nsbox run's default does.
	t := live.Target()
	_, notTTY := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS)
	t.Security.NewSession = notTTY != nil
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	// Ctrl-C and Ctrl-\ at a terminal passed in (--tty=false) reach the
	// command directly (it is in our process group): passing them on
	// would deliver them twice, so we only keep them from ending nsbox.
	// (Caught, not ignored: an ignored signal would stay ignored in the
	// command.) With a pty of the sandbox's own they arrive as bytes, and
	// a SIGINT that reaches us is passed on.
	if _, err := unix.IoctlGetTermios(0, unix.TCGETS); err != nil || p.Terminal {
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGQUIT)
	} else {
		signal.Notify(make(chan os.Signal, 1), syscall.SIGINT, syscall.SIGQUIT)
	}
	sb, err := sandbox.Join(context.Background(), t, p)
	if err != nil {
		signal.Stop(sigs)
		return err
	}
	go ties.ForwardSignals(sigs, sb)
	return sb.Wait()
}

// editEnv applies --clearenv, --unsetenv and --setenv to base.
func editEnv(base []string, clear bool, unset, set []string) []string {
	drop := map[string]bool{}
	for _, k := range unset {
		drop[k] = true
	}
	for _, kv := range set {
		k, _, _ := strings.Cut(kv, "=")
		drop[k] = true
	}
	out := []string{} // never nil: nil would be nsbox's own environment
	if !clear {
		for _, kv := range base {
			if k, _, _ := strings.Cut(kv, "="); !drop[k] {
				out = append(out, kv)
			}
		}
	}
	return append(out, set...)
}
