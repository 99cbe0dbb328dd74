package tests

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// TestImageOverlayRefused: where the kernel refuses overlayfs over an
// image's layers, nsbox runs the image on a private copy of them and says
// so, with the cost and the fix, in one line. The refusal is provoked
// with the store inside two nested --tmp-overlay sandboxes: the layers
// are then on an overlay of an overlay, and the kernel stacks no third.
// The fix the line names (a store on tmpfs, here the nested sandbox's
// /tmp) then runs without the copy. A kept layer needs overlayfs: one
// line, exit 125.
func TestImageOverlayRefused(t *testing.T) {
	requireUnprivileged(t)
	// Not t.TempDir: the nested sandboxes have a /tmp of their own.
	base, err := os.MkdirTemp("/var/tmp", "nsbox-image-overlay-")
	assert.NilError(t, err)
	defer os.RemoveAll(base)
	dir, work := filepath.Join(base, "layout"), filepath.Join(base, "work")
	assert.NilError(t, os.Mkdir(work, 0o755))
	p, err := layout.Write(dir, empty.Index)
	assert.NilError(t, err)
	assert.NilError(t, p.AppendImage(markedImage(t, busyboxLayer(t), hostArch(), "nested")))
	ref := "oci:" + dir
	env := icmd.WithEnv(append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(work, "data"))...)

	nested := []string{nsboxBin, "run", "--tmp-overlay", work, "--", nsboxBin, "run", "--tmp-overlay", work, "--"}
	// Pulled first (the pull's own line apart), then run, twice (the
	// second from the probe's kept answer), writing to its copy.
	pullRun := []string{"sh", "-c", `"$0" image pull "$1" 2>/dev/null && for i in 1 2; do "$0" run --image "$1" -- sh -c 'cat /marker; echo w > /w; cat /w' || exit; done`, nsboxBin, ref}
	res := icmd.RunCmd(icmd.Command(nested[0], append(nested[1:], pullRun...)...), icmd.Dir(work), env)
	res.Assert(t, icmd.Expected{Out: "nestedw\nnestedw\n"})
	lines := strings.Split(strings.TrimSpace(res.Stderr()), "\n")
	assert.Check(t, is.Len(lines, 2), res.Stderr())
	for _, msg := range lines {
		assert.Check(t, is.Contains(msg, "nsbox: --image "+ref+": the kernel refuses overlayfs over layers on overlayfs in a user namespace: "))
		assert.Check(t, is.Contains(msg, ": running on a private copy of its layers instead ("))
		assert.Check(t, is.Contains(msg, "on every run; fix: set XDG_DATA_HOME to a directory on ext4, xfs, btrfs or tmpfs"))
	}
	// Nothing left of the copies once nothing runs on them.
	res = icmd.RunCmd(icmd.Command(nested[0], append(nested[1:], "sh", "-c", `"$0" image pull "$1" >/dev/null 2>&1 && "$0" run --image "$1" -- true 2>/dev/null; "$0" image prune >/dev/null; ls "$2"`, nsboxBin, ref, filepath.Join(work, "data", "nsbox", "images", "tmp"))...), icmd.Dir(work), env)
	res.Assert(t, icmd.Success)
	assert.Equal(t, strings.TrimSpace(res.Stdout()), "")

	// A kept layer needs overlayfs.
	keepRun := []string{"sh", "-c", `"$0" image pull "$1" 2>/dev/null && exec "$0" run --image "$1" --keep k -- true`, nsboxBin, ref}
	res = icmd.RunCmd(icmd.Command(nested[0], append(nested[1:], keepRun...)...), icmd.Dir(work), env)
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "--keep k: the kernel refuses overlayfs"})
	assert.Check(t, is.Equal(strings.Count(strings.TrimSpace(res.Stderr()), "\n"), 0), res.Stderr())

	// The fix: a store on tmpfs.
	res = icmd.RunCmd(icmd.Command(nested[0], append(append(nested[1:], "env", "XDG_DATA_HOME=/tmp/store"), "sh", "-c", `"$0" image pull "$1" 2>/dev/null && exec "$0" run --image "$1" -- cat /marker`, nsboxBin, ref)...), icmd.Dir(work), env)
	res.Assert(t, icmd.Expected{Out: "nested"})
	assert.Equal(t, res.Stderr(), "")
}

// TestImageCopyRoot: NSBOX_IMAGE_ROOT=copy runs the image on a private
// copy of its layers (the fallback where overlayfs is refused), with the
// image's owners kept (subordinate ids) and writes gone after the run.
func TestImageCopyRoot(t *testing.T) {
	data, work, _ := imageHome(t)
	host := startRegistry(t, nil)
	ref := host + "/copy:1"
	own := layerFrom(t, tarEntry{name: "home/app/", typ: tar.TypeDir, mode: 0o700, uid: 1000, gid: 1000},
		tarEntry{name: "home/app/secret", mode: 0o600, uid: 1000, gid: 1000, data: []byte("s3cret\n")},
		tarEntry{name: "etc/.wh.gone"})
	pushImage(t, ref, imageFrom(t, v1.Config{User: "app"}, hostArch(), busyboxLayer(t), own))
	env := append(os.Environ(), "XDG_DATA_HOME="+data, "NSBOX_IMAGE_ROOT=copy")
	run := func(args ...string) *icmd.Result {
		return icmd.RunCmd(icmd.Command(nsboxBin, args...), icmd.Dir(work), icmd.WithEnv(env...))
	}
	t.Cleanup(func() { run("image", "rm", ref) })
	run("image", "pull", ref).Assert(t, icmd.Success)
	res := run("run", "--image", ref, "--", "sh", "-c", "cat /home/app/secret; stat -c %u /home/app; test -e /etc/gone || echo gone; echo w > /home/app/w")
	res.Assert(t, icmd.Expected{Out: "s3cret\n1000\ngone\n"})
	assert.Check(t, is.Contains(res.Stderr(), "nsbox: --image "+ref+": NSBOX_IMAGE_ROOT=copy asks for a copy: running on a private copy of its layers instead ("))
	run("run", "--image", ref, "--", "test", "!", "-e", "/home/app/w").Assert(t, icmd.Success)
	run("image", "prune").Assert(t, icmd.Success)
	ents, err := os.ReadDir(filepath.Join(data, "nsbox", "images", "tmp"))
	assert.NilError(t, err)
	assert.Check(t, is.Len(ents, 0), "the copies are gone")
}
