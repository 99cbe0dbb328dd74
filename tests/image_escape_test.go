package tests

import (
	"archive/tar"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// TestImageHostileLayers: a layer is untrusted input that nsbox unpacks
// on the host. Each attack targets a victim file beside the store (five
// levels above a layer's directory) or a host file by absolute path; the
// host is checked from outside: the victim's content and link count, and
// nothing new beside the store.
func TestImageHostileLayers(t *testing.T) {
	data, _, ops := imageHome(t)
	host := startRegistry(t, nil)
	assert.NilError(t, os.MkdirAll(data, 0o755))
	victim := filepath.Join(data, "victim")
	assert.NilError(t, os.WriteFile(victim, []byte("host\n"), 0o644))
	up := "../../../../../" // from layers/.new-*/fs to data/
	base := busyboxLayer(t)
	for _, tc := range []struct {
		name    string
		entries []tarEntry
		err     string // "" when the layer is harmless and runs
	}{
		{"dotdot name", []tarEntry{{name: up + "victim", data: []byte("pwned")}}, "climbs out of the layer"},
		{"symlink then write through it", []tarEntry{{name: "esc", typ: tar.TypeSymlink, link: up}, {name: "esc/victim", data: []byte("pwned")}}, "a layer may not write through it"},
		{"absolute symlink then write", []tarEntry{{name: "esc", typ: tar.TypeSymlink, link: data}, {name: "esc/victim", data: []byte("pwned")}}, "a layer may not write through it"},
		{"hard link outside", []tarEntry{{name: "h", typ: tar.TypeLink, link: up + "victim"}}, "outside the layer"},
		{"hard link to a host file", []tarEntry{{name: "h", typ: tar.TypeLink, link: victim}}, "hard link target"},
		{"hard link through a symlink", []tarEntry{{name: "esc", typ: tar.TypeSymlink, link: data}, {name: "h", typ: tar.TypeLink, link: "esc/victim"}}, "hard link target"},
		{"absolute name", []tarEntry{{name: victim, data: []byte("inside")}}, ""},
		{"device node", []tarEntry{{name: "dev/sda", typ: tar.TypeBlock}, {name: "dev/mem", typ: tar.TypeChar}}, ""},
		{"zeros", []tarEntry{{name: "big", data: make([]byte, 64<<20)}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := fmt.Sprintf("%s/hostile:%d", host, rand.IntN(1<<30))
			pushImage(t, ref, imageFrom(t, v1.Config{Cmd: []string{"echo", "ran"}}, hostArch(), base, layerFrom(t, tc.entries...)))
			res := nsboxWith([]string{"run", "--image", ref}, ops...)
			if tc.err != "" {
				res.Assert(t, icmd.Expected{ExitCode: 125, Err: tc.err})
			} else {
				res.Assert(t, icmd.Expected{Out: "ran"})
			}
			b, err := os.ReadFile(victim)
			assert.NilError(t, err)
			assert.Equal(t, string(b), "host\n")
			st, err := os.Stat(victim)
			assert.NilError(t, err)
			assert.Equal(t, st.Sys().(*syscall.Stat_t).Nlink, uint64(1), "no hard link to the victim")
			ents, _ := os.ReadDir(data)
			assert.Equal(t, len(ents), 2, "only nsbox/ and the victim beside each other")
			news, _ := filepath.Glob(filepath.Join(data, "nsbox", "images", "layers", ".new-*"))
			assert.Check(t, is.Len(news, 0), "a failed pull leaves nothing")
		})
	}
	// The zeros are stored as a hole, the devices skipped with a note.
	var sizes []string
	filepath.Walk(filepath.Join(data, "nsbox", "images", "layers"), func(p string, st os.FileInfo, err error) error {
		if err == nil && st.Name() == "big" {
			sizes = append(sizes, fmt.Sprint(st.Sys().(*syscall.Stat_t).Blocks))
		}
		if err == nil && (st.Name() == "sda" || st.Name() == "mem") {
			t.Errorf("device node stored: %s", p)
		}
		return nil
	})
	assert.DeepEqual(t, sizes, []string{"0"})
}

// TestImageRemoveInUse: image rm refuses an image a sandbox runs (also
// once the launcher has handed the sandbox to the small supervisor) and
// removes it once the sandbox ended.
func TestImageRemoveInUse(t *testing.T) {
	data, work, _ := imageHome(t)
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	assert.NilError(t, err)
	assert.NilError(t, p.AppendImage(markedImage(t, busyboxLayer(t), hostArch(), "x")))
	// A registry image is the one rm names: a local one is read again on
	// each use, but it is held the same way.
	ref := "oci:" + dir
	arg := fmt.Sprintf("%d.%d", 1000+rand.IntN(1000), rand.IntN(1000000))
	cmd := exec.Command(nsboxBin, "run", "--image", ref, "--", "sleep", arg)
	cmd.Dir, cmd.Env = work, append(os.Environ(), "XDG_DATA_HOME="+data)
	assert.NilError(t, cmd.Start())
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	waitForProcess(t, "sleep "+arg)
	time.Sleep(300 * time.Millisecond) // past the hand-off (handOffAfter)
	env := icmd.WithEnv(append(os.Environ(), "XDG_DATA_HOME="+data)...)
	res := icmd.RunCmd(icmd.Command(nsboxBin, "image", "rm", ref), env)
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "in use by a running sandbox; fix: end the sandbox first"})
	res = icmd.RunCmd(icmd.Command(nsboxBin, "image", "prune"), env)
	res.Assert(t, icmd.Expected{Out: "0B freed"})

	cmd.Process.Signal(syscall.SIGTERM)
	pid := findProcess("sleep " + arg)
	if pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	cmd.Wait()
	res = icmd.RunCmd(icmd.Command(nsboxBin, "image", "rm", ref), env)
	res.Assert(t, icmd.Success)
	layers, _ := filepath.Glob(filepath.Join(data, "nsbox", "images", "layers", "*", "fs"))
	assert.Check(t, is.Len(layers, 0))
	res = icmd.RunCmd(icmd.Command(nsboxBin, "image", "ls"), env)
	res.Assert(t, icmd.Success)
	assert.Check(t, !strings.Contains(res.Stdout(), dir))
}

// TestImageNested: nsbox run --image inside a sandbox (the store on the
// sandbox's tmpfs, the layers stacked by the inner sandbox's overlay,
// whiteouts made in a user namespace).
func TestImageNested(t *testing.T) {
	_, _, ops := imageHome(t)
	host := startRegistry(t, nil)
	top := layerFrom(t, tarEntry{name: "etc/.wh.gone"}, tarEntry{name: "opt/.wh..wh..opq"}, tarEntry{name: "opt/c", data: []byte("c")})
	pushImage(t, host+"/nested:1", imageFrom(t, v1.Config{}, hostArch(), busyboxLayer(t), top))
	res := nsboxWith([]string{"run", "--share", "net", "--setenv", "XDG_DATA_HOME=/tmp/store", "--",
		nsboxBin, "run", "--image", host + "/nested:1", "--", "sh", "-c", "ls /opt; test -e /etc/gone || echo gone"}, ops...)
	res.Assert(t, icmd.Expected{Out: "c\ngone\n"})
}
