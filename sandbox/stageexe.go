package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/nsbox/nsbox/internal/hostcheck"
	"github.com/nsbox/nsbox/mapping"
	"github.com/nsbox/nsbox/sandbox/internal/stage"
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
// The copy is made only when some id mapped into the sandbox could write
// the binary (binaryWritableInside), once per launcher process; a copy of
// the 3.6 MB binary costs a few milliseconds (docs/security.md).
//
// Where vm.memfd_noexec = 2 no memfd may be executed (memfd_create with
// MFD_EXEC fails with EACCES). Then each sandbox gets a fresh private file
// copy instead (fileCopy): unlinked, mode 0500, reachable only through the
// launcher's fd and the stage's and PID 1's /proc/PID/exe, which the
// kernel keeps unwritable while they execute it (ETXTBSY); it is never run
// again once the sandbox has ended.

const (
	mfdExec    = 0x10 // MFD_EXEC (Linux 6.3): executable even under vm.memfd_noexec=1
	memfdSeals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
)

// binaryWritableInside reports whether an id mapped into the sandbox could
// get write permission on the nsbox binary: its owner is mapped, or it is
// group-writable with its group mapped, or world-writable. (ACLs are not
// read: they are rare on binaries; docs/security.md says so.) When in
// doubt, true.
func binaryWritableInside(plan mapping.Plan) bool {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return true
	}
	return mapsOuter(plan.UIDs, st.Uid) || st.Mode&0o002 != 0 ||
		(st.Mode&0o020 != 0 && mapsOuter(plan.GIDs, st.Gid))
}

func mapsOuter(ext []mapping.Extent, id uint32) bool {
	for _, e := range ext {
		if id >= e.Outer && uint64(id) < uint64(e.Outer)+uint64(e.Count) {
			return true
		}
	}
	return false
}

// stageCopy holds the sealed copy for the life of the process.
var stageCopy = sync.OnceValues(func() (*os.File, error) { return sealedCopy(stage.SelfExe) })

// sealedCopy copies the file at path into a memfd and seals it.
func sealedCopy(path string) (*os.File, error) {
	self, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open the nsbox binary (%s): %w", path, err)
	}
	defer self.Close()
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	fd, err := unix.MemfdCreate("nsbox-stage", flags|mfdExec)
	if err == unix.EINVAL { // kernels before 6.3 do not know MFD_EXEC
		fd, err = unix.MemfdCreate("nsbox-stage", flags)
	}
	if err == unix.EACCES { // vm.memfd_noexec = 2
		return nil, fmt.Errorf("copy the nsbox binary into memory: %w", errMemfdNoexec)
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
}

// errMemfdNoexec: the kernel executes no memfd (vm.memfd_noexec = 2).
var errMemfdNoexec = errors.New("memfd_create(MFD_EXEC): permission denied (vm.memfd_noexec = 2)")

// stageExecutable returns the path to execute the stage from: the sealed
// copy, through our own fd table (execve resolves it before close-on-exec
// closes the fd), when something inside could write to the nsbox binary;
// the binary itself when nothing inside can (the usual root-owned
// /usr/local/bin/nsbox), which saves the copy. The caller calls release
// once the stage has been executed.
func stageExecutable(plan mapping.Plan) (path string, release func(), err error) {
	if !binaryWritableInside(plan) {
		return stage.SelfExe, func() {}, nil
	}
	f, err := stageCopy()
	if errors.Is(err, errMemfdNoexec) {
		if f, err = fileCopy(stage.SelfExe, copyDirs()); err != nil {
			return "", nil, err
		}
		return fdPath(f), func() { f.Close() }, nil
	}
	if err != nil {
		return "", nil, err
	}
	return fdPath(f), func() {}, nil
}

func fdPath(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

// copyDirs are where fileCopy may write: the user's runtime directory,
// the temporary directories, /dev/shm.
func copyDirs() []string {
	var dirs []string
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	return append(dirs, os.TempDir(), "/var/tmp", "/dev/shm")
}

// fileCopy copies the file at path into a new file in the first of dirs
// that takes it and is not mounted noexec, unlinks it, and returns it open
// read-only (execve refuses a file open for writing).
func fileCopy(path string, dirs []string) (*os.File, error) {
	var errs []string
	for _, dir := range dirs {
		f, err := fileCopyIn(dir, path)
		if err == nil {
			return f, nil
		}
		errs = append(errs, err.Error())
	}
	return nil, fmt.Errorf("copy the nsbox binary for the sandbox stage: %s; fix: %s", strings.Join(errs, "; "),
		hostcheck.MemfdNoexecFix())
}

func fileCopyIn(dir, path string) (*os.File, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if st.Flags&unix.ST_NOEXEC != 0 {
		return nil, fmt.Errorf("%s is mounted noexec", dir)
	}
	src, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open the nsbox binary (%s): %w", path, err)
	}
	defer src.Close()
	w, err := os.CreateTemp(dir, ".nsbox-stage-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(w.Name())
	defer w.Close()
	if _, err := io.Copy(w, src); err != nil {
		return nil, fmt.Errorf("%s: %w", w.Name(), err)
	}
	if err := w.Chmod(0o500); err != nil {
		return nil, err
	}
	r, err := os.Open(fdPath(w))
	if err != nil {
		return nil, fmt.Errorf("%s: reopen read-only: %w", w.Name(), err)
	}
	return r, nil
}
