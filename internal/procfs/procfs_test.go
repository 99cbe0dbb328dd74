package procfs

import (
	"os"
	"strings"
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
	assert.Check(t, is.DeepEqual(st, Stat{State: 'R', PPID: 77, Flags: 4194560, StartTime: 987654}))

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
