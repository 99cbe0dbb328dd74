package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestParseStat(t *testing.T) {
	// A comm with spaces and a ')' of its own, as a sandboxed process may
	// name itself.
	line := "4242 (evil) S 1 2) R 77 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615\n"
	st, err := ParseStat([]byte(line))
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(st, Stat{State: 'R', PPID: 77, Flags: 4194560, Threads: 1, StartTime: 987654}))

	for _, bad := range []string{"garbage", "1 (x) S 1 2", "1 (x) S notapid 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0"} {
		_, err := ParseStat([]byte(bad))
		assert.Check(t, is.ErrorContains(err, "parse /proc/PID/stat"), bad)
	}

	b, err := os.ReadFile("/proc/self/stat")
	assert.NilError(t, err)
	st, err = ParseStat(b)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.PPID, os.Getppid()))
	assert.Check(t, st.StartTime > 0)
	// The Go runtime runs more than one thread.
	assert.Check(t, st.Threads > 1, "threads %d", st.Threads)
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1 (init) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 5 0"))
	f.Add([]byte(") )"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseStat(b) // must not panic
	})
}

func TestStatusField(t *testing.T) {
	// Name may hold "Seccomp:\t0" after a space, never after a newline.
	status := []byte("Name:\tx Seccomp:\t0\nUmask:\t0022\nCapEff:\t000001ffffffffff\nSeccomp:\t2\n")
	v, ok := StatusField(status, "Seccomp")
	assert.Check(t, ok)
	assert.Check(t, is.Equal(v, "2"))
	v, ok = StatusField(status, "CapEff")
	assert.Check(t, ok && v == "000001ffffffffff")
	_, ok = StatusField(status, "Cap")
	assert.Check(t, !ok)

	b, err := os.ReadFile("/proc/self/status")
	assert.NilError(t, err)
	v, ok = StatusField(b, "Name")
	assert.Check(t, ok && strings.HasPrefix("procfs.test", v), v)
}

func TestReadFileWriteFile(t *testing.T) {
	b, err := ReadFile("/proc/self/uid_map")
	assert.NilError(t, err)
	assert.Assert(t, len(strings.Fields(string(b)))%3 == 0 && len(b) > 0, "%q", b)

	_, err = ReadFile("/proc/self/no-such-file")
	var pe *os.PathError
	assert.Assert(t, errors.As(err, &pe) && pe.Op == "open" && errors.Is(err, fs.ErrNotExist), "%v", err)

	// At most MaxRead bytes, whatever the file holds.
	big := filepath.Join(t.TempDir(), "big")
	assert.NilError(t, os.WriteFile(big, bytes.Repeat([]byte("x"), 3*MaxRead), 0o600))
	b, err = ReadFile(big)
	assert.NilError(t, err)
	assert.Equal(t, len(b), MaxRead)

	// One write; the thread's own name, so nothing else sees it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	comm := fmt.Sprintf("/proc/self/task/%d/comm", syscall.Gettid())
	old, err := ReadFile(comm)
	assert.NilError(t, err)
	defer WriteFile(comm, bytes.TrimSpace(old))
	assert.NilError(t, WriteFile(comm, []byte("procfs-test")))
	b, err = ReadFile(comm)
	assert.NilError(t, err)
	assert.Equal(t, string(b), "procfs-test\n")

	err = WriteFile("/proc/self/no-such-file", []byte("x"))
	assert.Assert(t, errors.As(err, &pe) && pe.Op == "open", "%v", err)
	// uid_map, once written (or of the initial namespace), refuses more.
	err = WriteFile("/proc/self/uid_map", []byte("0 0 1"))
	assert.Assert(t, errors.As(err, &pe) && pe.Op == "write" && errors.Is(err, syscall.EPERM), "%v", err)
}
