//go:build nsbox_configcheck

package stage

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
)

// The supervisor's cleanup removes the entry and then closes the
// descriptors its close steps name, the entry's lock among them, and
// no other: not standard error, not one the step does not name.
func TestRunAfterClosesWhatItNames(t *testing.T) {
	dir := t.TempDir()
	entry := filepath.Join(dir, "entry")
	assert.NilError(t, os.Mkdir(entry, 0o700))
	file := filepath.Join(entry, "state.json")
	assert.NilError(t, os.WriteFile(file, []byte("{}\n"), 0o600))
	lock, err := unix.Open(entry, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	assert.NilError(t, err)
	other, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	assert.NilError(t, err)
	defer unix.Close(other)
	h := func(s string) string { return hex.EncodeToString([]byte(s)) }

	runAfter("unlink:" + h(file) + ";rmdir:" + h(entry) + ";close:" + h(strconv.Itoa(lock)) +
		";close:" + h("2") + ";close:" + h(strconv.Itoa(other)+"x"))

	_, err = os.Lstat(entry)
	assert.Assert(t, os.IsNotExist(err), "the entry is still there: %v", err)
	_, err = unix.FcntlInt(uintptr(lock), unix.F_GETFD, 0)
	assert.Equal(t, err, unix.EBADF, "the lock's descriptor is still open")
	_, err = unix.FcntlInt(2, unix.F_GETFD, 0)
	assert.NilError(t, err, "close:2 closed standard error")
	_, err = unix.FcntlInt(uintptr(other), unix.F_GETFD, 0)
	assert.NilError(t, err, "a malformed close step closed a descriptor")
}
