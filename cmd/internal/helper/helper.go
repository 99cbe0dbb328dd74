// Package helper starts nsbox's helper program (cmd/nsbox-helper), which
// does the jobs whose packages are too heavy to link into nsbox itself:
// every package a Go program links runs its init at every start, and
// gVisor's 44 cost a --net none run 1.4-6 ms for a stack it never uses.
//
// nsbox stays one static file: make build links the helper into it
// (embedded.go, build tag nsbox_helper), and Command runs those bytes from
// a sealed memfd (memfd_create(MFD_ALLOW_SEALING), F_SEAL_WRITE, SHRINK,
// GROW, SEAL), executed through /proc/self/fd: nothing is written to disk
// and nobody can change the program between the check and the exec. A
// build without the tag (go build, go test) looks for the helper installed
// beside nsbox instead: DIR/nsbox-helper or DIR/../libexec/nsbox/nsbox-helper,
// DIR being nsbox's own directory.
//
// The helper is a child of the launcher on the host side, like the
// launcher's own goroutines were: it is in none of the sandbox's
// namespaces, so nothing inside can see or signal it. It gets only the
// descriptors the job passes (Go's exec closes the rest), and each job
// ends it when the launcher's end of its socket closes, which the kernel
// does when the launcher dies.
package helper

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Name is the helper program's file name where it is installed.
const Name = "nsbox-helper"

// Command returns the command that runs the helper's job with args, and
// the file to close once the command has started (the memfd; nil when the
// helper runs from a file). Files the job passes go in ExtraFiles after
// the ones already there.
//
// The embedded helper's memfd is the child's fd 3 (ExtraFiles[0]) and is
// executed as /proc/self/fd/3: the child's own descriptor, whatever the
// launcher's other threads open and close meanwhile. The helper closes it
// first thing (CloseProgram).
func Command(job string, args ...string) (*exec.Cmd, *os.File, error) {
	path, exe, err := program()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(path, append([]string{job}, args...)...)
	cmd.Args[0] = Name
	if exe != nil {
		cmd.ExtraFiles = []*os.File{exe}
	} else {
		cmd.ExtraFiles = []*os.File{devNull()}
	}
	return cmd, exe, nil
}

// ProgramFD is the helper's descriptor of its own program (the memfd, or
// /dev/null when it runs from a file): Init closes it.
const ProgramFD = 3

// Init is the helper's first step: it closes ProgramFD and every other
// descriptor it inherited but was not given, keeping 0, 1, 2 and the job's
// files (the files descriptors from 4 up), and names the process Name (run
// from the memfd, its name would be "3"). An inherited descriptor is one
// without FD_CLOEXEC: whatever the Go runtime opened before main has it,
// and whatever crossed the exec has not (a launcher's descriptor that
// leaked past its own close-on-exec, such as one the C stage opened).
func Init(files int) {
	unix.Close(ProgramFD)
	if dir, err := os.ReadDir("/proc/self/fd"); err == nil {
		for _, e := range dir {
			fd, err := strconv.Atoi(e.Name())
			if err != nil || fd <= 2 || fd >= ProgramFD+1 && fd <= ProgramFD+files {
				continue
			}
			if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC == 0 {
				unix.Close(fd)
			}
		}
	}
	name := []byte(Name + "\x00")
	unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0)
}

// devNull keeps the helper's descriptors the same when it runs from a
// file: fd 3 is then /dev/null.
func devNull() *os.File {
	f, err := os.Open(os.DevNull)
	if err != nil {
		return nil
	}
	return f
}

// program is the path to exec: the embedded helper's memfd, as the
// child's fd 3, or the installed file.
func program() (string, *os.File, error) {
	if len(embedded) > 0 {
		f, err := sealedMemfd(embedded)
		if err != nil {
			return "", nil, err
		}
		return fmt.Sprintf("/proc/self/fd/%d", ProgramFD), f, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", nil, fmt.Errorf("%s: find nsbox's own directory: %w", Name, err)
	}
	dir := filepath.Dir(self)
	for _, p := range []string{filepath.Join(dir, Name), filepath.Join(dir, "..", "libexec", "nsbox", Name)} {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil, nil
		}
	}
	return "", nil, errors.New(Name + " is neither built into this nsbox nor installed beside it; fix: build nsbox with make build, which embeds it")
}

// sealedMemfd returns a memfd holding b, sealed against every change.
func sealedMemfd(b string) (*os.File, error) {
	fd, err := unix.MemfdCreate(Name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("%s: memfd_create: %w", Name, err)
	}
	f := os.NewFile(uintptr(fd), Name)
	data := unsafe.Slice(unsafe.StringData(b), len(b))
	for len(data) > 0 {
		n, err := unix.Write(fd, data)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: write the memfd: %w", Name, err)
		}
		data = data[n:]
	}
	const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: seal the memfd: %w", Name, err)
	}
	return f, nil
}
