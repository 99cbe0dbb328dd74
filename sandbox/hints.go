package sandbox

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/nsbox/nsbox/internal/hostcheck"
	"github.com/nsbox/nsbox/internal/remedy"
	"github.com/nsbox/nsbox/mapping"
)

// explainSetup fills in the hint of a *SetupError from the stage or PID 1
// (any step after the user namespace exists), when the host explains it.
func explainSetup(err error) error {
	var se *SetupError
	if errors.As(err, &se) && se.Hint == "" && !strings.Contains(se.Step, "fix: ") {
		se.Hint, se.Fix = hostcheck.ExplainFix(hostcheck.StepOf(se.Step), se.Err)
	}
	return err
}

// explainMaps adds the cause to a failed uid/gid map write, when the host
// explains it.
func explainMaps(err error) error {
	var errno syscall.Errno
	if err == nil || !errors.As(err, &errno) {
		return err
	}
	if hint := hostcheck.Explain(hostcheck.StepMaps, errno); hint != "" {
		return fmt.Errorf("%w; likely cause: %s", err, hint)
	}
	return err
}

// sysctl reads /proc/sys/NAME, "" if it does not exist.
func sysctl(name string) string {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// mapError adds the likely cause and the remedy (a *SpecError on
// Mapping) to a failure to write the id maps with EPERM, which the kernel gives for every broken
// rule alike.
func mapError(err error, p mapping.Plan) error {
	if !errors.Is(err, syscall.EPERM) || errors.Is(err, mapping.ErrHelperFailed) {
		return err
	}
	here, nerr := mapping.CurrentNamespace()
	switch {
	case nerr != nil:
	case here.Nested && p.Privileged:
		return &SpecError{Field: "Mapping", Fix: remedy.Hint{Kind: remedy.MapSingle},
			Err: fmt.Errorf("%w; likely cause: nsbox runs as uid %d inside another user namespace (uid_map %s): it maps only ids that exist there, and only while it holds CAP_SETUID and CAP_SETGID",
				err, p.HostUID, strings.Join(strings.Fields(readTrim("/proc/self/uid_map")), " "))}
	case here.Nested:
		return &SpecError{Field: "Mapping", Fix: remedy.Hint{Kind: remedy.MapSingle, Arg: "run nsbox outside it"},
			Err: fmt.Errorf("%w; likely cause: nsbox runs inside another user namespace (uid_map %s) that lets it map nothing but its own id",
				err, strings.Join(strings.Fields(readTrim("/proc/self/uid_map")), " "))}
	default:
		if hint := hostcheck.Explain(hostcheck.StepUserns, syscall.EPERM); hint != "" {
			return fmt.Errorf("%w; likely cause: %s", err, hint)
		}
	}
	return err
}

// readTrim reads a small file, "" on error.
func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
