package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// unpackInto unpacks a test layer into dir/fs and returns the error.
func unpackInto(t *testing.T, dir string, es ...entry) error {
	t.Helper()
	fsDir := filepath.Join(dir, "fs")
	assert.NilError(t, os.MkdirAll(fsDir, 0o755))
	root, err := unix.Open(fsDir, unix.O_PATH|unix.O_DIRECTORY, 0)
	assert.NilError(t, err)
	defer unix.Close(root)
	_, err = unpackLayer(root, bytes.NewReader(layerTar(t, es...)), "")
	return err
}

// TestUnpackHostile: each hostile layer either fails or stays inside its
// layer directory; a file next to the layer (the "host") is unchanged and
// nothing new appears beside it.
func TestUnpackHostile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []entry
		wantErr string
	}{
		{"dotdot", []entry{{name: "../victim", data: []byte("pwned")}}, "climbs out"},
		{"dotdot deep", []entry{{name: "a/../../victim", data: []byte("pwned")}}, "climbs out"},
		{"absolute", []entry{{name: "/victim", data: []byte("inside")}}, ""},
		{"symlink then write", []entry{{name: "l", typ: tar.TypeSymlink, link: ".."}, {name: "l/victim", data: []byte("pwned")}}, "symlink or not a directory"},
		{"absolute symlink then write", []entry{{name: "l", typ: tar.TypeSymlink, link: "/"}, {name: "l/victim", data: []byte("pwned")}}, "symlink or not a directory"},
		{"symlink over file then write", []entry{{name: "victim", typ: tar.TypeSymlink, link: "../victim"}, {name: "victim", data: []byte("replaced")}}, ""},
		{"hardlink outside", []entry{{name: "h", typ: tar.TypeLink, link: "../victim"}}, "outside the layer"},
		{"hardlink absolute host file", []entry{{name: "h", typ: tar.TypeLink, link: "/etc/passwd"}}, "hard link target"},
		{"hardlink through symlink", []entry{{name: "l", typ: tar.TypeSymlink, link: ".."}, {name: "h", typ: tar.TypeLink, link: "l/victim"}}, "hard link target"},
		{"device node", []entry{{name: "null", typ: tar.TypeChar}}, ""},
		{"whiteout climbing", []entry{{name: ".wh...", data: nil}}, "names nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := t.TempDir()
			victim := filepath.Join(host, "victim")
			assert.NilError(t, os.WriteFile(victim, []byte("host"), 0o644))
			layer := filepath.Join(host, "layer")
			err := unpackInto(t, layer, tc.entries...)
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
			} else {
				assert.NilError(t, err)
			}
			b, err := os.ReadFile(victim)
			assert.NilError(t, err)
			assert.Equal(t, string(b), "host")
			ents, _ := os.ReadDir(host)
			assert.Equal(t, len(ents), 2, "only victim and layer beside each other")
			_, err = os.Stat(filepath.Join(layer, "fs", "null"))
			assert.Assert(t, os.IsNotExist(err), "device nodes are skipped")
		})
	}
}

// TestUnpackSparseBomb: a file of a gigabyte of zeros is stored as a hole,
// and GNU sparse entries are refused.
func TestUnpackSparseBomb(t *testing.T) {
	dir := t.TempDir()
	big := make([]byte, 64<<20)
	assert.NilError(t, unpackInto(t, dir, entry{name: "zeros", data: big}))
	var st unix.Stat_t
	assert.NilError(t, unix.Stat(filepath.Join(dir, "fs", "zeros"), &st))
	assert.Equal(t, st.Size, int64(64<<20))
	assert.Assert(t, st.Blocks*512 < 1<<20, "allocated %d bytes", st.Blocks*512)

	// An old GNU sparse header claiming a terabyte (tar.Writer writes no
	// sparse entries: patch a plain one).
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "s", Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatGNU}))
	assert.NilError(t, tw.Close())
	raw := b.Bytes()
	hdr := raw[:512]
	hdr[156] = 'S'
	copy(hdr[386:386+24], "00000000000\x0000000000000\x00")                   // one entry: 0 bytes at 0
	copy(hdr[483:483+12], "\x80\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00") // realsize 2^40, base-256
	copy(hdr[148:156], "        ")
	sum := 0
	for _, c := range hdr {
		sum += int(c)
	}
	copy(hdr[148:156], []byte(fmt.Sprintf("%06o\x00 ", sum)))
	root, _ := unix.Open(filepath.Join(dir, "fs"), unix.O_PATH|unix.O_DIRECTORY, 0)
	defer unix.Close(root)
	_, err := unpackLayer(root, bytes.NewReader(raw), "")
	assert.ErrorContains(t, err, "sparse")
}

// TestUnpackEntries: modes, setuid, links, whiteouts and the diff id.
func TestUnpackEntries(t *testing.T) {
	dir := t.TempDir()
	err := unpackInto(t, dir,
		entry{name: "bin/", typ: tar.TypeDir, mode: 0o555},
		entry{name: "bin/su", mode: 0o4755, data: []byte("x")},
		entry{name: "bin/sh", typ: tar.TypeSymlink, link: "/bin/busybox"},
		entry{name: "bin/hard", typ: tar.TypeLink, link: "bin/su"},
		entry{name: "etc/.wh.gone"},
		entry{name: "opt/.wh..wh..opq"},
		entry{name: "fifo", typ: tar.TypeFifo, mode: 0o600},
	)
	assert.NilError(t, err)
	fs := filepath.Join(dir, "fs")
	st, err := os.Lstat(filepath.Join(fs, "bin", "su"))
	assert.NilError(t, err)
	assert.Equal(t, st.Mode()&(os.ModeSetuid|0o777), os.ModeSetuid|0o755)
	st, _ = os.Lstat(filepath.Join(fs, "bin"))
	assert.Equal(t, st.Mode().Perm(), os.FileMode(0o755), "directories keep the owner's rwx")
	l, _ := os.Readlink(filepath.Join(fs, "bin", "sh"))
	assert.Equal(t, l, "/bin/busybox")
	var a, b unix.Stat_t
	unix.Stat(filepath.Join(fs, "bin", "su"), &a)
	unix.Stat(filepath.Join(fs, "bin", "hard"), &b)
	assert.Equal(t, a.Ino, b.Ino)
	unix.Lstat(filepath.Join(fs, "etc", "gone"), &a)
	assert.Equal(t, a.Mode&unix.S_IFMT, uint32(unix.S_IFCHR))
	assert.Equal(t, a.Rdev, uint64(0))

	// A wrong diff id is refused.
	root, _ := unix.Open(fs, unix.O_PATH|unix.O_DIRECTORY, 0)
	defer unix.Close(root)
	_, err = unpackLayer(root, bytes.NewReader(layerTar(t, entry{name: "x"})), "sha256:"+strings.Repeat("0", 64))
	assert.Check(t, is.ErrorContains(err, "not sha256:000"))
}

func FuzzUnpack(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		host := t.TempDir()
		fsDir := filepath.Join(host, "layer")
		os.Mkdir(fsDir, 0o755)
		root, err := unix.Open(fsDir, unix.O_PATH|unix.O_DIRECTORY, 0)
		assert.NilError(t, err)
		defer unix.Close(root)
		unpackLayer(root, bytes.NewReader(b), "")
		ents, _ := os.ReadDir(host)
		assert.Equal(t, len(ents), 1)
	})
}

// TestUnpackXattrsAndDirTimes: user.* attributes are set (not
// user.overlay.*), trusted.* and security.* ones never (security.capability
// only with owners, in a user namespace), and directories get their
// headers' times although entries were written in them afterwards.
func TestUnpackXattrsAndDirTimes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fs")
	assert.NilError(t, os.Mkdir(dir, 0o755))
	x := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m["SCHILY.xattr."+kv[i]] = kv[i+1]
		}
		return m
	}
	old, older := time.Unix(1000000000, 0), time.Unix(900000000, 0)
	raw := layerTar(t,
		entry{name: "d/", typ: tar.TypeDir, mode: 0o755, mtime: old, pax: x("user.dir", "1", "trusted.overlay.opaque", "y")},
		entry{name: "d/sub/", typ: tar.TypeDir, mode: 0o555, mtime: older},
		entry{name: "d/sub/f", mode: 0o444, data: []byte("f"), pax: x("user.mime", "text/plain", "user.overlay.redirect", "/etc", "security.capability", "\x01\x00\x00\x02", "security.selinux", "x")},
		entry{name: "d/g", data: []byte("g")},
	)
	st, err := unpackDir(dir, bytes.NewReader(raw), "", nil, false)
	assert.NilError(t, err)
	assert.Equal(t, st.XattrsSkipped, 4, "trusted.overlay.opaque, user.overlay.redirect, security.capability, security.selinux")

	get := func(p, name string) string {
		b := make([]byte, 256)
		n, err := unix.Lgetxattr(filepath.Join(dir, p), name, b)
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b[:n])
	}
	assert.Equal(t, get("d", "user.dir"), "1")
	assert.Equal(t, get("d/sub/f", "user.mime"), "text/plain")
	nodata := "<" + unix.ENODATA.Error() + ">"
	for _, n := range []string{"trusted.overlay.opaque"} {
		assert.Equal(t, get("d", n), nodata, n)
	}
	for _, n := range []string{"user.overlay.redirect", "security.capability", "security.selinux"} {
		assert.Equal(t, get("d/sub/f", n), nodata, n)
	}
	fi, err := os.Stat(filepath.Join(dir, "d/sub/f"))
	assert.NilError(t, err)
	assert.Equal(t, fi.Mode().Perm(), os.FileMode(0o444), "the mode is set after the attributes")

	for p, want := range map[string]time.Time{"d": old, "d/sub": older} {
		fi, err := os.Stat(filepath.Join(dir, p))
		assert.NilError(t, err)
		assert.Equal(t, fi.ModTime().Unix(), want.Unix(), p)
	}
}

// TestMergeLayers: the copy fallback's merge applies whiteouts, keeps
// modes, links and times, and replaces a directory by a file and back.
func TestMergeLayers(t *testing.T) {
	base := t.TempDir()
	var lowers []string
	for i, es := range [][]entry{
		{{name: "opt/", typ: tar.TypeDir, mode: 0o755, mtime: time.Unix(1000000000, 0)}, {name: "etc/gone", data: []byte("x")},
			{name: "bin/su", mode: 0o4755, data: []byte("su")}, {name: "bin/sh", typ: tar.TypeSymlink, link: "busybox"},
			{name: "d/x", data: []byte("x")}, {name: "f", data: []byte("file")}},
		{{name: "etc/.wh.gone"}, {name: "d"}, {name: "f/", typ: tar.TypeDir, mode: 0o700}, {name: "f/in", data: []byte("in")}},
	} {
		dir := filepath.Join(base, fmt.Sprint(i))
		assert.NilError(t, os.MkdirAll(dir, 0o755))
		_, err := unpackDir(dir, bytes.NewReader(layerTar(t, es...)), "", nil, false)
		assert.NilError(t, err)
		lowers = append(lowers, dir)
	}
	dst := filepath.Join(base, "root")
	assert.NilError(t, os.Mkdir(dst, 0o755))
	n, err := mergeLayers(dst, lowers, false)
	assert.NilError(t, err)
	assert.Equal(t, n, int64(len("xsuxfilein")))
	_, err = os.Lstat(filepath.Join(dst, "etc", "gone"))
	assert.Assert(t, os.IsNotExist(err), "whited out")
	fi, err := os.Stat(filepath.Join(dst, "bin", "su"))
	assert.NilError(t, err)
	assert.Equal(t, fi.Mode()&(os.ModeSetuid|0o777), os.ModeSetuid|0o755)
	l, _ := os.Readlink(filepath.Join(dst, "bin", "sh"))
	assert.Equal(t, l, "busybox")
	fi, err = os.Stat(filepath.Join(dst, "opt"))
	assert.NilError(t, err)
	assert.Equal(t, fi.ModTime().Unix(), int64(1000000000))
	b, err := os.ReadFile(filepath.Join(dst, "d"))
	assert.NilError(t, err, "the directory d became a file")
	assert.Equal(t, string(b), "")
	b, err = os.ReadFile(filepath.Join(dst, "f", "in"))
	assert.NilError(t, err, "the file f became a directory")
	assert.Equal(t, string(b), "in")
}

// TestDirTimesDoNotFollow: a directory's time is not set through a
// symlink that replaced it later in the layer: the host directory it
// points to keeps its time.
func TestDirTimesDoNotFollow(t *testing.T) {
	base := t.TempDir()
	host := filepath.Join(base, "host")
	assert.NilError(t, os.Mkdir(host, 0o755))
	before, err := os.Stat(host)
	assert.NilError(t, err)
	dir := filepath.Join(base, "fs")
	assert.NilError(t, os.Mkdir(dir, 0o755))
	raw := layerTar(t,
		entry{name: "d/", typ: tar.TypeDir, mode: 0o755, mtime: time.Unix(1000000000, 0)},
		entry{name: "d", typ: tar.TypeSymlink, link: host},
		entry{name: "e/", typ: tar.TypeDir, mode: 0o755, mtime: time.Unix(1000000000, 0), pax: map[string]string{"SCHILY.xattr.user.x": "1"}},
	)
	_, err = unpackDir(dir, bytes.NewReader(raw), "", nil, false)
	assert.NilError(t, err)
	after, err := os.Stat(host)
	assert.NilError(t, err)
	assert.Equal(t, after.ModTime(), before.ModTime())
	l, err := os.Readlink(filepath.Join(dir, "d"))
	assert.NilError(t, err)
	assert.Equal(t, l, host)
}
