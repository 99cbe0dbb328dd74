package sandbox

import (
	"os"
	"strings"
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
