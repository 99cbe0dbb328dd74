package tests

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/icmd"
)

// TestImageGroups: the image's User gets the supplementary groups the
// image's /etc/group gives it (the map holds subordinate ids), not the
// caller's; --uid drops them.
func TestImageGroups(t *testing.T) {
	_, _, ops := imageHome(t)
	host := startRegistry(t, nil)
	groups := layerFrom(t, tarEntry{name: "etc/group", data: []byte("root:x:0:\nwheel:x:10:root,app\naudio:x:29:other,app\nusers:x:100:other\napp:x:1000:\n")})
	ref := host + "/groups:1"
	pushImage(t, ref, imageFrom(t, v1.Config{User: "app"}, hostArch(), busyboxLayer(t), groups))
	nsboxWith([]string{"run", "--image", ref, "--", "id", "-G"}, ops...).Assert(t, icmd.Expected{Out: "1000 10 29\n"})
	nsboxWith([]string{"run", "--image", ref, "--uid", "1000", "--", "id", "-G"}, ops...).Assert(t, icmd.Expected{Out: "1000\n"})
}

// TestImageStopSignal: nsbox stop sends the image's StopSignal, which
// the command traps and ends on; SIGTERM would have killed it untrapped.
func TestImageStopSignal(t *testing.T) {
	data, work, _ := imageHome(t)
	host := startRegistry(t, nil)
	ref := host + "/stop:1"
	cfg := v1.Config{StopSignal: "SIGUSR1", Cmd: []string{"sh", "-c", `trap "echo got usr1; exit 7" USR1; echo ready; while :; do sleep 0.1; done`}}
	pushImage(t, ref, imageFrom(t, cfg, hostArch(), busyboxLayer(t)))
	env := append(os.Environ(), "XDG_DATA_HOME="+data, "XDG_RUNTIME_DIR="+t.TempDir())
	run := func(args ...string) *icmd.Result {
		return icmd.RunCmd(icmd.Command(nsboxBin, args...), icmd.Dir(work), icmd.WithEnv(env...))
	}
	run("run", "--detach", "--name", "stopme", "--image", ref).Assert(t, icmd.Success)
	t.Cleanup(func() { run("kill", "stopme") })
	waitFor(t, func() bool { return run("logs", "stopme").Stdout() == "ready\n" }, "the command to start")
	res := run("inspect", "stopme")
	res.Assert(t, icmd.Success)
	assert.Assert(t, strings.Contains(res.Stdout(), `"stopSignal": 10`), res.Stdout())
	run("stop", "--timeout", "5", "stopme").Assert(t, icmd.Success)
	run("logs", "stopme").Assert(t, icmd.Expected{Out: "ready\ngot usr1\n"})
}

// capV2 is a file capability as images carry it (VFS_CAP_REVISION_2):
// CAP_NET_RAW (13) permitted and effective.
var capV2 = string([]byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

// TestImageXattrs: a layer's user.* attributes reach the image's files;
// its file capability is stored as a namespaced one whose root is the
// caller (granting nothing on the host), and trusted.* never lands.
func TestImageXattrs(t *testing.T) {
	data, _, ops := imageHome(t)
	if _, count := subids(t, "/etc/subuid"); count < 1000 {
		cannotRun(t, "needs at least 1000 subordinate uids (/etc/subuid)")
	}
	host := startRegistry(t, nil)
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range []*tar.Header{
		{Name: "opt/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1000000000, 0)},
		{Name: "opt/ping", Typeflag: tar.TypeReg, Mode: 0o755, PAXRecords: map[string]string{
			"SCHILY.xattr.user.origin": "test", "SCHILY.xattr.security.capability": capV2, "SCHILY.xattr.trusted.x": "y"}},
	} {
		h.Format = tar.FormatPAX
		assert.NilError(t, tw.WriteHeader(h))
	}
	assert.NilError(t, tw.Close())
	raw := b.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	assert.NilError(t, err)
	ref := host + "/xattrs:1"
	pushImage(t, ref, imageFrom(t, v1.Config{}, hostArch(), busyboxLayer(t), l))
	t.Cleanup(func() { nsboxWith([]string{"image", "rm", ref}, ops...) })
	nsboxWith([]string{"run", "--image", ref, "--", "stat", "-c", "%Y", "/opt"}, ops...).Assert(t, icmd.Expected{Out: "1000000000\n"})

	files, _ := filepath.Glob(filepath.Join(data, "nsbox", "images", "layers", "*", "fs", "opt", "ping"))
	assert.Assert(t, len(files) == 1, "%v", files)
	val := make([]byte, 64)
	n, err := unix.Lgetxattr(files[0], "user.origin", val)
	assert.NilError(t, err)
	assert.Equal(t, string(val[:n]), "test")
	n, err = unix.Lgetxattr(files[0], "security.capability", val)
	assert.NilError(t, err)
	assert.Equal(t, n, 24, "a namespaced (v3) capability")
	assert.Equal(t, binary.LittleEndian.Uint32(val[0:4])>>24, uint32(3))
	assert.Equal(t, binary.LittleEndian.Uint32(val[20:24]), uint32(os.Getuid()), "its root is the caller, not host root")
	_, err = unix.Lgetxattr(files[0], "trusted.x", val)
	assert.ErrorIs(t, err, unix.ENODATA)
}
