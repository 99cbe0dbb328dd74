package hostcheck

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// procCovers reads mount points as the kernel escapes them.
func TestProcCovers(t *testing.T) {
	info := "22 1 0:21 / /proc rw - proc proc rw\n" +
		"23 22 0:5 / /proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw\n" +
		"24 22 0:6 /null /proc/kcore rw - devtmpfs udev rw\n" +
		"25 22 0:7 / /proc/a\\040b rw - tmpfs tmpfs rw\n" +
		"26 1 0:8 / /procx rw - tmpfs tmpfs rw\n"
	assert.Check(t, is.DeepEqual(procCovers([]byte(info)), []string{"/proc/kcore", "/proc/a b"}))
}
