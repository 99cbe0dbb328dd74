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

	"github.com/nsbox/nsbox/cmd/nsbox/internal/bwrap"
	"github.com/nsbox/nsbox/cmd/nsbox/internal/flagwords"
	"github.com/nsbox/nsbox/image"
	"github.com/nsbox/nsbox/sandbox"
	"github.com/nsbox/nsbox/sandbox/fastpath"
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
  nsbox mount NAME SRC DEST [--ro]          mount the host path SRC at DEST inside the running sandbox NAME
  nsbox umount NAME DEST                    remove what nsbox mount added at DEST
  nsbox cp SRC NAME:DEST | NAME:SRC DEST    copy files into or out of the running sandbox NAME (- for tar)
  nsbox connect NAME [HOST:]PORT            relay stdin/stdout to TCP PORT inside sandbox NAME
  nsbox pause NAME                          stop every process of sandbox NAME (nsbox resume NAME continues them)
  nsbox resume NAME                         continue the processes of the paused sandbox NAME
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
	// goes (a bwrap sandbox running /proc/self/exe again): internal/bwrap.
	if filepath.Base(os.Args[0]) == "bwrap" || bwrap.StartsAsBwrap(os.Args[1:]) {
		code := bwrap.Main(os.Args[0], os.Args[1:], os.Stderr, version)
		endEarlyHelper()
		fastpath.LetGo()
		os.Exit(code)
	}
	code := run(os.Args[1:], os.Stdout, os.Stderr)
	endEarlyHelper() // the constructor's --net user helper, if run did not use it
	fastpath.LetGo() // and its stage
	os.Exit(code)
}

// exitLauncher is nsbox's exit status for a failure of its own, as
// sandbox.ExitCode gives it for a launcher error (bubblewrap and podman use
// 125 too).
const exitLauncher = 125

// usageError is a mistake in how nsbox was called.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitLauncher
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
		return bwrap.Main("nsbox bwrap", rest, stderr, version)
	case "ps", "inspect", "exec", "kill", "stop", "logs":
		err = stateCommand(cmd, rest, stdout, stderr)
	case "mount", "umount", "pause", "resume":
		err = liveCommand(cmd, rest, stdout)
	case "cp":
		err = cpCommand(rest, os.Stdin, stdout, stderr)
	case "connect":
		err = connectCommand(rest, os.Stdin, stdout)
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
		err = usageError{fmt.Sprintf("unknown command %q; fix: nsbox help lists the commands", cmd)}
	}
	return report(err, stderr)
}

// report prints err as one line, a *sandbox.SpecError in it worded as
// flags (internal/flagwords), and returns the exit code. An *ExitError
// is the command's own status and prints nothing.
func report(err error, stderr io.Writer) int {
	code := sandbox.ExitCode(err)
	// Only a detached supervisor's report carries its own code; other
	// errors may carry another program's status (a failed newuidmap's, in
	// a *mapping.HelperError), which is not ours to return.
	var detached detachError
	if errors.As(err, &detached) {
		code = detached.ExitCode()
	}
	var exit *sandbox.ExitError
	if err != nil && !errors.As(err, &exit) {
		fmt.Fprintf(stderr, "nsbox: %s\n", strings.ReplaceAll(flagwords.Reword(err), "\n", "; "))
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
	case "mount", "umount", "pause", "resume":
		fmt.Fprint(stdout, liveUsage(args[0]))
	case "cp":
		fmt.Fprint(stdout, cpUsage)
	case "connect":
		fmt.Fprint(stdout, connectUsage)
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
