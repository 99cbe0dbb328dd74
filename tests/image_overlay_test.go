package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// TestImageOverlayRefused: where the kernel refuses overlayfs over an
// image's layers, nsbox says so in one line naming the image, the
// filesystem the layers are on, the errno and the fix, and exits 125. The
// refusal is provoked with the store inside two nested --tmp-overlay
// sandboxes: the layers are then on an overlay of an overlay, and the
// kernel stacks no third. The fix the line names (a store on tmpfs, here
// the nested sandbox's /tmp) then works in the same place.
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
	// Pulled first (the pull's own line apart), then run.
	pullRun := []string{"sh", "-c", `"$0" image pull "$1" 2>/dev/null && exec "$0" run --image "$1" -- cat /marker`, nsboxBin, ref}
	res := icmd.RunCmd(icmd.Command(nested[0], append(nested[1:], pullRun...)...), icmd.Dir(work), env)
	res.Assert(t, icmd.Expected{ExitCode: 125})
	msg := strings.TrimSpace(res.Stderr())
	assert.Check(t, is.Equal(strings.Count(msg, "\n"), 0), "one line: %s", msg)
	assert.Check(t, is.Contains(msg, "--image "+ref+": mount overlayfs over 2 layers on overlayfs: Invalid argument; fix: "))
	assert.Check(t, is.Contains(msg, "the kernel stacks at most two"))
	assert.Check(t, is.Contains(msg, "set XDG_DATA_HOME to a directory on ext4, xfs, btrfs or tmpfs"))

	// The fix: a store on tmpfs.
	res = icmd.RunCmd(icmd.Command(nested[0], append(append(nested[1:], "env", "XDG_DATA_HOME=/tmp/store"), pullRun...)...), icmd.Dir(work), env)
	res.Assert(t, icmd.Expected{Out: "nested"})
}
