package tests

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// TestImageKeep: --keep DIR keeps an image run's writes outside the
// current directory for the next run with DIR, as the caller's files in
// DIR/upper; without it they vanish. A DIR kept for another image, a DIR
// in the current directory or in another writable bind (the sandbox could
// swap upper/ for a symlink) and --keep without --image are refused with
// exit 125.
func TestImageKeep(t *testing.T) {
	_, work, ops := imageHome(t)
	base := filepath.Dir(work)
	one, two := filepath.Join(base, "one"), filepath.Join(base, "two")
	for _, d := range []struct {
		dir, marker string
	}{{one, "one"}, {two, "two"}} {
		p, err := layout.Write(d.dir, empty.Index)
		assert.NilError(t, err)
		assert.NilError(t, p.AppendImage(markedImage(t, busyboxLayer(t), hostArch(), d.marker)))
	}
	keep := filepath.Join(base, "keep")
	write := []string{"sh", "-c", "cat /root/n 2>/dev/null; mkdir -p /root && echo kept >> /root/n && cat /marker"}
	for _, want := range []string{"one", "kept\none"} {
		res := icmd.RunCmd(icmd.Command(nsboxBin, append([]string{"run", "--image", "oci:" + one, "--keep", keep, "--"}, write...)...), ops...)
		res.Assert(t, icmd.Success)
		assert.Check(t, is.Equal(strings.TrimSpace(res.Stdout()), want))
	}
	b, err := os.ReadFile(filepath.Join(keep, "upper", "root", "n"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(b), "kept\nkept\n"))
	st, err := os.Stat(filepath.Join(keep, "upper", "root", "n"))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(st.Sys().(*syscall.Stat_t).Uid, uint32(os.Getuid())), "root inside is the caller")

	// Without --keep the layer is thrown away.
	res := icmd.RunCmd(icmd.Command(nsboxBin, append([]string{"run", "--image", "oci:" + one, "--"}, write...)...), ops...)
	res.Assert(t, icmd.Success)
	assert.Check(t, is.Equal(strings.TrimSpace(res.Stdout()), "one"))

	res = icmd.RunCmd(icmd.Command(nsboxBin, "run", "--image", "oci:"+two, "--keep", keep, "--", "true"), ops...)
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "--keep " + keep + ": holds the writes of image "})
	assert.Check(t, is.Contains(res.Stderr(), "fix: another DIR for this image"))
	res = icmd.RunCmd(icmd.Command(nsboxBin, "run", "--image", "oci:"+one, "--keep", filepath.Join(work, "k"), "--", "true"), ops...)
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "is bound writable into the sandbox (the current directory "})
	_, err = os.Stat(filepath.Join(work, "k"))
	assert.Check(t, os.IsNotExist(err), "nothing left behind")
	bound := filepath.Join(base, "bound")
	assert.NilError(t, os.Mkdir(bound, 0o755))
	res = icmd.RunCmd(icmd.Command(nsboxBin, "run", "--image", "oci:"+one, "--keep", filepath.Join(bound, "k"), "--bind", bound, "--", "true"), ops...)
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "is bound writable into the sandbox"})
	_, err = os.Stat(filepath.Join(bound, "k"))
	assert.Check(t, os.IsNotExist(err), "nothing left behind")
	res = icmd.RunCmd(icmd.Command(nsboxBin, "run", "--keep", keep, "--", "true"), ops...)
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "--keep: only with --image"})
}
