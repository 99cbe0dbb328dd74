package tests

import (
	"fmt"
	"os"
	"strings"
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
	want := fmt.Sprintf("0 %d 65536", freeStart(t))
	if start, count, ok := rootSubids("/etc/subuid"); ok {
		if count > 65536 {
			count = 65536
		}
		want = fmt.Sprintf("0 %d %d", start, count)
	}
	res := nsbox("run", "--", "id", "-u")
	res.Assert(t, icmd.Success)
	assert.Equal(t, res.Stdout(), "0\n")
	uids, _ := outsideMaps(t, nil)
	assert.Equal(t, uids, want)

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

// freeStart is the lowest start of 65536 ids, from 100000 on, that no
// line of /etc/subuid or /etc/subgid uses (read here independently).
func freeStart(t *testing.T) uint64 {
	type span struct{ lo, hi uint64 }
	var taken []span
	for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range splitLines(string(b)) {
			var owner string
			var s, c uint64
			if _, err := fmt.Sscanf(strings.ReplaceAll(line, ":", " "), "%s %d %d", &owner, &s, &c); err == nil {
				taken = append(taken, span{s, s + c})
			}
		}
	}
	start := uint64(100000)
	for moved := true; moved; {
		moved = false
		for _, sp := range taken {
			if sp.lo < start+65536 && start < sp.hi {
				start, moved = sp.hi, true
			}
		}
	}
	return start
}
