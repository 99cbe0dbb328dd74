package tests

import (
	"fmt"
	"os"
	"testing"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/icmd"
)

// TestRealRootDoesNotMapHostRoot runs as real root (make test runs it once
// that way): the sandbox must not map host uid 0 unless --map-host-root.
func TestRealRootDoesNotMapHostRoot(t *testing.T) {
	if os.Getuid() != 0 {
		cannotRun(t, "runs as real root (make test runs it so)")
	}
	want := "0 100000 65536"
	if start, count, ok := rootSubids("/etc/subuid"); ok {
		if count > 65536 {
			count = 65536
		}
		want = fmt.Sprintf("0 %d %d", start, count)
	}
	res := nsbox("run", "--", "sh", "-c", "id -u; cat /proc/self/uid_map")
	res.Assert(t, icmd.Success)
	assert.Equal(t, normalizeMap(res.Stdout()), "0\n"+want)

	res = nsbox("run", "--map-host-root", "--map", "single", "--", "cat", "/proc/self/uid_map")
	res.Assert(t, icmd.Success)
	assert.Equal(t, normalizeMap(res.Stdout()), "0 0 1")
}

func rootSubids(file string) (start, count uint32, ok bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, 0, false
	}
	for _, line := range splitLines(string(b)) {
		var name string
		if n, _ := fmt.Sscanf(line, "%s", &name); n == 0 {
			continue
		}
		var s, c uint32
		if _, err := fmt.Sscanf(line, "root:%d:%d", &s, &c); err == nil {
			return s, c, true
		}
		if _, err := fmt.Sscanf(line, "0:%d:%d", &s, &c); err == nil {
			return s, c, true
		}
	}
	return 0, 0, false
}
