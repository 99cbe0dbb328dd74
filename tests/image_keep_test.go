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

// TestImageKeepNamed: --keep NAME keeps the writable layer in the image
// store: there again on the next run, listed by image ls, one sandbox
// at a time, removed by image rm --keep (not while in use) and by prune
// once its image is gone.
func TestImageKeepNamed(t *testing.T) {
	data, work, _ := imageHome(t)
	base := filepath.Dir(work)
	one, two := filepath.Join(base, "one"), filepath.Join(base, "two")
	for _, d := range []struct{ dir, marker string }{{one, "one"}, {two, "two"}} {
		p, err := layout.Write(d.dir, empty.Index)
		assert.NilError(t, err)
		assert.NilError(t, p.AppendImage(markedImage(t, busyboxLayer(t), hostArch(), d.marker)))
	}
	env := append(os.Environ(), "XDG_DATA_HOME="+data, "XDG_RUNTIME_DIR="+t.TempDir())
	run := func(args ...string) *icmd.Result {
		return icmd.RunCmd(icmd.Command(nsboxBin, args...), icmd.Dir(work), icmd.WithEnv(env...))
	}
	write := []string{"sh", "-c", "mkdir -p /root && echo x >> /root/n; cat /root/n"}
	run(append([]string{"run", "--image", "oci:" + one, "--keep", "dev", "--"}, write...)...).Assert(t, icmd.Expected{Out: "x\n"})
	run(append([]string{"run", "--image", "oci:" + one, "--keep", "dev", "--"}, write...)...).Assert(t, icmd.Expected{Out: "x\nx\n"})
	_, err := os.Stat(filepath.Join(work, "dev"))
	assert.Check(t, os.IsNotExist(err), "a NAME is not a directory here")
	res := run("image", "ls")
	res.Assert(t, icmd.Success)
	assert.Check(t, is.Contains(res.Stdout(), "KEPT LAYER"))
	assert.Check(t, is.Regexp(`(?m)^dev +[0-9a-f]{19} +4B +no$`, res.Stdout()))

	// Another image's writes are refused; so is a second sandbox.
	res = run("run", "--image", "oci:"+two, "--keep", "dev", "--", "true")
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "--keep dev: holds the writes of image "})
	assert.Check(t, is.Contains(res.Stderr(), "fix: another NAME for this image, or nsbox image rm --keep dev"))
	run("run", "--detach", "--name", "k", "--image", "oci:"+one, "--keep", "dev", "--", "sleep", "60").Assert(t, icmd.Success)
	t.Cleanup(func() { run("kill", "k") })
	waitFor(t, func() bool { return strings.Contains(run("image", "ls").Stdout(), "yes") }, "the layer in use")
	run("run", "--image", "oci:"+one, "--keep", "dev", "--", "true").Assert(t, icmd.Expected{ExitCode: 125, Err: "--keep dev: the kept layer is in use by a running sandbox"})
	run("image", "rm", "--keep", "dev").Assert(t, icmd.Expected{ExitCode: 125, Err: "kept layer dev: in use by a running sandbox"})
	run("kill", "k").Assert(t, icmd.Success)
	run("image", "rm", "--keep", "dev").Assert(t, icmd.Expected{Out: "removed kept layer dev (4B freed)\n"})
	res = run("image", "ls")
	assert.Check(t, !strings.Contains(res.Stdout(), "dev"), res.Stdout())

	// Prune: the kept layer of an image no longer stored goes.
	run("run", "--image", "oci:"+two, "--keep", "p", "--", "touch", "/f").Assert(t, icmd.Success)
	run("image", "prune").Assert(t, icmd.Success)
	assert.Check(t, is.Regexp(`(?m)^p +[0-9a-f]{19} `, run("image", "ls").Stdout()))
	run("image", "rm", "oci:"+two).Assert(t, icmd.Success)
	assert.Check(t, !strings.Contains(run("image", "ls").Stdout(), "KEPT LAYER"))
	run("run", "--image", "oci:"+one, "--keep", ".x", "--", "true").Assert(t, icmd.Expected{ExitCode: 125, Err: "--keep .x: not a NAME"})
}
