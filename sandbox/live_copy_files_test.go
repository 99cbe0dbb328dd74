package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// TestCopyTreeWithWorkers copies a tree of many files, as CopyIn and
// CopyOut do (the walk by descriptor, the data on the workers), and
// checks every file's data, mode and times, and the directories' too:
// set after their entries, they must not be moved by the workers'
// writes.
func TestCopyTreeWithWorkers(t *testing.T) {
	src := filepath.Join(t.TempDir(), "tree")
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for d := range 3 {
		dir := filepath.Join(src, fmt.Sprintf("d%d", d), "sub")
		assert.NilError(t, os.MkdirAll(dir, 0o755))
		for f := range 40 {
			p := filepath.Join(dir, fmt.Sprintf("f%d", f))
			data := bytes.Repeat([]byte{byte(f)}, f*1000+d)
			assert.NilError(t, os.WriteFile(p, data, 0o640))
			assert.NilError(t, os.Chmod(p, os.FileMode(0o600|f%8<<3)))
			assert.NilError(t, os.Chtimes(p, old, old.Add(time.Duration(f)*time.Hour)))
		}
		assert.NilError(t, os.Symlink("sub/f1", filepath.Join(src, fmt.Sprintf("d%d", d), "link")))
		assert.NilError(t, os.Chtimes(dir, old, old))
	}
	assert.NilError(t, os.Chmod(filepath.Join(src, "d1"), 0o555))
	t.Cleanup(func() { os.Chmod(filepath.Join(src, "d1"), 0o755) })

	dst := t.TempDir()
	assert.NilError(t, copyTree(t, src, dst))
	t.Cleanup(func() { os.Chmod(filepath.Join(dst, "tree", "d1"), 0o755) })

	n := 0
	err := filepath.Walk(src, func(p string, want os.FileInfo, err error) error {
		assert.NilError(t, err)
		rel, _ := filepath.Rel(src, p)
		got, err := os.Lstat(filepath.Join(dst, "tree", rel))
		assert.NilError(t, err, rel)
		assert.Check(t, is.Equal(got.Mode(), want.Mode()), rel)
		assert.Check(t, got.ModTime().Equal(want.ModTime()), "%s: %v, want %v", rel, got.ModTime(), want.ModTime())
		if want.Mode().IsRegular() {
			a, _ := os.ReadFile(p)
			b, _ := os.ReadFile(filepath.Join(dst, "tree", rel))
			assert.Check(t, bytes.Equal(a, b), rel)
			n++
		}
		return nil
	})
	assert.NilError(t, err)
	assert.Check(t, is.Equal(n, 120))
}

// TestCopyFirstError: a copy that fails on a worker is the copy's
// error, and the others stop.
func TestCopyFirstError(t *testing.T) {
	src := filepath.Join(t.TempDir(), "tree")
	dst := t.TempDir()
	for d := range 8 {
		for f := range 40 {
			p := filepath.Join(src, fmt.Sprintf("d%d", d), fmt.Sprintf("f%d", f))
			assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			assert.NilError(t, os.WriteFile(p, []byte(p), 0o644))
		}
	}
	// A directory where the copy of d5/f17 goes: creating it fails.
	assert.NilError(t, os.MkdirAll(filepath.Join(dst, "tree", "d5", "f17"), 0o755))
	err := copyTree(t, src, dst)
	assert.Check(t, is.ErrorContains(err, "create "+dst+"/tree/d5/f17: "))
}

// copyTree copies the tree src into the directory dst as tree, as CopyIn
// and CopyOut do, with 3 workers beside the caller.
func copyTree(t *testing.T, src, dst string) error {
	fd, err := unix.Open(src, unix.O_PATH|unix.O_CLOEXEC, 0)
	assert.NilError(t, err)
	defer unix.Close(fd)
	ddir, err := unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	assert.NilError(t, err)
	defer unix.Close(ddir)
	return newCopier(src, dst+"/tree", 3).copyAll(fd, ddir, "tree", src)
}

// TestCopyData copies files the ways copyData has: within one
// filesystem (copy_file_range), into a tmpfs from another filesystem
// (copy_file_range fails with EXDEV: sendfile), from a procfs file
// whose size says 0 (copy_file_range moves nothing), and with read and
// write, the last resort; each from an offset, as the walk hands over.
func TestCopyData(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 300_000) // 4.6 MiB: more than one sendfile call's pipe
	src := filepath.Join(t.TempDir(), "src")
	assert.NilError(t, os.WriteFile(src, data, 0o600))
	shm := "/dev/shm"
	var fs unix.Statfs_t
	if unix.Statfs(shm, &fs) != nil || fs.Type != unix.TMPFS_MAGIC {
		shm = ""
	}
	cases := []struct {
		name, from, to string
		copy           func(dst, src int) error
	}{
		{"same filesystem", src, filepath.Join(t.TempDir(), "dst"), copyData},
		{"into tmpfs", src, shm, copyData},
		{"procfs", "/proc/self/mountinfo", filepath.Join(t.TempDir(), "dst"), copyData},
		{"read and write", src, filepath.Join(t.TempDir(), "dst"), readWrite},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			to := tc.to
			if to == "" {
				t.Skip("no tmpfs at /dev/shm")
			}
			if to == shm {
				d, err := os.MkdirTemp(shm, "nsbox-copydata-")
				assert.NilError(t, err)
				t.Cleanup(func() { os.RemoveAll(d) })
				to = filepath.Join(d, "dst")
			}
			want, err := os.ReadFile(tc.from)
			assert.NilError(t, err)
			assert.Assert(t, len(want) > 100)
			s, err := unix.Open(tc.from, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			assert.NilError(t, err)
			defer unix.Close(s)
			d, err := unix.Open(to, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
			assert.NilError(t, err)
			defer unix.Close(d)
			_, err = unix.Seek(s, 7, 0)
			assert.NilError(t, err)
			assert.NilError(t, tc.copy(d, s))
			got, err := os.ReadFile(to)
			assert.NilError(t, err)
			if tc.from != src { // procfs: read twice, the text may differ
				assert.Check(t, len(got) > 0)
				return
			}
			assert.Check(t, bytes.Equal(got, want[7:]), "%d bytes, want %d", len(got), len(want)-7)
		})
	}
}
