package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/user"
	"github.com/nsbox/nsbox/cmd/nsbox/internal/flagwords"
	"github.com/nsbox/nsbox/mapping"
	"github.com/nsbox/nsbox/sandbox"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// terminalFlags are run's --tty, --spec and --print-spec (and shell's).
type terminalFlags struct {
	tty       bool
	specFile  string
	printSpec bool
}

func (t *terminalFlags) register(fs *pflag.FlagSet) {
	fs.BoolVarP(&t.tty, "tty", "t", false, ttyUsage)
	fs.StringVar(&t.specFile, "spec", "", "run the sandbox the JSON spec in `FILE` describes (- for stdin), as --print-spec writes it; no other flags or COMMAND")
	fs.BoolVar(&t.printSpec, "print-spec", false, "print the JSON spec the other flags describe, and exit without running it")
}

// ttyUsage is --tty's help, for run, shell and exec.
const ttyUsage = "give the command a terminal of the sandbox's own (a pty relayed to yours, raw while it runs); " +
	"the default when your stdin, stdout or stderr is a terminal. --tty=false passes your terminal itself in: " +
	"then a process in the sandbox can read what you type, also after nsbox has returned or stopped, and " +
	"inject input to your shell (TIOCSTI) where the kernel allows it"

// callerHasTerminal reports whether one of nsbox's own standard streams
// is a terminal: --tty's default, so that the caller's terminal never
// reaches a sandbox (docs/security.md, "The terminal rule").
func callerHasTerminal() bool {
	for _, f := range []*os.File{os.Stdin, os.Stdout, os.Stderr} {
		if term.IsTerminal(int(f.Fd())) {
			return true
		}
	}
	return false
}

// terminalDefault is --tty when it is not given: a terminal of the
// sandbox's own whenever the caller has one (callerHasTerminal), except
// where the sandbox cannot have one (--detach: no terminal at all;
// without a mount namespace of its own there is no devpts of its own, and
// the host's /dev/pts is in view anyway; the command as PID 1 has no init
// to relay it).
func (f *runFlags) terminalDefault(spec *sandbox.Spec) bool {
	return !f.state.detach && spec.Namespaces.Mount && !spec.CommandIsPID1 && callerHasTerminal()
}

// buildSpec is the spec that run's flags (or --spec) describe.
func (f *runFlags) buildSpec(args []string) (*sandbox.Spec, string, error) {
	if f.term.specFile != "" {
		return f.specFromFile(args)
	}
	spec, notice, err := f.spec(args)
	if err != nil {
		return nil, "", err
	}
	spec.Process.Terminal = f.term.tty
	// --print-spec describes the flags, not the terminal it ran at: the
	// default is decided again where the spec runs (specFromFile).
	if !f.fs.Changed("tty") && !f.term.printSpec {
		spec.Process.Terminal = f.terminalDefault(spec)
	}
	if err := spec.Validate(); err != nil {
		return nil, "", err
	}
	return spec, notice, nil
}

// specFromFile reads --spec. The file says what to run, not who the caller
// is: the id maps are checked against the caller's own ids and subordinate
// ranges again, and the helpers are looked up here, never taken from it.
func (f *runFlags) specFromFile(args []string) (*sandbox.Spec, string, error) {
	var others []string
	f.fs.Visit(func(fl *pflag.Flag) {
		if fl.Name != "spec" && fl.Name != "tty" && fl.Name != "map-host-root" {
			others = append(others, "--"+fl.Name)
		}
	})
	if len(others) > 0 || len(args) > 0 {
		what := fmt.Sprint(others)
		if len(args) > 0 {
			what = fmt.Sprintf("the command %q", args)
		}
		return nil, "", usageError{fmt.Sprintf("run --spec %s: %s given too; fix: put everything in the spec (nsbox run --print-spec [flags] -- COMMAND > spec.json), or drop --spec", f.term.specFile, what)}
	}
	var r io.Reader = os.Stdin
	if f.term.specFile != "-" {
		b, err := os.ReadFile(f.term.specFile)
		if err != nil {
			return nil, "", fmt.Errorf("--spec: %w; fix: name a file written by nsbox run --print-spec", err)
		}
		r = bytes.NewReader(b)
	}
	spec, err := sandbox.DecodeSpec(r)
	if err != nil {
		if !strings.Contains(err.Error(), "; fix: ") {
			err = fmt.Errorf("%w; fix: write the spec in the form nsbox run --print-spec prints", err)
		}
		return nil, "", fmt.Errorf("--spec %s: %w", f.term.specFile, err)
	}
	if spec.Process.Env == nil {
		// "env": null ran with an empty environment before nil came to
		// mean the caller's; a spec file keeps its meaning.
		spec.Process.Env = []string{}
	}
	if f.fs.Changed("tty") {
		spec.Process.Terminal = f.term.tty
	} else if f.terminalDefault(spec) {
		spec.Process.Terminal = true
	}
	if err := recheckMapping(&spec.Mapping, f.mapHostRoot); err != nil {
		return nil, "", fmt.Errorf("--spec %s: %w", f.term.specFile, err)
	}
	return spec, "", spec.Validate()
}

// recheckMapping makes p the caller's: its host ids, helpers and privilege
// are the caller's, and its maps must pass mapping's checks against the
// caller's subordinate ids (real root maps host root only with
// --map-host-root, as for run without --spec).
func recheckMapping(p *mapping.Plan, hostRoot bool) error {
	req := mapping.Request{
		UID: uint32(os.Getuid()), GID: uint32(os.Getgid()),
		Mode: mapping.Auto, Users: p.UIDs, Groups: p.GIDs, HostRoot: hostRoot,
		Names: flagwords.MapNames,
	}
	p.HostUID, p.HostGID = req.UID, req.GID
	p.Helpers = mapping.Helpers{}
	p.Notice = ""
	p.Fallback = false // the spec's maps are explicit
	p.Names = flagwords.MapNames
	if err := mapping.Complete(&req); err != nil {
		return err
	}
	p.Privileged = req.Privileged()
	p.Helpers = req.Helpers
	return p.Validate(req)
}

// printSpec writes the spec as --print-spec shows it.
func printSpec(spec *sandbox.Spec, stdout io.Writer) error {
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the spec: %w", err)
	}
	_, err = stdout.Write(append(b, '\n'))
	return err
}

const shellUsageHead = `Usage: nsbox shell [flags] [-- SHELL-ARG...]

Starts your login shell ($SHELL, else the one /etc/passwd names, else
/bin/sh) with -l in a new sandbox: the same sandbox nsbox run builds, with
the same flags. When your standard input, output or error is a terminal
the shell gets a terminal of the sandbox's own (--tty), with job
control; --tty=false passes yours in instead (see --tty for the risk),
--tty forces a pty. Like run, the shell gets a private,
empty home: --share-home shows your dotfiles (read-only; your keys and
tokens too), --home NAME gives it a home of its own that persists.

Flags:
`

func shellUsage(f *runFlags) string {
	return shellUsageHead + f.fs.FlagUsages() + `
Examples:
  nsbox shell                                  # your shell, in a sandbox
  nsbox shell --root --hostname box            # as root inside, prompt shows "box"
  nsbox shell --share-home --cache go          # your dotfiles read-only, Go's caches kept
  nsbox shell -- -c 'echo $$'                  # 1 is nsbox's init; the shell is 2

Exit status: the shell's own; 125 when nsbox fails.
`
}

// shellCommand is `nsbox shell`: run with the user's login shell as the
// command.
func shellCommand(args []string, stdout, stderr io.Writer) error {
	f := newRunFlags()
	if err := f.fs.Parse(args); err != nil {
		return usageError{fmt.Sprintf("shell: %v; fix: see nsbox help shell", err)}
	}
	if help, _ := f.fs.GetBool("help"); help {
		fmt.Fprint(stdout, shellUsage(f))
		return nil
	}
	if f.term.specFile != "" {
		return usageError{"shell: --spec is for nsbox run; fix: nsbox run --spec FILE"}
	}
	if f.state.detach {
		return usageError{"shell: --detach leaves nobody at the shell; fix: nsbox run -d -- COMMAND"}
	}
	shell := loginShell()
	if f.image.ref != "" {
		shell = "/bin/sh" // the image's, not the host's
	}
	return f.launch(append([]string{shell, "-l"}, f.fs.Args()...), stdout, stderr, nil)
}

// loginShell is the caller's shell: $SHELL, the passwd entry's, or /bin/sh.
func loginShell() string {
	if sh := os.Getenv("SHELL"); filepath.IsAbs(sh) {
		return sh
	}
	if u, err := user.CurrentUser(); err == nil && filepath.IsAbs(u.Shell) {
		return u.Shell
	}
	return "/bin/sh"
}
