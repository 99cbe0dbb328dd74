package bwrap

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/nsbox/nsbox/internal/procfs"
	"github.com/nsbox/nsbox/sandbox"
)

// WriteInfo writes bubblewrap's --info-fd document to info and the first
// --json-status-fd line to status (either may be nil): PID pid and the
// inode of each namespace in ns, in the order bubblewrap lists them
// (procfs.NamespaceNames). The caller closes info afterwards. nsbox run's
// --info-fd and --json-status-fd write the same documents through it.
func WriteInfo(info, status *os.File, pid int, ns map[string]uint64) {
	long := fmt.Sprintf("{\n    \"child-pid\": %d", pid)
	short := fmt.Sprintf("{ \"child-pid\": %d", pid)
	for _, name := range procfs.NamespaceNames() {
		if id, ok := ns[name]; ok {
			long += fmt.Sprintf(",\n    \"%s-namespace\": %d", name, id)
			short += fmt.Sprintf(", \"%s-namespace\": %d", name, id)
		}
	}
	if info != nil {
		io.WriteString(info, long+"\n}\n")
	}
	if status != nil {
		io.WriteString(status, short+" }\n")
	}
}

// WriteExitCode writes --json-status-fd's last line, {"exit-code": N},
// when the command was executed and err is its end (nil or a
// *sandbox.ExitError); otherwise, as bubblewrap, nothing.
func WriteExitCode(status *os.File, executed bool, err error) {
	var exit *sandbox.ExitError
	if status != nil && executed && (err == nil || errors.As(err, &exit)) {
		fmt.Fprintf(status, "{ \"exit-code\": %d }\n", sandbox.ExitCode(err))
	}
}
