package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/nsbox/nsbox/internal/replay"
)

// checkedPaths are the paths replayChecks looks at, by kind and path.
func checkedPaths(subids bool) map[string]bool {
	got := map[string]bool{}
	for _, c := range replayChecks("/", nil, subids) {
		got[string(c.Kind)+c.Path] = true
	}
	return got
}

// A plan depends on the subordinate ids and the helpers only where the
// maps' planning reads them: --map single checks neither; the other
// modes check the files, and each helper where FindHelpers looks, up to
// the directory it takes it from.
func TestReplayChecksFollowTheMapsPlanning(t *testing.T) {
	first, second, later := t.TempDir(), t.TempDir(), t.TempDir()
	for _, d := range []string{second, later} {
		for _, h := range []string{"newuidmap", "newgidmap"} {
			assert.NilError(t, os.WriteFile(filepath.Join(d, h), []byte("#!/bin/sh\n"), 0o755))
		}
	}
	t.Setenv("NSBOX_HELPER_DIR", "")
	t.Setenv("PATH", first+":"+second+":"+later)
	subuid := filepath.Join(t.TempDir(), "subuid")
	t.Setenv("NSBOX_SUBUID_FILE", subuid)

	single := checkedPaths(false)
	for k := range single {
		assert.Check(t, !strings.Contains(k, "newuidmap") && !strings.Contains(k, "newgidmap") && !strings.Contains(k, "getsubids"), k)
		assert.Check(t, !strings.Contains(k, "subuid") && !strings.Contains(k, "subgid"), k)
	}
	assert.Check(t, single["L/etc/passwd"])
	assert.Check(t, single[string(replay.Contents)+"/proc/self/uid_map"])

	auto := checkedPaths(true)
	assert.Check(t, auto["L/etc/subuid"])
	assert.Check(t, auto["L"+subuid])
	for _, h := range []string{"newuidmap", "newgidmap"} {
		// FindHelpers looks in the standard directories first; where it
		// finds none there, in PATH's up to the one it takes.
		assert.Check(t, !auto["L"+filepath.Join(later, h)])
		if _, err := os.Stat("/usr/bin/" + h); err == nil {
			assert.Check(t, auto["L/usr/bin/"+h])
			assert.Check(t, !auto["L"+filepath.Join(first, h)])
			continue
		}
		assert.Check(t, auto["L"+filepath.Join(first, h)])
		assert.Check(t, auto["L"+filepath.Join(second, h)])
		assert.Check(t, auto[string(replay.FSFlags)+filepath.Join(second, h)])
	}
}
