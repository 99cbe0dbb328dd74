package helper

import (
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// unpad is the program in an embedded blob: make build puts as many zero
// bytes (less than a page) before the network's helper as put it on a page
// boundary of nsbox's file, for viaLoader.
func unpad(b string) string {
	i := strings.Index(b[:min(len(b), 4096+4)], "\x7fELF")
	if i <= 0 || strings.Trim(b[:i], "\x00") != "" {
		return b
	}
	return b[i:]
}

// loaderMagic marks the loader's cfg, where Command writes the helper's
// offset in nsbox's file (loader/loader.c).
const loaderMagic = "NSBXLDR1"

// loaderFD is the lowest descriptor number the launcher gives the loader's
// memfd: exec runs it as /proc/self/fd/N in the child, after the child has
// moved its passed files to 3, 4, ... and used numbers just above them, so
// N must be out of their way.
const loaderFD = 64

// viaLoader is how the embedded program b starts without a copy: the
// loader (loader/loader.c, a few KB, from a sealed memfd) maps b's segments
// from nsbox's own file, opened read-only and passed as fd 3, and jumps to
// its entry. The helper's pages are then the page cache's pages of nsbox's
// file. Nothing can change them meanwhile: the file is the running
// launcher's program, which the kernel keeps from being written (ETXTBSY)
// while any process executes it, and the launcher waits for the helper.
//
// That holds while the launcher runs. A launcher killed by SIGKILL leaves
// its helper serving until it reads the socket's EOF, mapping a file
// nobody executes any more: were nsbox's file one that the user, and so a
// sandbox mapping the user's id with a view of the file, could write, code
// written into it then would run in the helper, on the host. So the loader
// maps nsbox's file only when only root can write it (onlyRootWrites, as
// make install leaves it); a user's own build copies the helper into a
// sealed memfd, as the stage copies itself for the same reason
// (sandbox/stageexe.go).
//
// ok is false where the loader cannot serve (no loader in this build,
// nsbox's file writable by others than root, or b not page-aligned in the
// file, as in a build without make build's padding): the caller copies b
// into a memfd instead.
func viaLoader(name, b string) (path string, exe, ldr *os.File, ok bool, err error) {
	if len(loader) == 0 || len(b) == 0 || !strings.HasPrefix(b, "\x7fELF") {
		return "", nil, nil, false, nil
	}
	exe, err = os.Open("/proc/self/exe")
	if err != nil {
		return "", nil, nil, false, nil
	}
	var st unix.Stat_t
	off, found := int64(0), false
	if unix.Fstat(int(exe.Fd()), &st) == nil && onlyRootWrites(&st) {
		off, found = offsetIn(unsafe.StringData(b), st.Ino)
	}
	if !found || off%int64(os.Getpagesize()) != 0 {
		exe.Close()
		return "", nil, nil, false, nil
	}
	i := strings.Index(loader, loaderMagic)
	if i < 0 || i+len(loaderMagic)+8 > len(loader) {
		exe.Close()
		return "", nil, nil, false, fmt.Errorf("%s: the loader has no place for the offset", name)
	}
	prog := []byte(loader)
	binary.LittleEndian.PutUint64(prog[i+len(loaderMagic):], uint64(off))
	f, err := sealedMemfd(name+"-loader", unsafe.String(&prog[0], len(prog)), false)
	if err != nil {
		exe.Close()
		return "", nil, nil, false, err
	}
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, loaderFD)
	f.Close()
	if err != nil {
		exe.Close()
		return "", nil, nil, false, fmt.Errorf("%s: move the loader's memfd: %w", name, err)
	}
	ldr = os.NewFile(uintptr(fd), name+"-loader")
	return fmt.Sprintf("/proc/self/fd/%d", fd), exe, ldr, true, nil
}

// onlyRootWrites reports whether only root can write the file st
// describes: a regular file owned by root, writable by no group or other.
// (ACLs are not read, as sandbox/stageexe.go does not.)
func onlyRootWrites(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFREG && st.Uid == 0 && st.Mode&0o022 == 0
}
