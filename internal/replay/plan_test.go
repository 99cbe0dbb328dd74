package replay

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/nsbox/nsbox/mapping"
)

// sections splits a plan file as replay.c's parse_plan does.
func sections(t *testing.T, b []byte) (tags string, data [][]byte) {
	t.Helper()
	assert.Assert(t, is.Equal(string(b[:len(Magic)]), Magic))
	for off := len(Magic); off < len(b); {
		assert.Assert(t, len(b)-off >= 5)
		n := int(binary.LittleEndian.Uint32(b[off+1:]))
		tags += string(b[off])
		data = append(data, b[off+5:off+5+n])
		off += 5 + n
	}
	return tags, data
}

func TestPlanEncode(t *testing.T) {
	p := &Plan{Argv: []byte("nsbox\x00run\x00--\x00true\x00"), Env: []byte("A=1\x00"), Creds: "Uid:\t1\n", Cwd: "/w",
		Checks: []Check{{Kind: Stat, Path: "/etc/subuid", Want: "1 2 100644 0 0 3 4.000000005 6.000000007"}},
		Config: []byte("v=2\x00arg=true\x00"),
		UIDMap: mapping.Step{Text: "0 1000 1\n"}, GIDMap: mapping.Step{Helper: "/usr/bin/newgidmap", Args: []string{"0", "1000", "1"}},
		Record: []byte("{\x00N}\n"), StateDir: "/run/user/1000/nsbox", Notice: "nsbox: notice\n"}
	key := []byte("0123456789abcdef0123456789abcdef")
	b := p.Encode(key)
	tags, data := sections(t, b)
	assert.Equal(t, tags, "AEIWCKUGRDNH")
	assert.Equal(t, string(data[4]), "S/etc/subuid\x001 2 100644 0 0 3 4.000000005 6.000000007")
	assert.Equal(t, string(data[6]), "D0 1000 1\n")
	assert.Equal(t, string(data[7]), "H/usr/bin/newgidmap\x000\x001000\x001\x00")
	mac := hmac.New(sha256.New, key)
	mac.Write(b[:len(b)-37])
	assert.DeepEqual(t, data[11], mac.Sum(nil))
	// Denying setgroups is a step of its own kind.
	p.GIDMap = mapping.Step{Text: "0 1000 1\n", DenySetgroups: true}
	_, data = sections(t, p.Encode(key))
	assert.Equal(t, string(data[7]), "S0 1000 1\n")
	// A name (--name) and the sweep's stamp, after the notice.
	p.Name, p.SweepStamp, p.SweepEvery = "box-1", "/run/user/1000/nsbox/.swept", time.Minute
	tags, data = sections(t, p.Encode(key))
	assert.Equal(t, tags, "AEIWCKUGRDNMTH")
	assert.Equal(t, string(data[11]), "box-1")
	assert.Equal(t, string(data[12]), "/run/user/1000/nsbox/.swept\x0060000000000")
}

func TestStoreKeepsItsFilesPrivate(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(dir)
	assert.NilError(t, err)
	p := &Plan{Argv: []byte("a\x00"), Cwd: "/"}
	assert.NilError(t, st.Save(p))
	for _, f := range []string{KeyFile, StoreDir, filepath.Join(StoreDir, Name(p.Argv, p.Cwd))} {
		fi, err := os.Lstat(filepath.Join(dir, f))
		assert.NilError(t, err)
		assert.Check(t, fi.Mode().Perm()&0o077 == 0, "%s: %v", f, fi.Mode())
	}
	// The same key on the next open; a key file made readable to others,
	// or a symlink in its place, is refused.
	again, err := OpenStore(dir)
	assert.NilError(t, err)
	assert.DeepEqual(t, again.key, st.key)
	assert.NilError(t, os.Chmod(filepath.Join(dir, KeyFile), 0o644))
	_, err = OpenStore(dir)
	assert.ErrorContains(t, err, "not a private file")
	assert.NilError(t, os.Remove(filepath.Join(dir, KeyFile)))
	assert.NilError(t, os.Symlink("/etc/passwd", filepath.Join(dir, KeyFile)))
	_, err = OpenStore(dir)
	assert.ErrorContains(t, err, KeyFile)
}

func TestStoreIsBounded(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(dir)
	assert.NilError(t, err)
	for i := range MaxPlans + 10 {
		assert.NilError(t, st.Save(&Plan{Argv: []byte(fmt.Sprintf("cmd%d\x00", i)), Cwd: "/"}))
	}
	ents, err := os.ReadDir(filepath.Join(dir, StoreDir))
	assert.NilError(t, err)
	assert.Check(t, len(ents) <= MaxPlans, "%d plans", len(ents))
	// The newest is kept.
	_, err = os.Stat(filepath.Join(dir, StoreDir, Name([]byte(fmt.Sprintf("cmd%d\x00", MaxPlans+9)), "/")))
	assert.NilError(t, err)
}
