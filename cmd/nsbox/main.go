// Command nsbox runs a command in a rootless sandbox: its own user, mount,
// PID, network, IPC, UTS and cgroup namespaces, created without privilege.
//
// cmd/nsbox only turns flags into a sandbox.Spec and maps errors to exit
// codes; everything else lives in the packages it imports.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nsbox/nsbox/image"
	"github.com/nsbox/nsbox/sandbox"
)

// version is set by the Makefile with -ldflags "-X main.version=…".
var version = "dev"

const usage = `nsbox: run commands in rootless sandboxes (user, mount, PID, net, IPC, UTS, cgroup namespaces)

Usage:
  nsbox run [flags] [--] COMMAND [ARG...]   run COMMAND in a new sandbox
  nsbox shell [flags] [-- SHELL-ARG...]     your login shell in a new sandbox, on a terminal of its own
  nsbox check [--json]                      check this host can run sandboxes, with fixes
  nsbox ps [--json]                         list the running sandboxes
  nsbox exec NAME [flags] [--] COMMAND      run COMMAND inside the running sandbox NAME
  nsbox inspect NAME                        show a running sandbox as JSON (pid, namespaces, maps, spec)
  nsbox kill NAME [SIGNAL]                  send SIGNAL (default KILL) to sandbox NAME
  nsbox stop [--timeout SECONDS] NAME       end sandbox NAME: TERM, then KILL after the timeout
  nsbox logs NAME                           show the output of a detached sandbox (run --detach)
  nsbox port add|rm|ls NAME [SPEC]          forward host ports to a running --net user sandbox, as -p does
  nsbox bwrap [OPTIONS...] COMMAND          run COMMAND as bubblewrap would (also as a bwrap symlink; docs/bwrap.md)
  nsbox rm NAME...                          remove the log an ended detached sandbox left
  nsbox cache ls|rm [NAME...]|dir           list or remove the caches and homes kept by run --cache/--home
  nsbox completion bash|zsh|fish            print a shell completion script (nsbox help completion)
  nsbox image ls|pull|rm|prune [REF...]     the OCI images kept for run --image REF (nsbox help image)
  nsbox version                             print the version, commit, Go version and C library
  nsbox help [COMMAND]                      show help

Examples:
  nsbox run -- id                           # your own uid, in new namespaces
  nsbox run --root -- cat /proc/self/uid_map
  nsbox run --hostname box -- hostname
  nsbox check

Exit status: the command's own; 125 when nsbox fails, 126 when the command
cannot be executed, 127 when it is not found.

Run 'nsbox help run' for the flags of run.
`

func main() {
	sandbox.Init()
	image.Init() // a layer unpacker in a user namespace (image/owners.go)
	// A bwrap symlink, or bubblewrap's options where nsbox's command
	// goes (a bwrap sandbox running /proc/self/exe again): bwrap.go.
	if filepath.Base(os.Args[0]) == "bwrap" || startsAsBwrap(os.Args[1:]) {
		os.Exit(bwrapMain(os.Args[0], os.Args[1:], os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a mistake in how nsbox was called.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return sandbox.CodeLauncher
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		err = runCommand(rest, stdout, stderr)
	case "shell":
		err = shellCommand(rest, stdout, stderr)
	case "check":
		err = checkCommand(rest, stdout)
	case "bwrap":
		return bwrapMain("nsbox bwrap", rest, stderr)
	case "ps", "inspect", "exec", "kill", "stop", "logs":
		err = stateCommand(cmd, rest, stdout, stderr)
	case "port":
		err = portCommand(rest, stdout)
	case "cache":
		err = cacheCommand(rest, stdout)
	case "image":
		err = imageCommand(rest, stdout, stderr)
	case "rm":
		err = rmCommand(rest, stdout)
	case "completion":
		err = completionCommand(rest, stdout)
	case "__complete": // hidden: the completion scripts' names (commands.go)
		err = completeCommand(rest, stdout)
	case "man": // hidden: the man page, for make deb (manpage.go)
		err = manCommand(rest, stdout)
	case "version", "--version":
		printVersion(stdout)
	case "help", "--help", "-h":
		err = helpCommand(rest, stdout)
	default:
		err = usageError{fmt.Sprintf("unknown command %q; fix: use run, check, version or help (nsbox help)", cmd)}
	}
	return report(err, stderr)
}

// report prints err as one line, a *sandbox.SpecError in it worded as
// flags (spec_words.go), and returns the exit code. An *ExitError
// is the command's own status and prints nothing.
func report(err error, stderr io.Writer) int {
	code := sandbox.ExitCode(err)
	// Only a detached supervisor's report carries its own code; other
	// errors may wrap an *exec.ExitError (newuidmap's), whose status is
	// not ours to return.
	var detached detachError
	if errors.As(err, &detached) {
		code = detached.ExitCode()
	}
	var exit *sandbox.ExitError
	if err != nil && !errors.As(err, &exit) {
		fmt.Fprintf(stderr, "nsbox: %s\n", strings.ReplaceAll(flagWords(err), "\n", "; "))
	}
	return code
}

func helpCommand(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return nil
	}
	switch args[0] {
	case "run":
		fmt.Fprint(stdout, runUsage(newRunFlags()))
	case "shell":
		fmt.Fprint(stdout, shellUsage(newRunFlags()))
	case "check":
		fmt.Fprint(stdout, checkUsage)
	case "ps", "inspect", "exec", "kill", "stop", "logs":
		fmt.Fprint(stdout, stateUsage(args[0]))
	case "port":
		fmt.Fprint(stdout, portUsage)
	case "cache":
		fmt.Fprint(stdout, cacheUsage)
	case "rm":
		fmt.Fprint(stdout, rmUsage)
	case "completion":
		fmt.Fprint(stdout, completionUsage)
	case "image":
		fmt.Fprint(stdout, imageUsage)
	case "version":
		fmt.Fprint(stdout, versionUsage)
	default:
		return usageError{fmt.Sprintf("help %s: no such command; fix: nsbox help", args[0])}
	}
	return nil
}
