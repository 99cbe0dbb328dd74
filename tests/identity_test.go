package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/fs"
	"gotest.tools/v3/icmd"
)

func TestDefaultKeepsYourIDs(t *testing.T) {
	requireUnprivileged(t)
	res := nsbox("run", "--", "sh", "-c", "id -u; id -g")
	res.Assert(t, icmd.Success)
	assert.Equal(t, res.Stdout(), fmt.Sprintf("%d\n%d\n", os.Getuid(), os.Getgid()))
}

// The default map with subordinate ids puts you at your own id and fills
// 0..65535 around you.
func TestDefaultMapFillsAroundYou(t *testing.T) {
	requireUnprivileged(t)
	subStart, subCount := subids(t, "/etc/subuid")
	uid := uint32(os.Getuid())
	if subCount < 65535 || uid >= 65536 {
		cannotRun(t, "needs uid < 65536 and 65535 subuids, have uid %d and %d", uid, subCount)
	}
	uids, _ := outsideMaps(t, nil)
	want := fmt.Sprintf("0 %d %d\n%d %d 1\n%d %d %d", subStart, uid, uid, uid, uid+1, subStart+uid, 65535-uid)
	assert.Equal(t, uids, want)
}

func TestRootMapIsRootlesskitLayout(t *testing.T) {
	requireUnprivileged(t)
	uStart, _ := subids(t, "/etc/subuid")
	gStart, _ := subids(t, "/etc/subgid")
	res := nsbox("run", "--root", "--", "id", "-u")
	res.Assert(t, icmd.Success)
	assert.Equal(t, res.Stdout(), "0\n")
	uids, gids := outsideMaps(t, nil, "--root")
	assert.Equal(t, uids, fmt.Sprintf("0 %d 1\n1 %d 65536", os.Getuid(), uStart))
	assert.Equal(t, gids, fmt.Sprintf("0 %d 1\n1 %d 65536", os.Getgid(), gStart))
}

// A file chowned inside to uid 1000 belongs on the host to the subordinate
// id the plan maps 1000 to.
func TestChownInsideShowsAsSubordinateID(t *testing.T) {
	requireUnprivileged(t)
	uStart, _ := subids(t, "/etc/subuid")
	gStart, _ := subids(t, "/etc/subgid")
	dir := fs.NewDir(t, "nsbox-chown")
	file := filepath.Join(dir.Path(), "f")
	res := nsbox("run", "--root", "--bind", dir.Path(), "--", "sh", "-c", "touch "+file+" && chown 1000:1000 "+file)
	res.Assert(t, icmd.Success)
	assertHostOwner(t, file, uStart+999, gStart+999)
}

// Without subordinate ids: a single mapping, and setgroups is denied, as
// the kernel requires for an unprivileged gid_map write.
func TestNoSubidsSingleMapping(t *testing.T) {
	requireUnprivileged(t)
	empty := fs.NewFile(t, "subid-empty", fs.WithContent("# nobody here\n"))
	env := append(os.Environ(), "NSBOX_SUBUID_FILE="+empty.Path(), "NSBOX_SUBGID_FILE="+empty.Path())
	res := nsboxWith([]string{"run", "--root", "--", "sh", "-c", "cat /proc/self/setgroups"}, icmd.WithEnv(env...))
	res.Assert(t, icmd.Success)
	assert.Equal(t, normalizeMap(res.Stdout()), "deny")
	assert.Equal(t, res.Stderr(), "", "no subids is the normal unprivileged case: no notice")
	uids, gids := outsideMaps(t, env, "--root")
	assert.Equal(t, uids, fmt.Sprintf("0 %d 1", os.Getuid()))
	assert.Equal(t, gids, fmt.Sprintf("0 %d 1", os.Getgid()))
}

func TestMapSingle(t *testing.T) {
	requireUnprivileged(t)
	res := nsbox("run", "--map", "single", "--", "cat", "/proc/self/uid_map")
	res.Assert(t, icmd.Success)
	// The command runs in a nested user namespace mapping it onto the
	// outer one's root, which is the caller (as bubblewrap: devpts needs
	// root mapped for setup); from the host it is the caller. With
	// --share mnt there is no nesting: the map is the caller's id onto
	// itself.
	assert.Equal(t, normalizeMap(res.Stdout()), fmt.Sprintf("%d 0 1", os.Getuid()))
	uids, _ := outsideMaps(t, nil, "--map", "single")
	assert.Equal(t, uids, fmt.Sprintf("%d %d 1", os.Getuid(), os.Getuid()))
	res = nsbox("run", "--map", "single", "--share", "mnt", "--", "cat", "/proc/self/uid_map")
	res.Assert(t, icmd.Success)
	assert.Equal(t, normalizeMap(res.Stdout()), fmt.Sprintf("%d %d 1", os.Getuid(), os.Getuid()))
}

// In auto mode a missing newuidmap falls back to a single mapping, with
// one notice line. NSBOX_HELPER_DIR points the lookup at an empty
// directory (the standard paths are searched whatever PATH is).
func TestMissingHelperFallsBackWithNotice(t *testing.T) {
	requireUnprivileged(t)
	subids(t, "/etc/subuid")
	empty := t.TempDir()
	res := nsboxWith([]string{"run", "--", "/bin/cat", "/proc/self/uid_map"}, icmd.WithEnv(append(os.Environ(), "NSBOX_HELPER_DIR="+empty)...))
	res.Assert(t, icmd.Success)
	// Single mapping, seen from the nested user namespace (TestMapSingle).
	assert.Equal(t, normalizeMap(res.Stdout()), fmt.Sprintf("%d 0 1", os.Getuid()))
	lines := strings.Split(strings.TrimSpace(res.Stderr()), "\n")
	assert.Equal(t, len(lines), 1, res.Stderr())
	assert.Check(t, is.Contains(lines[0], "newuidmap and newgidmap not found in "+empty))
	assert.Check(t, is.Contains(lines[0], "apt-get install uidmap"))
}

func TestExplicitMaps(t *testing.T) {
	requireUnprivileged(t)
	uStart, _ := subids(t, "/etc/subuid")
	gStart, _ := subids(t, "/etc/subgid")
	uid, gid := strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid())
	uids, gids := outsideMaps(t, nil, "--root",
		"--map-users", "0:"+uid+":1", "--map-users", fmt.Sprintf("1:%d:10", uStart),
		"--map-groups", "0:"+gid+":1", "--map-groups", fmt.Sprintf("1:%d:10", gStart))
	assert.Equal(t, uids, fmt.Sprintf("0 %s 1\n1 %d 10", uid, uStart))
	assert.Equal(t, gids, fmt.Sprintf("0 %s 1\n1 %d 10", gid, gStart))
}

func TestUIDFlag(t *testing.T) {
	requireUnprivileged(t)
	subids(t, "/etc/subuid")
	res := nsbox("run", "--root", "--uid", "33", "--gid", "33", "--", "sh", "-c", "id -u; id -g")
	res.Assert(t, icmd.Success)
	assert.Equal(t, res.Stdout(), "33\n33\n")
}
