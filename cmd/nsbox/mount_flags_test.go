package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsbox/nsbox/internal/hostdirs"
	"github.com/nsbox/nsbox/sandbox"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestParseMountFlag(t *testing.T) {
	wd, err := os.Getwd()
	assert.NilError(t, err)
	for _, tc := range []struct {
		name, flag, arg string
		want            sandbox.Mount
		err             string
	}{
		{name: "bind default dst", flag: "bind", arg: "/a",
			want: sandbox.Mount{Type: sandbox.MountBind, Source: "/a", Destination: "/a"}},
		{name: "ro-bind-try relative src", flag: "ro-bind-try", arg: "x:/y",
			want: sandbox.Mount{Type: sandbox.MountBind, Source: filepath.Join(wd, "x"), Destination: "/y", ReadOnly: true, Optional: true}},
		{name: "dev-bind", flag: "dev-bind", arg: "/dev/kvm",
			want: sandbox.Mount{Type: sandbox.MountBind, Source: "/dev/kvm", Destination: "/dev/kvm", Devices: true}},
		{name: "tmpfs options", flag: "tmpfs", arg: "/run:size=64m,mode=1777",
			want: sandbox.Mount{Type: sandbox.MountTmpfs, Destination: "/run", Size: 64 << 20, Mode: 0o777 | fs.ModeSticky}},
		{name: "symlink", flag: "symlink", arg: "usr/bin:/bin",
			want: sandbox.Mount{Type: sandbox.MountSymlink, Source: "usr/bin", Destination: "/bin"}},
		{name: "chmod", flag: "chmod", arg: "0700:/home",
			want: sandbox.Mount{Type: sandbox.MountChmod, Destination: "/home", Mode: 0o700}},
		{name: "overlay two lowers", flag: "overlay", arg: "/l1:/l2:/u:/w:/d",
			want: sandbox.Mount{Type: sandbox.MountOverlay, Lower: []string{"/l1", "/l2"}, Upper: "/u", Work: "/w", Destination: "/d"}},
		{name: "tmp-overlay", flag: "tmp-overlay", arg: "/usr", want: sandbox.Mount{Type: sandbox.MountTmpOverlay, Destination: "/usr"}},
		{name: "relative destination", flag: "tmpfs", arg: "run", err: "not absolute"},
		{name: "bad size", flag: "tmpfs", arg: "/run:size=-1", err: "size"},
		{name: "bad mode", flag: "chmod", arg: "rwx:/a", err: "not octal"},
		{name: "short overlay", flag: "overlay", arg: "/a:/b:/c", err: "LOWER"},
		{name: "symlink without dst", flag: "symlink", arg: "/a", err: "TARGET:DST"},
		{name: "empty", flag: "bind", arg: "", err: "empty"},
		{name: "missing file source", flag: "file", arg: "/nsbox-no-such-file:/etc/x", err: "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := parseMountFlag(tc.flag, tc.arg)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			m.Flag = ""
			assert.DeepEqual(t, m, tc.want)
		})
	}
}

func TestParseMountOption(t *testing.T) {
	m, err := parseMountOption(`type=bind,"source=/a,b",target=/c:d,readonly,optional=false`)
	assert.NilError(t, err)
	m.Flag = ""
	assert.DeepEqual(t, m, sandbox.Mount{Type: sandbox.MountBind, Source: "/a,b", Destination: "/c:d", ReadOnly: true})
	m, err = parseMountOption("type=overlay,lower=/l:1,lower=/l2,upper=/u,work=/w,target=/o")
	assert.NilError(t, err)
	assert.DeepEqual(t, m.Lower, []string{"/l:1", "/l2"})
	for _, bad := range []string{"", "type=nfs,target=/x", "type=bind", "type=bind,source=/a,target=/b,colour=red",
		"type=tmpfs,target=/t,readonly=maybe", `type=bind,"source=/a`, "type=file,target=/x"} {
		_, err := parseMountOption(bad)
		assert.Check(t, err != nil, "accepted %q", bad)
	}
}

// The file content comes from a file or from stdin.
func TestFileFlag(t *testing.T) {
	src := filepath.Join(t.TempDir(), "f")
	assert.NilError(t, os.WriteFile(src, []byte("a\x00b"), 0o600))
	f := newRunFlags()
	f.mounts.stdin = strings.NewReader("from stdin")
	assert.NilError(t, f.fs.Parse([]string{"--file", src + ":/etc/a", "--file", "-:/etc/b", "--", "true"}))
	assert.Equal(t, len(f.mounts.ops), 2)
	assert.Equal(t, string(f.mounts.ops[0].Data), "a\x00b")
	assert.Equal(t, string(f.mounts.ops[1].Data), "from stdin")
}

// Ops keep command-line order; ops on / go right after the root, before
// the default /dev, /proc, /tmp and working directory.
func TestMountOrder(t *testing.T) {
	f := newRunFlags()
	assert.NilError(t, f.fs.Parse([]string{"--tmpfs", "/a", "--tmp-overlay", "/", "--dir", "/b", "--", "true"}))
	spec, _, err := f.spec(f.fs.Args())
	assert.NilError(t, err)
	var got []string
	for _, m := range spec.Mounts {
		got = append(got, string(m.Type)+" "+m.Destination)
	}
	wd, _ := os.Getwd()
	view, _ := sandbox.View{Cwd: wd, Home: hostdirs.UserHome(), RuntimeDir: os.Getenv("XDG_RUNTIME_DIR")}.Mounts()
	want := []string{"bind /", "tmp-overlay /"}
	for _, m := range view[1:] {
		want = append(want, string(m.Type)+" "+m.Destination)
	}
	assert.DeepEqual(t, got, append(want, "tmpfs /a", "dir /b"))

	f = newRunFlags()
	assert.NilError(t, f.fs.Parse([]string{"--empty", "--dir", "/x", "--", "true"}))
	spec, _, err = f.spec(f.fs.Args())
	assert.NilError(t, err)
	assert.Equal(t, len(spec.Mounts), 1)

	f = newRunFlags()
	assert.NilError(t, f.fs.Parse([]string{"--share", "mnt", "--", "true"}))
	spec, _, err = f.spec(f.fs.Args())
	assert.NilError(t, err)
	assert.Check(t, spec.Mounts == nil, "a shared mount namespace keeps the host's tree")

	f = newRunFlags()
	assert.NilError(t, f.fs.Parse([]string{"--ro-bind", "/nsbox-missing", "--", "true"}))
	_, _, err = f.spec(f.fs.Args())
	assert.Check(t, is.ErrorContains(err, "--ro-bind /nsbox-missing: source does not exist"))
}

func FuzzParseMountFlag(f *testing.F) {
	for _, s := range []string{"/a", "/a:/b", "x:/y", "/run:size=64m,mode=1777", "0700:/x", "/l1:/l2:/u:/w:/d", ":", "::::", "/t:size=9999999999999g"} {
		for _, name := range []string{"bind", "tmpfs", "chmod", "overlay", "symlink", "dir"} {
			f.Add(name, s)
		}
	}
	f.Fuzz(func(t *testing.T, name, arg string) {
		m, err := parseMountFlag(name, arg)
		if err != nil {
			return
		}
		if !filepath.IsAbs(m.Destination) {
			t.Fatalf("accepted relative destination %q from --%s %q", m.Destination, name, arg)
		}
		if m.Size < 0 {
			t.Fatalf("negative size from %q", arg)
		}
	})
}

func FuzzParseMountOption(f *testing.F) {
	for _, s := range []string{"type=bind,source=/a,target=/b,readonly", `type=tmpfs,"target=/a,b",size=1m`,
		"type=overlay,lower=/a,lower=/b,upper=/u,work=/w,target=/o", `"`, "type=,", "a=b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		m, err := parseMountOption(arg)
		if err != nil {
			return
		}
		if !filepath.IsAbs(m.Destination) || m.Type == "" {
			t.Fatalf("accepted %+v from %q", m, arg)
		}
	})
}
