package helper

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
)

// rodata is a string constant: the linker puts its bytes in the binary's
// read-only data, mapped from the file, as it does the embedded helper.
const rodata = "nsbox helper test: bytes that live in the test binary's own file, found through /proc/self/maps"

func TestMemfdIsSealedAgainstEveryChange(t *testing.T) {
	f, err := sealedMemfd(Name, rodata, true)
	assert.NilError(t, err)
	defer f.Close()
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	assert.NilError(t, err)
	want := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	assert.Equal(t, seals&want, want)
	_, err = unix.Pwrite(int(f.Fd()), []byte("x"), 0)
	assert.ErrorIs(t, err, unix.EPERM)
	assert.ErrorIs(t, unix.Ftruncate(int(f.Fd()), 1), unix.EPERM)
	b := make([]byte, len(rodata)+1)
	n, err := unix.Pread(int(f.Fd()), b, 0)
	assert.NilError(t, err)
	assert.Equal(t, string(b[:n]), rodata)
}

func TestFileOffsetFindsTheBytesInOurOwnFile(t *testing.T) {
	s := rodata
	off, ok := fileOffset(unsafe.StringData(s))
	assert.Assert(t, ok, "a constant's bytes are mapped from the binary")
	exe, err := os.Open("/proc/self/exe")
	assert.NilError(t, err)
	defer exe.Close()
	b := make([]byte, len(s))
	_, err = exe.ReadAt(b, off)
	assert.NilError(t, err)
	assert.Equal(t, string(b), s)
	// Heap bytes are not in the file.
	heap := []byte(s)
	_, ok = fileOffset(&heap[0])
	assert.Assert(t, !ok, "%p", &heap[0])
}

func TestSameComparesSizeAndStart(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, Name)
	assert.NilError(t, os.WriteFile(p, []byte(rodata), 0o755))
	f, err := os.Open(p)
	assert.NilError(t, err)
	defer f.Close()
	assert.Assert(t, same(f, rodata))
	assert.Assert(t, !same(f, rodata+"x"))
	assert.Assert(t, !same(f, "X"+rodata[1:]))
}

// An installed copy of the embedded helper is run in its place only when
// root alone can change it: one the user could write, and so a sandbox
// with a writable view of nsbox's directory could have planted, is not.
// The one run is the file checked, through its descriptor.
func TestInstalledCopyOnlyWhenOnlyRootCanChangeIt(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, Name)
	assert.NilError(t, os.WriteFile(p, []byte(rodata), 0o755))
	assert.NilError(t, os.Chmod(p, 0o755))
	if os.Getuid() != 0 { // the unit tests run as root in CI (hack/test.sh); a user's file is all a user can make
		assert.Assert(t, installedCopy(p, rodata) == nil, "a user's")
		return
	}
	f := installedCopy(p, rodata)
	assert.Assert(t, f != nil, "root's, 0755")
	var a, b unix.Stat_t
	assert.NilError(t, unix.Fstat(int(f.Fd()), &a))
	assert.NilError(t, unix.Stat(p, &b))
	assert.Equal(t, a.Ino, b.Ino)
	f.Close()

	assert.Assert(t, installedCopy(p, rodata+"x") == nil, "another build")
	assert.NilError(t, os.Chmod(p, 0o775))
	assert.Assert(t, installedCopy(p, rodata) == nil, "group-writable")
	assert.NilError(t, os.Chmod(p, 0o757))
	assert.Assert(t, installedCopy(p, rodata) == nil, "world-writable")
	assert.NilError(t, os.Chmod(p, 0o755))
	assert.NilError(t, os.Chown(p, 65534, 65534))
	assert.Assert(t, installedCopy(p, rodata) == nil, "a user's")
	assert.Assert(t, installedCopy("", rodata) == nil)

	// program falls back to the embedded bytes (a memfd here: go test has
	// no loader) rather than the user's copy.
	path, fd3, closeAfter, err := programAt(p, Name, rodata)
	assert.NilError(t, err)
	defer fd3.Close()
	assert.Equal(t, path, "/proc/self/fd/3")
	assert.Equal(t, fd3, closeAfter)
	link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd3.Fd()))
	assert.NilError(t, err)
	assert.Assert(t, strings.HasPrefix(link, "/memfd:"+Name), link)
}

// Without the embedding build tag (as go test builds), the helper is the
// one installed beside the binary, or an error that says how to get one.
func TestInstalledHelperOrHowToGetOne(t *testing.T) {
	if len(embedded) > 0 {
		t.Fatal("go test builds without the nsbox_helper tag")
	}
	self, err := os.Executable()
	assert.NilError(t, err)
	beside := filepath.Join(filepath.Dir(self), Name)
	if _, err := os.Stat(beside); err == nil {
		t.Fatalf("%s exists already", beside)
	}
	_, _, err = Command("net")
	assert.ErrorContains(t, err, "nsbox-helper is neither built into this nsbox nor installed beside it; fix: build nsbox with make build")

	assert.NilError(t, os.WriteFile(beside, []byte("#!/bin/sh\n"), 0o755))
	defer os.Remove(beside)
	cmd, closeAfter, err := Command("net")
	assert.NilError(t, err)
	assert.Assert(t, closeAfter == nil)
	assert.Equal(t, cmd.Path, beside)
	assert.DeepEqual(t, cmd.Args, []string{Name, "net"})
	assert.Equal(t, len(cmd.ExtraFiles), 1, "fd 3 is held for the program even when it runs from a file")
	cmd.ExtraFiles[0].Close()
}

// make build pads the embedded helper with zero bytes to put it on a page
// boundary; the program is what follows them, and only zeros are padding.
func TestUnpadStripsOnlyZeroPadding(t *testing.T) {
	elf := "\x7fELF\x02\x01\x01rest of the program"
	assert.Equal(t, unpad(elf), elf)
	assert.Equal(t, unpad(strings.Repeat("\x00", 192)+elf), elf)
	assert.Equal(t, unpad(strings.Repeat("\x00", 4095)+elf), elf)
	notPad := "\x00\x00x" + elf
	assert.Equal(t, unpad(notPad), notPad)
	tooLong := strings.Repeat("\x00", 8192) + elf
	assert.Equal(t, unpad(tooLong), tooLong)
	assert.Equal(t, unpad(""), "")
}
