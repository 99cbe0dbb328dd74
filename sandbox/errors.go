package sandbox

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/nsbox/nsbox/internal/remedy"
)

// Exit codes ExitCode gives for failures of the launcher itself, as in
// bubblewrap, podman and env(1).
const (
	codeLauncher      = 125 // the launcher failed (bad spec, setup failure)
	codeCannotExecute = 126 // the command exists but cannot be executed
	codeNotFound      = 127 // the command was not found
)

// ExitError reports a command that ran and ended with a non-zero status.
type ExitError struct {
	// Code is the exit status, or 128+N when signal N ended the command.
	Code int
	// State is how the command ended, when PID 1 reported it (nil if
	// PID 1 itself was killed): it tells "killed by SIGINT" from
	// "exited 130", which Code cannot.
	State *ProcessState
}

func (e *ExitError) Error() string {
	if e.State != nil {
		return e.State.String()
	}
	if e.Code > 128 && e.Code < 128+65 {
		return fmt.Sprintf("command killed by signal %d (%s)", e.Code-128, syscall.Signal(e.Code-128))
	}
	return fmt.Sprintf("command exited with status %d", e.Code)
}

// ExecError reports a command that could not be executed inside the
// sandbox: not found (exit code 127) or not executable (126).
type ExecError struct {
	Command string
	Err     error
}

func (e *ExecError) Error() string {
	if errors.Is(e.Err, syscall.ENOENT) {
		return fmt.Sprintf("%s: command not found inside the sandbox; fix: check the name, the PATH, and that the file is visible in the sandbox", e.Command)
	}
	return fmt.Sprintf("%s: cannot execute: %v", e.Command, e.Err)
}

func (e *ExecError) Unwrap() error { return e.Err }

// SetupError reports a step of sandbox setup inside the namespaces that
// failed, as the stage described it.
type SetupError struct {
	Step string // what failed, e.g. "mount a new /proc: Operation not permitted"
	Err  syscall.Errno
	Hint string // the fix, when nsbox knows it
	// Fix is the remedy within Hint (as remedy.Hint.String words it) when it
	// is one a caller may word in its own terms; remedy.None otherwise.
	Fix remedy.Hint
}

func (e *SetupError) Error() string {
	if e.Hint != "" {
		return e.Step + "; fix: " + e.Hint
	}
	return e.Step
}

func (e *SetupError) Unwrap() error { return e.Err }

// errStageGone: the stage or PID 1 died without saying why.
var errStageGone = errors.New("the sandbox setup process exited unexpectedly")

// ExitCode maps an error from Start or Wait to the exit code the nsbox
// command uses: 0 for nil, the command's own status for an *ExitError,
// 126 or 127 for an *ExecError and 125 for everything else.
func ExitCode(err error) int {
	var exit *ExitError
	var exec *ExecError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.Code
	case errors.As(err, &exec):
		if errors.Is(exec.Err, syscall.ENOENT) {
			return codeNotFound
		}
		return codeCannotExecute
	}
	return codeLauncher
}

// SpecError reports a Spec that cannot run as given, naming the field in
// Spec's own terms. Error reads "FIELD VALUE: PROBLEM[: ERR]; fix: FIX";
// a caller with a vocabulary of its own (the nsbox command names its
// flags) rewords Field and Fix from the data.
type SpecError struct {
	// Field is the Spec field at fault, as a Go selector from Spec:
	// "Hostname", "Process.UID", "Limits.CPUs", "Mounts[3]". Empty when
	// the problem is the Spec as a whole.
	Field string
	// Value is the field's value as given, quoted where it is a string;
	// "" when the problem is not the value (a field set without what it
	// needs).
	Value string
	// Problem says what is wrong, e.g. "needs a UTS namespace of its own".
	Problem string
	// Fix is the remedy, when one is known.
	Fix remedy.Hint
	// Err is the cause, when there is one.
	Err error
}

func (e *SpecError) Error() string {
	s := strings.TrimSpace(e.Field + " " + e.Value)
	if s != "" && e.Problem != "" {
		s += ": "
	}
	s += e.Problem
	if e.Err != nil {
		if s != "" {
			s += ": "
		}
		s += e.Err.Error()
	}
	if fix := e.Fix.String(); fix != "" {
		s += "; fix: " + fix
	}
	return s
}

func (e *SpecError) Unwrap() error { return e.Err }
