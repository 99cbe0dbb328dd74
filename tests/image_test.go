package tests

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	ggremote "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/icmd"
)

// Images for nsbox run --image are built here from busybox-static and
// served by an in-process registry on 127.0.0.1 (go-containerregistry's),
// written as OCI layouts and archives: no network, no daemon.

// tarEntry is one entry of a test layer.
type tarEntry struct {
	name, link string
	typ        byte
	mode       int64
	uid, gid   int
	data       []byte
}

// applets are the busybox commands the test images link.
var applets = []string{"sh", "id", "ls", "cat", "pwd", "echo", "touch", "test", "sleep", "stat", "mkdir", "env", "rm"}

func layerFrom(t *testing.T, es ...tarEntry) v1.Layer {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: time.Unix(1700000000, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		assert.NilError(t, tw.WriteHeader(h))
		_, err := tw.Write(e.data)
		assert.NilError(t, err)
	}
	assert.NilError(t, tw.Close())
	data := b.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	assert.NilError(t, err)
	return l
}

// busyboxLayer is a base layer: /bin/busybox and its applets, /etc/passwd
// with root and app (1000), /etc/group, /opt/a and /opt/b.
func busyboxLayer(t *testing.T) v1.Layer {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		cannotRun(t, "needs /bin/busybox (busybox-static)")
	}
	es := []tarEntry{{name: "bin/", typ: tar.TypeDir, mode: 0o755}, {name: "bin/busybox", mode: 0o755, data: bb}}
	for _, a := range applets {
		es = append(es, tarEntry{name: "bin/" + a, typ: tar.TypeSymlink, link: "busybox"})
	}
	es = append(es,
		tarEntry{name: "etc/passwd", data: []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")},
		tarEntry{name: "etc/group", data: []byte("root:x:0:\napp:x:1000:\n")},
		tarEntry{name: "etc/gone", data: []byte("gone\n")},
		tarEntry{name: "opt/a", data: []byte("a")}, tarEntry{name: "opt/b", data: []byte("b")},
		tarEntry{name: "srv/", typ: tar.TypeDir, mode: 0o755},
	)
	return layerFrom(t, es...)
}

func imageFrom(t *testing.T, cfg v1.Config, arch string, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	assert.NilError(t, err)
	cf, err := img.ConfigFile()
	assert.NilError(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", arch, cfg
	img, err = mutate.ConfigFile(img, cf)
	assert.NilError(t, err)
	return img
}

// startRegistry serves an in-process registry on 127.0.0.1, its handler
// wrapped by wrap if not nil, and returns host:port.
func startRegistry(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func pushImage(t *testing.T, ref string, img v1.Image, opts ...ggremote.Option) {
	t.Helper()
	r, err := name.ParseReference(ref)
	assert.NilError(t, err)
	assert.NilError(t, ggremote.Write(r, img, opts...))
}

// imageHome gives nsbox a store of its own (XDG_DATA_HOME) and a work
// directory to run in; it returns the store's parent and the options.
func imageHome(t *testing.T) (data, work string, ops []icmd.CmdOp) {
	t.Helper()
	requireUnprivileged(t)
	base := t.TempDir()
	data, work = filepath.Join(base, "data"), filepath.Join(base, "work")
	assert.NilError(t, os.MkdirAll(work, 0o755))
	return data, work, []icmd.CmdOp{icmd.Dir(work), icmd.WithEnv(append(os.Environ(), "XDG_DATA_HOME="+data)...)}
}

// hostArch is the architecture nsbox resolves an index to.
func hostArch() string {
	out, _ := os.ReadFile("/proc/sys/kernel/arch")
	switch strings.TrimSpace(string(out)) {
	case "aarch64":
		return "arm64"
	}
	return "amd64"
}

// testImageConfig: the command the image runs without one given.
var testImageConfig = v1.Config{Env: []string{"FOO=bar"}, WorkingDir: "/srv", Cmd: []string{"sh", "-c", "echo cmd $FOO; pwd; id -u"}}

// TestImageRegistry: pull by tag and digest from a registry, the image's
// configuration, whiteouts and an opaque directory across layers, the
// current directory bound and the start directory, writes elsewhere gone.
func TestImageRegistry(t *testing.T) {
	data, work, ops := imageHome(t)
	host := startRegistry(t, nil)
	top := layerFrom(t, tarEntry{name: "etc/.wh.gone"}, tarEntry{name: "opt/.wh..wh..opq"}, tarEntry{name: "opt/c", data: []byte("c")})
	img := imageFrom(t, testImageConfig, hostArch(), busyboxLayer(t), top)
	pushImage(t, host+"/bb:1", img)
	ref := host + "/bb:1"

	res := nsboxWith([]string{"run", "--image", ref}, ops...)
	res.Assert(t, icmd.Expected{Out: "cmd bar\n/srv\n0\n"})
	assert.Assert(t, strings.Contains(res.Stderr(), "nsbox: pulled "+ref), res.Stderr())

	// Cached: no pull line; a command replaces Cmd and starts in the
	// current directory, bound read-write; writes elsewhere vanish.
	res = nsboxWith([]string{"run", "--image", ref, "--", "sh", "-c",
		"pwd; test -e /etc/gone && echo etc/gone; ls /opt; echo hi > out; touch /usr-x && echo wrote /"}, ops...)
	res.Assert(t, icmd.Expected{Out: work + "\nc\nwrote /\n"})
	assert.Equal(t, res.Stderr(), "")
	b, err := os.ReadFile(filepath.Join(work, "out"))
	assert.NilError(t, err)
	assert.Equal(t, string(b), "hi\n")
	st, err := os.Stat(filepath.Join(work, "out"))
	assert.NilError(t, err)
	assert.Equal(t, int(statUID(st)), os.Getuid(), "the file is the caller's on the host")
	nsboxWith([]string{"run", "--image", ref, "--", "test", "!", "-e", "/usr-x"}, ops...).Assert(t, icmd.Success)

	// By digest.
	d, err := img.Digest()
	assert.NilError(t, err)
	res = nsboxWith([]string{"image", "pull", host + "/bb@" + d.String()}, ops...)
	res.Assert(t, icmd.Success)
	nsboxWith([]string{"run", "--image", host + "/bb@" + d.String(), "--", "cat", "/opt/c"}, ops...).Assert(t, icmd.Expected{Out: "c"})

	res = nsboxWith([]string{"image", "ls"}, ops...)
	res.Assert(t, icmd.Success)
	assert.Assert(t, strings.Contains(res.Stdout(), host+"/bb:1"), res.Stdout())
	_ = data
}

// TestImageUser: the image's User, resolved in its /etc/passwd, runs the
// command with that user's home; the map has the user's subordinate ids.
func TestImageUser(t *testing.T) {
	_, _, ops := imageHome(t)
	host := startRegistry(t, nil)
	cfg := v1.Config{User: "app", Cmd: []string{"sh", "-c", "id -u; id -g; echo $HOME"}}
	pushImage(t, host+"/user:1", imageFrom(t, cfg, hostArch(), busyboxLayer(t)))
	nsboxWith([]string{"run", "--image", host + "/user:1"}, ops...).Assert(t, icmd.Expected{Out: "1000\n1000\n/home/app\n"})
}

// statUID is the owner of a file as the host sees it.
func statUID(st os.FileInfo) uint32 { return st.Sys().(*syscall.Stat_t).Uid }

type basicAuth struct{ user, pass string }

func (b *basicAuth) Authorization() (*authn.AuthConfig, error) {
	return &authn.AuthConfig{Username: b.user, Password: b.pass}, nil
}

// TestImageOwners: with subordinate ids, files keep the image's owners:
// inside, as the image has them (a user's private file readable by that
// user only); on the host, the subordinate ids they map to. image rm
// removes them (in a user namespace: the host user could not).
func TestImageOwners(t *testing.T) {
	data, _, ops := imageHome(t)
	start, count := subids(t, "/etc/subuid")
	if count < 1000 {
		cannotRun(t, "needs at least 1000 subordinate uids (/etc/subuid)")
	}
	host := startRegistry(t, nil)
	own := layerFrom(t,
		tarEntry{name: "home/app/", typ: tar.TypeDir, mode: 0o700, uid: 1000, gid: 1000},
		tarEntry{name: "home/app/secret", mode: 0o600, uid: 1000, gid: 1000, data: []byte("s3cret\n")},
		tarEntry{name: "usr/bin/su", mode: 0o4755, data: []byte("#!/bin/sh\n")})
	ref := host + "/owners:1"
	pushImage(t, ref, imageFrom(t, v1.Config{User: "app"}, hostArch(), busyboxLayer(t), own))
	// Files a subordinate id owns are not the test user's to remove.
	t.Cleanup(func() { nsboxWith([]string{"image", "rm", ref}, ops...) })
	nsboxWith([]string{"run", "--image", ref, "--", "cat", "/home/app/secret"}, ops...).Assert(t, icmd.Expected{Out: "s3cret"})
	nsboxWith([]string{"run", "--image", ref, "--uid", "0", "--gid", "0", "--", "stat", "-c", "%u:%g %a", "/home/app/secret", "/usr/bin/su"}, ops...).
		Assert(t, icmd.Expected{Out: "1000:1000 600\n0:0 4755\n"})
	// home/app is mode 700: the test user cannot look inside it.
	files, _ := filepath.Glob(filepath.Join(data, "nsbox", "images", "layers", "*", "fs", "home", "app"))
	assert.Assert(t, len(files) == 1, "%v", files)
	var st syscall.Stat_t
	assert.NilError(t, syscall.Lstat(files[0], &st))
	assert.Equal(t, st.Uid, start+999, "uid 1000 inside is subordinate uid %d+999 outside", start)
	nsboxWith([]string{"image", "rm", ref}, ops...).Assert(t, icmd.Success)
	left, _ := filepath.Glob(filepath.Join(data, "nsbox", "images", "layers", "*"))
	for _, l := range left {
		assert.Assert(t, strings.HasSuffix(l, ".lock"), "left: %s", l)
	}
}
