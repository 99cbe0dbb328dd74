package sandbox

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestSealedCopy(t *testing.T) {
	f, err := sealedCopy("/proc/self/exe")
	assert.NilError(t, err)
	defer f.Close()
	want, err := os.ReadFile("/proc/self/exe")
	assert.NilError(t, err)
	got, err := os.ReadFile("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	assert.NilError(t, err)
	assert.Check(t, bytes.Equal(got, want))
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(seals&memfdSeals, memfdSeals))
	// Neither a write nor a reopen for writing gets through.
	_, err = f.WriteAt([]byte("x"), 0)
	assert.Check(t, err != nil)
	w, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), os.O_WRONLY, 0)
	if err == nil {
		_, err = w.Write([]byte("x"))
		w.Close()
	}
	assert.Check(t, err != nil)
}

// BenchmarkSealedCopy is the startup cost the sealed copy adds to each
// nsbox run (once per launcher process).
// NSBOX_BENCH_BIN names the binary to copy (default: the test binary).
func BenchmarkSealedCopy(b *testing.B) {
	bin := os.Getenv("NSBOX_BENCH_BIN")
	if bin == "" {
		bin = "/proc/self/exe"
	}
	for b.Loop() {
		f, err := sealedCopy(bin)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// TestFileCopy: the fallback for vm.memfd_noexec = 2 is an unlinked,
// read-only, executable copy, from the first usable directory.
func TestFileCopy(t *testing.T) {
	f, err := fileCopy("/proc/self/exe", []string{"/nonexistent", t.TempDir()})
	assert.NilError(t, err)
	defer f.Close()
	var st unix.Stat_t
	assert.NilError(t, unix.Fstat(int(f.Fd()), &st))
	assert.Check(t, is.Equal(st.Nlink, uint64(0)), "unlinked")
	assert.Check(t, is.Equal(st.Mode&0o777, uint32(0o500)))
	want, err := os.ReadFile("/proc/self/exe")
	assert.NilError(t, err)
	got, err := os.ReadFile(fdPath(f))
	assert.NilError(t, err)
	assert.Check(t, bytes.Equal(got, want))
	// It runs: execve takes it (no writer is left open: no ETXTBSY).
	out, err := exec.Command(fdPath(f), "-test.run=^$").CombinedOutput()
	assert.NilError(t, err, string(out))
}

func TestFileCopyNoDirectory(t *testing.T) {
	_, err := fileCopy("/proc/self/exe", []string{"/nonexistent"})
	assert.ErrorContains(t, err, "/nonexistent: no such file or directory; fix: vm.memfd_noexec = 2")
}
