// Package helper starts nsbox's helper program (cmd/nsbox-helper), which
// does the jobs whose packages are too heavy to link into nsbox itself:
// every package a Go program links runs its init at every start, and
// gVisor's 44 cost a --net none run 1.4-6 ms for a stack it never uses.
//
// nsbox stays one static file: make build links the helper into it
// (embedded.go, build tag nsbox_helper), and Command starts it in one of
// three ways, the first that serves:
//
//   - an installed copy of the embedded helper (make install puts one in
//     PREFIX/libexec/nsbox) that only root can change is run from its
//     file (installedCopy): one a user, or a sandbox, could have put
//     beside nsbox is not;
//   - for the network's helper on x86-64, where only root can write
//     nsbox's file, the loader (loader/loader.c, a few KB, run from a
//     sealed memfd) maps the embedded helper's segments straight from
//     nsbox's own file, opened read-only and passed as fd 3, and jumps to
//     its entry (viaLoader). make build puts the helper on a page
//     boundary of that file for it. No copy is made: the helper's pages
//     are the page cache's pages of nsbox's file, shared by every start.
//     Not for the image helper: it re-executes /proc/self/exe (its
//     unpacker), which would be the loader, without its fd 3;
//   - else the embedded bytes are copied into a memfd (memfd_create with
//     MFD_ALLOW_SEALING, then F_SEAL_WRITE, SHRINK, GROW, SEAL), executed
//     through /proc/self/fd.
//
// Nothing is written to disk, and nobody can change the program between
// the check and the run: a memfd is sealed, and nsbox's file is the
// running launcher's program, which the kernel keeps from being written
// (ETXTBSY) while it runs; the launcher waits for the helper.
//
// The copy was what made --net user slower than when the stack was linked
// into nsbox: 6.2 MB into a memfd at each start is 1.35 ms of CPU alone
// (sendfile; write from the mapping, or a preallocated memfd, are no
// faster), more on a busy 2-core machine where the launcher, the stage,
// PID 1 and newuidmap want the same CPUs. `nsbox run --net user -- true`,
// median wall of 30 alternating runs as an unprivileged user, against the
// build that linked gVisor (1.00): the memfd copy 1.17-1.31, an installed
// copy 1.01, the loader 1.00-1.02, and with the helper preparing its stack
// before the TAP device comes (netstack.Prepare, cmd/internal/nethelper)
// 0.97-0.98 (load average 1.9-2.9 from other work). A run without --net
// user does not start the helper: 0.96-1.00 of the memfd build's time.
//
// Before all three, for an `nsbox run` whose flags ask for --net user, the
// ELF constructor starts the network's helper the loader's way, before
// the Go runtime (early.c; Early hands it to the launcher): its Go
// runtime's start then overlaps the launcher's own. Only where the
// loader would serve, and never with NSBOX_FASTPATH=off.
//
// A build without the tag (go build, go test) runs the installed helper:
// DIR/nsbox-helper or DIR/../libexec/nsbox/nsbox-helper, DIR being nsbox's
// own directory.
//
// The helper is a child of the launcher on the host side, like the
// launcher's own goroutines were: it is in none of the sandbox's
// namespaces, so nothing inside can see or signal it. It keeps only the
// descriptors its job is passed (Init closes the rest, its program's
// memfd included), and each job ends when the launcher's end of its
// socket closes, which the kernel does when the launcher dies.
package helper

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Name is the helper program's file name where it is installed: the
// program of --net user's stack.
const Name = "nsbox-helper"

// ImageName is the second helper program's file name: image pulls, whose
// packages (go-containerregistry, net/http, crypto/tls) would slow every
// start of the network's helper were they linked into it. The two are
// one source (cmd/nsbox-helper) built twice: with the build tag
// nsbox_helper_image it holds the image job only.
const ImageName = "nsbox-image-helper"

// ImageJobPrefix starts the names of the jobs ImageName runs.
const ImageJobPrefix = "image-"

// programOf is the helper program that runs job, and its embedded bytes.
func programOf(job string) (name, bytes string) {
	if strings.HasPrefix(job, ImageJobPrefix) {
		return ImageName, embeddedImage
	}
	return Name, unpad(embedded)
}

// Command returns the command that runs the helper's job with args, and
// the file to close once the command has started (the loader's or the
// helper's memfd; nil when the helper runs from a file). Files the job
// passes go in ExtraFiles after the one already there; the caller closes
// ExtraFiles once the command started.
//
// ExtraFiles[0] is the child's fd 3: nsbox's own file for the loader to
// map the helper from, the helper's memfd, executed as /proc/self/fd/3
// (the child's own descriptor, whatever the launcher's other threads open
// and close meanwhile), or /dev/null. The helper closes it first thing
// (Init).
func Command(job string, args ...string) (*exec.Cmd, *os.File, error) {
	name, b := programOf(job)
	path, fd3, closeAfter, err := program(name, b)
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(path, append([]string{job}, args...)...)
	cmd.Args[0] = name
	cmd.ExtraFiles = []*os.File{fd3}
	return cmd, closeAfter, nil
}

// ProgramFD is the helper's descriptor of its own program (the memfd, or
// /dev/null when it runs from a file): Init closes it.
const ProgramFD = 3

// Init is the helper's first step: it closes ProgramFD and every other
// descriptor it inherited but was not given, keeping 0, 1, 2 and the job's
// files (the files descriptors from 4 up), and names the process after its program (run
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
	setName(filepath.Base(os.Args[0])) // Command's Args[0]: the program's name
}

// setName names the process (its main thread, whose name ps and
// /proc/PID/comm show). PR_SET_NAME names only the calling thread, and
// once the runtime's inits are done the main goroutine may run on
// another thread than the main one (it had, in about one start in 40
// under load, leaving the helper named "3"); /proc/self/comm is the main
// thread's, whichever thread writes it.
func setName(name string) {
	if f, err := os.OpenFile("/proc/self/comm", os.O_WRONLY, 0); err == nil {
		_, err = f.WriteString(name)
		f.Close()
		if err == nil {
			return
		}
	}
	b := []byte(name + "\x00")
	unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&b[0])), 0, 0, 0)
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

// program is the path to exec, the child's fd 3 and the file to close
// once it started: an installed copy of the embedded helper that only root
// can change (installedCopy; no copy to make), else the embedded helper
// mapped from nsbox's file by the loader (viaLoader), else the embedded
// helper copied into a memfd; each executed through the child's fd 3.
// Without an embedded helper (go build), the installed one, whoever owns
// it.
func program(name, embedded string) (path string, fd3, closeAfter *os.File, err error) {
	return programAt(installedPath(name), name, embedded)
}

// programAt is program with the installed helper's path ("" for none).
func programAt(installed, name, embedded string) (path string, fd3, closeAfter *os.File, err error) {
	if len(embedded) > 0 {
		if f := installedCopy(installed, embedded); f != nil {
			return fmt.Sprintf("/proc/self/fd/%d", ProgramFD), f, f, nil
		}
		if name == Name { // not the image helper: it re-executes /proc/self/exe, which would be the loader
			path, exe, ldr, ok, err := viaLoader(name, embedded)
			if err != nil {
				return "", nil, nil, err
			}
			if ok {
				return path, exe, ldr, nil
			}
		}
		f, err := sealedMemfd(name, embedded, true)
		if err != nil {
			return "", nil, nil, err
		}
		return fmt.Sprintf("/proc/self/fd/%d", ProgramFD), f, f, nil
	}
	if installed == "" {
		return "", nil, nil, errors.New(name + " is neither built into this nsbox nor installed beside it; fix: build nsbox with make build, which embeds it, or install it beside nsbox (make install)")
	}
	return installed, devNull(), nil, nil
}

// installedCopy opens the installed helper at path (none when "") if it is
// the embedded one and only root can change it: a regular file owned by
// root, writable by no group or other. Anything else a sandbox might have
// written (a directory beside nsbox that the user, and so a sandbox with
// a writable view of it, can write) is not run: the embedded helper is.
// The checks are on the open file, and the command executes that same
// file through its descriptor, so a rename after the check changes
// nothing.
func installedCopy(path, embedded string) *os.File {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil || !onlyRootWrites(&st) || st.Mode&0o111 == 0 || !same(f, embedded) {
		f.Close()
		return nil
	}
	return f
}

// installedPath is the helper installed with nsbox, or "": DIR/nsbox-helper
// or DIR/../libexec/nsbox/nsbox-helper, DIR being nsbox's own directory
// (make install puts it in the second).
func installedPath(name string) string {
	self, err := os.Executable()
	if err != nil {
		return ""
	}
	dir := filepath.Dir(self)
	for _, p := range []string{filepath.Join(dir, name), filepath.Join(dir, "..", "libexec", "nsbox", name)} {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// same reports whether f is the embedded helper: the same size and the
// same first 64 KiB, which hold its Go build ID (a hash of everything it
// was built from). It tells a helper of another build; installedCopy
// keeps out one that is not root's.
func same(f *os.File, embedded string) bool {
	st, err := f.Stat()
	if err != nil || st.Size() != int64(len(embedded)) {
		return false
	}
	n := min(len(embedded), 64<<10)
	b := make([]byte, n)
	if k, _ := f.ReadAt(b, 0); k != n {
		return false
	}
	return string(b) == embedded[:n]
}

// sealedMemfd returns a memfd holding b, sealed against every change; b
// is copied from nsbox's file where fromFile says it is in it (fill).
func sealedMemfd(name, b string, fromFile bool) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("%s: memfd_create: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	if err := fill(fd, b, fromFile); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: write the memfd: %w", name, err)
	}
	const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: seal the memfd: %w", name, err)
	}
	return f, nil
}

// fill writes b to fd. b is the embedded program, in nsbox's read-only
// data, mapped from nsbox's file: the kernel copies it from the file
// (sendfile from /proc/self/exe at b's offset) without faulting its pages
// into this process, or, where the offset is not found, from memory.
func fill(fd int, b string, fromFile bool) error {
	off, ok := int64(0), false
	if fromFile {
		off, ok = fileOffset(unsafe.StringData(b))
	}
	if ok {
		if exe, err := os.Open("/proc/self/exe"); err == nil {
			defer exe.Close()
			done := int64(0)
			for done < int64(len(b)) {
				o := off + done
				n, err := unix.Sendfile(fd, int(exe.Fd()), &o, len(b)-int(done))
				if err == unix.EINTR {
					continue
				}
				if err != nil || n == 0 {
					break
				}
				done += int64(n)
			}
			if done == int64(len(b)) {
				return nil
			}
			if _, err := unix.Seek(fd, 0, 0); err != nil {
				return err
			}
			if err := unix.Ftruncate(fd, 0); err != nil {
				return err
			}
		}
	}
	data := unsafe.Slice(unsafe.StringData(b), len(b))
	for len(data) > 0 {
		n, err := unix.Write(fd, data)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// fileOffset finds p's offset in nsbox's file from /proc/self/maps (see
// offsetIn).
func fileOffset(p *byte) (int64, bool) {
	var st unix.Stat_t
	if unix.Stat("/proc/self/exe", &st) != nil {
		return 0, false
	}
	return offsetIn(p, st.Ino)
}

// offsetIn finds p's offset in the file with inode ino (nsbox's own) from
// /proc/self/maps: the mapping that holds it must be a read-only mapping of
// that file (a writable private one may hold changed copies of its pages).
func offsetIn(p *byte, ino uint64) (int64, bool) {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, false
	}
	addr := uint64(uintptr(unsafe.Pointer(p)))
	for _, line := range strings.Split(string(maps), "\n") {
		// start-end perms offset major:minor inode path
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || addr < start || addr >= end {
			continue
		}
		if len(f) < 6 || f[1][1] == 'w' {
			return 0, false // anonymous memory, or a copy that may differ from the file
		}
		off, err1 := strconv.ParseUint(f[2], 16, 64)
		inode, err2 := strconv.ParseUint(f[4], 10, 64)
		if err1 != nil || err2 != nil || inode != ino {
			return 0, false
		}
		return int64(off + addr - start), true
	}
	return 0, false
}
