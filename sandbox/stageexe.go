package sandbox

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// The stage, and PID 1 cloned from it, run a sealed in-memory copy of the
// nsbox binary, never the file on disk. PID 1 lives as long as the sandbox
// and anything inside that may open /proc/1/exe (root inside, with --root,
// has the uid that owns a user's own ~/bin/nsbox) would otherwise reach the
// host binary and could rewrite it once it stops being executed: runc's
// CVE-2019-5736. The copy is a memfd sealed against writing, growing and
// shrinking, so /proc/1/exe leads only to bytes that cannot change.
//
// Making PID 1 non-dumpable (runc's other defence) is not used: it would
// also lock the launcher's side out of /proc/PID1/ns/* and /proc/PID1/root,
// which joining a running sandbox and network setup need.
//
// The copy is made once per launcher process (copy_file_range from the page
// cache, about 3.5 MB); docs/security.md has the measured cost.

const (
	mfdExec    = 0x10 // MFD_EXEC (Linux 6.3): executable even under vm.memfd_noexec=1
	memfdSeals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
)

// stageCopy holds the sealed copy for the life of the process.
var stageCopy = sync.OnceValues(func() (*os.File, error) {
	self, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("open the nsbox binary (/proc/self/exe): %w", err)
	}
	defer self.Close()
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	fd, err := unix.MemfdCreate("nsbox-stage", flags|mfdExec)
	if err == unix.EINVAL { // kernels before 6.3 do not know MFD_EXEC
		fd, err = unix.MemfdCreate("nsbox-stage", flags)
	}
	if err != nil {
		return nil, fmt.Errorf("copy the nsbox binary into memory (memfd_create): %w", err)
	}
	f := os.NewFile(uintptr(fd), "nsbox-stage")
	if _, err := io.Copy(f, self); err != nil {
		f.Close()
		return nil, fmt.Errorf("copy the nsbox binary into memory: %w", err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, memfdSeals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal the in-memory copy of nsbox: %w", err)
	}
	return f, nil
})

// stageExecutable returns the path to execute the stage from: the sealed
// copy, through our own fd table (execve resolves it before close-on-exec
// closes the fd).
func stageExecutable() (string, error) {
	f, err := stageCopy()
	if err != nil {
		return "", err
	}
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())), nil
}
