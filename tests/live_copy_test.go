package tests

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

func TestLiveCopy(t *testing.T) {
	s := newStateEnv(t)
	home := os.Getenv("HOME")
	// On the host, a "secret" the sandbox's symlinks name.
	secret := t.TempDir()
	assert.NilError(t, os.WriteFile(filepath.Join(secret, "key"), []byte("HOST SECRET\n"), 0o600))
	s.detached("c", "--", "sh", "-c", "mkdir -p "+home+"/.ssh /tmp/real; echo sandbox-key > "+home+"/.ssh/key; "+
		"ln -s "+home+"/.ssh /tmp/ssh; ln -s "+secret+" /tmp/hostsecret; ln -s /tmp/real /tmp/link; mkfifo /tmp/real/fifo; exec sleep 600")
	waitFor(t, func() bool { return s.run("exec", "c", "--", "test", "-p", "/tmp/real/fifo").ExitCode == 0 }, "the setup inside")

	// In: a tree, modes and times kept; DEST a symlink inside stays inside.
	src := filepath.Join(t.TempDir(), "tree")
	assert.NilError(t, os.MkdirAll(filepath.Join(src, "a", "b"), 0o750))
	assert.NilError(t, os.WriteFile(filepath.Join(src, "a", "b", "f"), []byte("data\n"), 0o640))
	assert.NilError(t, os.Symlink("../../outside", filepath.Join(src, "a", "l")))
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	assert.NilError(t, os.Chtimes(filepath.Join(src, "a", "b", "f"), old, old))
	s.run("cp", src, "c:/tmp/link").Assert(t, icmd.Success)
	res := s.run("exec", "c", "--", "sh", "-c", "stat -c '%a %Y' /tmp/real/tree/a/b/f /tmp/real/tree/a; cat /tmp/real/tree/a/b/f; readlink /tmp/real/tree/a/l")
	res.Assert(t, icmd.Expected{Out: "640 " + strconv.FormatInt(old.Unix(), 10) + "\n750 "})
	assert.Check(t, is.Contains(res.Stdout(), "data\n../../outside\n"))

	// Out: the tree back, and the FIFO skipped with a note.
	out := t.TempDir()
	res = s.run("cp", "c:/tmp/real", out)
	res.Assert(t, icmd.Expected{Err: "nsbox: note: /tmp/real/fifo not copied: not a regular file, directory or symlink"})
	b, err := os.ReadFile(filepath.Join(out, "real", "tree", "a", "b", "f"))
	assert.NilError(t, err)
	assert.Equal(t, string(b), "data\n")
	st, err := os.Stat(filepath.Join(out, "real", "tree", "a", "b", "f"))
	assert.NilError(t, err)
	assert.Check(t, st.ModTime().Equal(old), st.ModTime())
	assert.Check(t, is.Equal(st.Mode().Perm(), os.FileMode(0o640)))
	l, err := os.Readlink(filepath.Join(out, "real", "tree", "a", "l"))
	assert.NilError(t, err)
	assert.Equal(t, l, "../../outside")

	// A symlink to the caller's home copies the sandbox's view of it; one
	// to a host path the sandbox cannot see copies nothing.
	s.run("cp", "c:/tmp/ssh", filepath.Join(out, "ssh")).Assert(t, icmd.Success)
	b, err = os.ReadFile(filepath.Join(out, "ssh", "key"))
	assert.NilError(t, err)
	assert.Equal(t, string(b), "sandbox-key\n")
	res = s.run("cp", "c:/tmp/hostsecret", filepath.Join(out, "stolen"))
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "no such file or directory"})
	assert.Check(t, is.Equal(strings.Count(res.Stderr(), "\n"), 1), res.Stderr())
	_, err = os.Stat(filepath.Join(out, "stolen"))
	assert.Check(t, os.IsNotExist(err))

	// Tar out, to stdout; tar in, with a hostile name refused.
	res = s.run("cp", "c:/tmp/real/tree", "-")
	res.Assert(t, icmd.Success)
	names := tarNames(t, res.Stdout())
	slices.Sort(names)
	assert.DeepEqual(t, names, []string{"tree/", "tree/a/", "tree/a/b/", "tree/a/b/f", "tree/a/l"})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "/abs/f", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg}))
	tw.Write([]byte("ok"))
	tw.Close()
	icmd.RunCmd(icmd.Command(nsboxBin, "cp", "-", "c:/tmp/real"), icmd.WithEnv(s.env()...), icmd.WithStdin(&buf)).Assert(t, icmd.Success)
	s.run("exec", "c", "--", "cat", "/tmp/real/abs/f").Assert(t, icmd.Expected{Out: "ok"})
	buf.Reset()
	tw = tar.NewWriter(&buf)
	assert.NilError(t, tw.WriteHeader(&tar.Header{Name: "../../escape", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg}))
	tw.Write([]byte("no"))
	tw.Close()
	res = icmd.RunCmd(icmd.Command(nsboxBin, "cp", "-", "c:/tmp/real"), icmd.WithEnv(s.env()...), icmd.WithStdin(&buf))
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: `tar entry "../../escape": names a parent directory: refused`})
	s.run("exec", "c", "--", "test", "-e", "/tmp/escape").Assert(t, icmd.Expected{ExitCode: 1})

	// One side must be a sandbox's; an ended sandbox is one line.
	s.run("cp", src, out).Assert(t, icmd.Expected{ExitCode: 125, Err: "name the sandbox on exactly one side"})
	s.run("kill", "c").Assert(t, icmd.Success)
	res = s.run("cp", "c:/tmp/real", out)
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: `sandbox "c": no such sandbox`})
}

// A tree that a process inside keeps replacing, with a directory turned
// into a symlink to / and back: each copy out succeeds or fails with one
// line, and nothing outside the tree is ever copied.
func TestLiveCopyChangingTree(t *testing.T) {
	s := newStateEnv(t)
	s.detached("ch", "--", "sh", "-c", "mkdir -p /tmp/t; while :; do mkdir -p /tmp/t/d/e; touch /tmp/t/d/e/f1 /tmp/t/d/e/f2 /tmp/t/d/f3; "+
		"rm -rf /tmp/t/d; ln -s / /tmp/t/d; rm /tmp/t/d; done")
	waitFor(t, func() bool { return s.run("exec", "ch", "--", "test", "-d", "/tmp/t").ExitCode == 0 }, "the churn")
	failed := 0
	for i := 0; i < 30; i++ {
		out := t.TempDir()
		res := s.run("cp", "ch:/tmp/t", out)
		if res.ExitCode != 0 {
			failed++
			assert.Check(t, is.Equal(res.ExitCode, 125), res.Combined())
			assert.Check(t, is.Equal(strings.Count(res.Stderr(), "\n"), 1), res.Stderr())
			assert.Check(t, is.Contains(res.Stderr(), "nsbox: sandbox ch: copy /tmp/t out of the sandbox: "), res.Stderr())
		}
		filepath.Walk(out, func(p string, info os.FileInfo, err error) error {
			if err == nil {
				rel, _ := filepath.Rel(out, p)
				ok := rel == "." || rel == "t" || strings.HasPrefix(rel, "t/d")
				assert.Check(t, ok && !strings.Contains(rel, "etc") && !strings.Contains(rel, "proc"), "copied %s", rel)
			}
			return nil
		})
	}
	t.Logf("%d of 30 copies met a change", failed)
}

func tarNames(t *testing.T, s string) []string {
	tr := tar.NewReader(strings.NewReader(s))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		assert.NilError(t, err)
		names = append(names, h.Name)
	}
}

// A sandbox that ends while each operation runs: every one returns
// success or one line, and leaves nothing behind.
func TestLiveEndsMidway(t *testing.T) {
	s := newStateEnv(t)
	src := filepath.Join(t.TempDir(), "big")
	assert.NilError(t, os.MkdirAll(src, 0o755))
	for i := 0; i < 64; i++ {
		assert.NilError(t, os.WriteFile(filepath.Join(src, "f"+strconv.Itoa(i)), bytes.Repeat([]byte{'x'}, 1<<20), 0o644))
	}
	ops := [][]string{{"cp", src, "e:/tmp"}, {"cp", "e:/proc/self", t.TempDir()}, {"mount", "e", src, "/tmp/m", "--mkdir"}, {"pause", "e"}, {"connect", "e", "9"}}
	for _, op := range ops {
		s.detached("e", "--", "sh", "-c", "for i in $(seq 50); do sleep 600 & done; exec sleep 600")
		cmd := icmd.Command(nsboxBin, op...)
		res := icmd.StartCmd(icmd.Cmd{Command: cmd.Command, Env: s.env()})
		time.Sleep(5 * time.Millisecond)
		s.run("kill", "e").Assert(t, icmd.Success)
		res = icmd.WaitOnCmd(30*time.Second, res)
		if res.ExitCode != 0 {
			assert.Check(t, is.Equal(res.ExitCode, 125), "%v: %s", op, res.Combined())
			assert.Check(t, is.Equal(strings.Count(res.Stderr(), "\n"), 1), "%v: %s", op, res.Stderr())
			assert.Check(t, !strings.Contains(res.Stderr(), "panic"), res.Stderr())
		}
		assert.Check(t, is.Len(s.entries(), 0), "%v", op)
	}
}
