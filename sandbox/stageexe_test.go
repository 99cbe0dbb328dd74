package sandbox

import (
	"bytes"
	"os"
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
