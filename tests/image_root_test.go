package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/icmd"
)

// TestRealRootImageSingleMap: a user without subordinate ids runs an
// image: root inside is the user, files the command writes in the current
// directory are the user's on the host, and the image's files are too.
func TestRealRootImageSingleMap(t *testing.T) {
	requireRoot(t)
	user := nosubUser(t)
	work, err := os.MkdirTemp("/var/tmp", "nsbox-image-nosub-")
	assert.NilError(t, err)
	defer os.RemoveAll(work)
	dir := filepath.Join(work, "layout")
	p, err := layout.Write(dir, empty.Index)
	assert.NilError(t, err)
	assert.NilError(t, p.AppendImage(markedImage(t, busyboxLayer(t), hostArch(), "single")))
	assert.NilError(t, exec.Command("chmod", "-R", "a+rX", work).Run())
	mine := filepath.Join(work, "mine")
	assert.NilError(t, os.Mkdir(mine, 0o755))
	assert.NilError(t, exec.Command("chown", user+":", mine).Run())

	res := icmd.RunCmd(icmd.Command("runuser", "-u", user, "--", nsboxBin, "run", "--image", "oci:"+dir, "--",
		"sh", "-c", "id -u; cat /proc/self/uid_map; cat /marker; echo x > out"),
		icmd.Dir(mine), icmd.WithEnv("PATH=/usr/bin:/bin", "XDG_RUNTIME_DIR=", "HOME="+mine, "XDG_DATA_HOME="+filepath.Join(mine, "data")))
	res.Assert(t, icmd.Success)
	uid := strings.TrimSpace(icmd.RunCmd(icmd.Command("id", "-u", user)).Stdout())
	// Inside, the command sees its nested namespace: one id, no more.
	assert.Equal(t, normalizeMap(res.Stdout()), "0\n0 0 1\nsingle")
	for _, f := range []string{filepath.Join(mine, "out"), filepath.Join(mine, "data", "nsbox", "images")} {
		st, err := os.Stat(f)
		assert.NilError(t, err)
		assert.Equal(t, strings.TrimSpace(uid), itoa(st.Sys().(*syscall.Stat_t).Uid), f)
	}
	layers, _ := filepath.Glob(filepath.Join(mine, "data", "nsbox", "images", "layers", "*", "fs", "bin", "busybox"))
	assert.Assert(t, len(layers) == 1)
	st, _ := os.Stat(layers[0])
	assert.Equal(t, uid, itoa(st.Sys().(*syscall.Stat_t).Uid), "the image's files are the caller's")
}

func itoa(u uint32) string { return strconv.FormatUint(uint64(u), 10) }

// TestDockerImageArchive: an image Docker built and saved runs from
// docker-archive:FILE as an unprivileged user, without the daemon.
func TestDockerImageArchive(t *testing.T) {
	requireDocker(t)
	user := nosubUser(t)
	work, err := os.MkdirTemp("/var/tmp", "nsbox-image-docker-")
	assert.NilError(t, err)
	defer os.RemoveAll(work)
	archive := filepath.Join(work, "saved.tar")
	icmd.RunCmd(icmd.Command("docker", "save", "-o", archive, dockerImage)).Assert(t, icmd.Success)
	mine := filepath.Join(work, "mine")
	assert.NilError(t, os.Mkdir(mine, 0o755))
	assert.NilError(t, exec.Command("chown", user+":", mine).Run())
	assert.NilError(t, exec.Command("chmod", "-R", "a+rX", work).Run())
	res := icmd.RunCmd(icmd.Command("runuser", "-u", user, "--", nsboxBin, "run", "--image", "docker-archive:"+archive, "--",
		"/bin/busybox", "sh", "-c", "/bin/busybox echo from-docker; /bin/busybox id -u"),
		icmd.Dir(mine), icmd.WithEnv("PATH=/usr/bin:/bin", "XDG_RUNTIME_DIR=", "HOME="+mine, "XDG_DATA_HOME="+filepath.Join(mine, "data")))
	res.Assert(t, icmd.Expected{Out: "from-docker\n0\n"})
}

// TestDockerImageInContainer: `nsbox run --image` inside a Docker
// container, as CI runners would run it (uid 1000 without subordinate
// ids, docs/ci.md's options), from an OCI layout copied into the
// container: the image's files are there, root inside is the container's
// user, a write outside the current directory goes to the upper layer the
// next run no longer has, the current directory's file stays, and the
// store is the container user's.
func TestDockerImageInContainer(t *testing.T) {
	requireDocker(t)
	work, err := os.MkdirTemp("/var/tmp", "nsbox-image-in-docker-")
	assert.NilError(t, err)
	defer os.RemoveAll(work)
	dir := filepath.Join(work, "layout")
	p, err := layout.Write(dir, empty.Index)
	assert.NilError(t, err)
	assert.NilError(t, p.AppendImage(markedImage(t, busyboxLayer(t), hostArch(), "in-docker")))
	assert.NilError(t, exec.Command("chmod", "-R", "a+rX", work).Run())

	// docker cp into a created container, then start it: the layout is
	// the container's own file, not a bind of the host's.
	all := append([]string{"--security-opt", "systempaths=unconfined"}, unconfined...)
	args := append([]string{"create", "--user", "1000:1000"}, all...)
	args = append(args, dockerImage, "sh", "-c", `mkdir -p /home/user/w && cd /home/user/w &&
		nsbox run --image oci:/home/user/layout -- sh -c 'cat /marker; echo; id -u; cat /proc/self/uid_map; echo gone > /outside; cat /outside; echo kept > here' &&
		nsbox run --image oci:/home/user/layout -- sh -c 'test ! -e /outside && echo fresh' &&
		cat here && stat -c %U /home/user/.local/share/nsbox/images`)
	res := icmd.RunCmd(icmd.Command("docker", args...))
	res.Assert(t, icmd.Success)
	id := strings.TrimSpace(res.Stdout())
	defer icmd.RunCmd(icmd.Command("docker", "rm", "-f", id))
	icmd.RunCmd(icmd.Command("docker", "cp", dir, id+":/home/user/layout")).Assert(t, icmd.Success)
	res = icmd.RunCmd(icmd.Command("docker", "start", "-a", id))
	res.Assert(t, icmd.Success)
	assert.Equal(t, normalizeMap(res.Stdout()), "in-docker\n0\n0 0 1\ngone\nfresh\nkept\nuser")
}
