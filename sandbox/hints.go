package sandbox

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/nsbox/nsbox/mapping"
)

// UserNamespaceHint returns the fix for a host that refuses unprivileged
// user namespaces, read from the sysctls that control them, or "" when none
// of them is the cause.
func UserNamespaceHint() string {
	switch {
	case sysctl("user/max_user_namespaces") == "0":
		return "user namespaces are disabled (user.max_user_namespaces = 0): sysctl -w user.max_user_namespaces=15000"
	case sysctl("kernel/unprivileged_userns_clone") == "0":
		return "unprivileged user namespaces are disabled: sysctl -w kernel.unprivileged_userns_clone=1"
	case sysctl("kernel/apparmor_restrict_unprivileged_userns") == "1":
		return "AppArmor restricts unprivileged user namespaces (Ubuntu 23.10+): add an AppArmor profile allowing userns for nsbox, or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"
	}
	return ""
}

// sysctl reads /proc/sys/NAME, "" if it does not exist.
func sysctl(name string) string {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// mapError adds the likely cause and the flag that works to a failure to
// write the id maps with EPERM, which the kernel gives for every broken
// rule alike.
func mapError(err error, p mapping.Plan) error {
	if !errors.Is(err, syscall.EPERM) || errors.Is(err, mapping.ErrHelperFailed) {
		return err
	}
	here, nerr := mapping.CurrentNamespace()
	switch {
	case nerr != nil:
	case here.Nested && p.Privileged:
		return fmt.Errorf("%w; likely cause: nsbox runs as uid %d inside another user namespace (uid_map %s): it maps only ids that exist there, and only while it holds CAP_SETUID and CAP_SETGID; fix: --map single",
			err, p.HostUID, strings.Join(strings.Fields(readTrim("/proc/self/uid_map")), " "))
	case here.Nested:
		return fmt.Errorf("%w; likely cause: nsbox runs inside another user namespace (uid_map %s) that lets it map nothing but its own id; fix: --map single, or run nsbox outside it",
			err, strings.Join(strings.Fields(readTrim("/proc/self/uid_map")), " "))
	default:
		if hint := UserNamespaceHint(); hint != "" {
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
