// Package flagvalue parses the values of nsbox's flags that are shared by
// its own command line and the bubblewrap translator (--perms, and the mode of --file, --dir and --chmod).
package flagvalue

import (
	"fmt"
	"io/fs"
	"strconv"
)

// Mode reads an octal mode such as "0755" or "1777" into permission
// bits.
func Mode(s string) (fs.FileMode, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, fmt.Errorf("mode %q is not octal (0000-7777); fix: e.g. 0755", s)
	}
	m := fs.FileMode(v & 0o777)
	if v&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if v&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if v&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m, nil
}
