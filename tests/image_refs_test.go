package tests

import (
	"archive/tar"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	ggremote "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
)

// markedImage is the busybox image with /marker saying which it is.
func markedImage(t *testing.T, base v1.Layer, arch, marker string) v1.Image {
	t.Helper()
	return imageFrom(t, v1.Config{Cmd: []string{"cat", "/marker"}}, arch, base, layerFrom(t, tarEntry{name: "marker", data: []byte(marker)}))
}

// multiArch is an index of the image for the host's architecture and one
// for another, each marked with its architecture.
func multiArch(t *testing.T, base v1.Layer) v1.ImageIndex {
	t.Helper()
	other := "arm64"
	if hostArch() == "arm64" {
		other = "amd64"
	}
	var adds []mutate.IndexAddendum
	for _, arch := range []string{other, hostArch()} {
		adds = append(adds, mutate.IndexAddendum{Add: markedImage(t, base, arch, arch),
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	return mutate.AppendManifests(empty.Index, adds...)
}

// TestImageRefForms: every REF form runs the image it names: a registry
// index (resolved to this host's platform), oci:DIR with and without a
// tag, an index inside a layout, oci-archive:FILE and docker-archive:FILE.
func TestImageRefForms(t *testing.T) {
	_, work, ops := imageHome(t)
	base := busyboxLayer(t)
	host := startRegistry(t, nil)
	r, err := name.ParseReference(host + "/multi:1")
	assert.NilError(t, err)
	assert.NilError(t, ggremote.WriteIndex(r, multiArch(t, base)))

	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	assert.NilError(t, err)
	tag := func(s string) layout.Option {
		return layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": s})
	}
	assert.NilError(t, p.AppendImage(markedImage(t, base, hostArch(), "v1"), tag("v1")))
	assert.NilError(t, p.AppendIndex(multiArch(t, base), tag("multi")))

	single := filepath.Join(t.TempDir(), "single")
	ps, err := layout.Write(single, empty.Index)
	assert.NilError(t, err)
	assert.NilError(t, ps.AppendImage(markedImage(t, base, hostArch(), "only")))

	ociArchive := filepath.Join(t.TempDir(), "img.oci.tar")
	tarDir(t, single, ociArchive)
	dockerArchive := filepath.Join(t.TempDir(), "img.docker.tar")
	dtag, err := name.NewTag("example.org/saved:2")
	assert.NilError(t, err)
	assert.NilError(t, tarball.WriteToFile(dockerArchive, dtag, markedImage(t, base, hostArch(), "saved")))

	for _, tc := range []struct{ ref, want string }{
		{host + "/multi:1", hostArch()},
		{"oci:" + dir + ":v1", "v1"},
		{"oci:" + dir + ":multi", hostArch()},
		{"oci:" + single, "only"},
		{"oci-archive:" + ociArchive, "only"},
		{"docker-archive:" + dockerArchive, "saved"},
		{"docker-archive:" + dockerArchive + ":example.org/saved:2", "saved"},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			nsboxWith([]string{"run", "--image", tc.ref}, ops...).Assert(t, icmd.Expected{Out: tc.want})
		})
	}
	// A relative oci: path, from the work directory.
	assert.NilError(t, os.Symlink(dir, filepath.Join(work, "lay")))
	nsboxWith([]string{"run", "--image", "oci:lay:v1"}, ops...).Assert(t, icmd.Expected{Out: "v1"})

	// Mistakes: one line each, exit 125.
	res := nsboxWith([]string{"run", "--image", "oci:" + dir}, ops...)
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "fix: name one with :TAG"})
	res = nsboxWith([]string{"run", "--image", "oci:" + dir + ":nope"}, ops...)
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: `no image tagged "nope"`})
	res = nsboxWith([]string{"run", "--image", "Bad Ref"}, ops...)
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "is not a reference"})
	assert.Check(t, is.Equal(strings.Count(strings.TrimSpace(res.Stderr()), "\n"), 0))

	// The shared base is stored once: one layer directory for it, one per
	// marker layer.
	data := strings.TrimPrefix(ops2env(ops), "XDG_DATA_HOME=")
	ents, err := os.ReadDir(filepath.Join(data, "nsbox", "images", "layers"))
	assert.NilError(t, err)
	var dirs []string
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	// base, and markers: arch, other arch is never pulled, v1, only, saved.
	assert.Equal(t, len(dirs), 5, "%v", dirs)
}

// ops2env finds XDG_DATA_HOME in imageHome's options.
func ops2env(ops []icmd.CmdOp) string {
	c := icmd.Cmd{}
	for _, o := range ops {
		o(&c)
	}
	for _, kv := range c.Env {
		if strings.HasPrefix(kv, "XDG_DATA_HOME=") {
			return kv
		}
	}
	return ""
}

// tarDir writes the files of dir into the tar file out.
func tarDir(t *testing.T, dir, out string) {
	t.Helper()
	f, err := os.Create(out)
	assert.NilError(t, err)
	defer f.Close()
	tw := tar.NewWriter(f)
	assert.NilError(t, filepath.Walk(dir, func(p string, st os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h, err := tar.FileInfoHeader(st, "")
		if err != nil {
			return err
		}
		h.Name = rel
		if err := tw.WriteHeader(h); err != nil || !st.Mode().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil {
			_, err = tw.Write(b)
		}
		return err
	}))
	assert.NilError(t, tw.Close())
}

// TestImageAuth: a registry that wants a bearer token: without
// credentials the pull fails in one line with the fix; with them in
// $REGISTRY_AUTH_FILE it works.
func TestImageAuth(t *testing.T) {
	_, _, ops := imageHome(t)
	var host string
	host = startRegistry(t, func(h http.Handler) http.Handler {
		mux := http.NewServeMux()
		mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "s3cret" {
				http.Error(w, "denied", http.StatusUnauthorized)
				return
			}
			fmt.Fprint(w, `{"token":"tok-123"}`)
		})
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer tok-123" {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="test"`, host))
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
		return mux
	})
	img := imageFrom(t, v1.Config{Cmd: []string{"echo", "private"}}, hostArch(), busyboxLayer(t))
	pushImage(t, host+"/private:1", img, ggremote.WithAuth(&basicAuth{"alice", "s3cret"}))

	home := t.TempDir()
	ops = append(ops, icmd.WithEnv(append(os.Environ(), "HOME="+home, "XDG_DATA_HOME="+filepath.Join(home, "data"), "REGISTRY_AUTH_FILE=", "DOCKER_CONFIG=")...))
	res := nsboxWith([]string{"run", "--image", host + "/private:1"}, ops...)
	res.Assert(t, icmd.Expected{ExitCode: 125, Err: "fix: log in (docker login " + host + ")"})

	authFile := filepath.Join(home, "auth.json")
	assert.NilError(t, os.WriteFile(authFile, []byte(fmt.Sprintf(`{"auths":{%q:{"auth":"YWxpY2U6czNjcmV0"}}}`, host)), 0o600))
	ops = append(ops, icmd.WithEnv(append(os.Environ(), "HOME="+home, "XDG_DATA_HOME="+filepath.Join(home, "data"), "REGISTRY_AUTH_FILE="+authFile)...))
	nsboxWith([]string{"run", "--image", host + "/private:1"}, ops...).Assert(t, icmd.Expected{Out: "private"})
}

// TestImageConcurrentPulls: four nsbox processes pulling and running one
// image at once all succeed, and no half-unpacked layer is left.
func TestImageConcurrentPulls(t *testing.T) {
	data, _, ops := imageHome(t)
	host := startRegistry(t, nil)
	pushImage(t, host+"/cc:1", markedImage(t, busyboxLayer(t), hostArch(), "cc"))
	var wg sync.WaitGroup
	results := make([]*icmd.Result, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = nsboxWith([]string{"run", "--image", host + "/cc:1"}, ops...)
		}()
	}
	wg.Wait()
	for _, res := range results {
		res.Assert(t, icmd.Expected{Out: "cc"})
	}
	ents, err := os.ReadDir(filepath.Join(data, "nsbox", "images", "layers"))
	assert.NilError(t, err)
	for _, e := range ents {
		assert.Check(t, !strings.HasPrefix(e.Name(), ".new-"), e.Name())
	}
}
