package fetch

import (
	"archive/tar"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/nsbox/nsbox/image"
	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// serve starts an in-process registry on 127.0.0.1 and returns its host.
func serve(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	h := registry.New(registry.Logger(nilLogger()))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// get is what nsbox run does: the stored image if the store may give
// it, else a pull.
func get(ctx context.Context, s *image.Store, r image.Ref) (*image.Image, error) {
	if img, ok := s.Cached(r); ok {
		return img, nil
	}
	return Pull(ctx, r, s, DefaultAuth)
}

func push(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref)
	assert.NilError(t, err)
	assert.NilError(t, remote.Write(r, img))
}

func TestPullWhiteoutsSharingAndRemove(t *testing.T) {
	host := serve(t, nil)
	base := layerOf(t,
		entry{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "etc/passwd", data: []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")},
		entry{name: "etc/group", data: []byte("root:x:0:\napp:x:1000:\n")},
		entry{name: "etc/gone", data: []byte("x")},
		entry{name: "opt/a", data: []byte("a")},
		entry{name: "opt/b", data: []byte("b")},
	)
	top := layerOf(t, entry{name: "etc/.wh.gone"}, entry{name: "opt/.wh..wh..opq"}, entry{name: "opt/c", data: []byte("c")})
	one := imageOf(t, v1.Config{User: "app", Cmd: []string{"/bin/sh"}, Env: []string{"A=1"}, WorkingDir: "/w"}, base, top)
	two := imageOf(t, v1.Config{}, base)
	push(t, host+"/one:1", one)
	push(t, host+"/two:latest", two)

	s := &image.Store{Dir: t.TempDir()}
	ctx := context.Background()
	r1, err := image.ParseRef(host + "/one:1")
	assert.NilError(t, err)
	img, err := get(ctx, s, r1)
	assert.NilError(t, err)
	assert.Equal(t, len(img.Layers), 2)

	// Whiteouts: etc/gone is a whiteout in the top layer; the opaque opt
	// hides a and b with whiteouts, keeps c.
	topFS := s.LowerDirs(img)[0]
	for _, n := range []string{"etc/gone", "opt/a", "opt/b"} {
		var st unix.Stat_t
		assert.NilError(t, unix.Lstat(filepath.Join(topFS, n), &st), n)
		assert.Equal(t, st.Mode&unix.S_IFMT, uint32(unix.S_IFCHR), n)
	}
	_, err = os.Stat(filepath.Join(topFS, "opt", "c"))
	assert.NilError(t, err)

	p, err := s.Process(img, nil)
	assert.NilError(t, err)
	assert.DeepEqual(t, p.Args, []string{"/bin/sh"})
	assert.Equal(t, p.UID, uint32(1000))
	assert.Equal(t, p.Cwd, "/w")
	assert.Check(t, is.Contains(p.Env, "HOME=/home/app"))
	p, _ = s.Process(img, []string{"id"})
	assert.DeepEqual(t, p.Args, []string{"id"})

	// By digest, and the second image shares the base layer's directory.
	byDigest, err := image.ParseRef(host + "/one@" + img.Digest)
	assert.NilError(t, err)
	img1d, err := get(ctx, s, byDigest)
	assert.NilError(t, err)
	assert.Equal(t, img1d.ID, img.ID)
	r2, _ := image.ParseRef(host + "/two")
	img2, err := get(ctx, s, r2)
	assert.NilError(t, err)
	assert.Equal(t, s.LowerDirs(img2)[0], s.LowerDirs(img)[1])
	ents, _ := os.ReadDir(filepath.Join(s.Dir, "layers"))
	dirs := 0
	for _, e := range ents {
		if e.IsDir() {
			dirs++
		}
	}
	assert.Equal(t, dirs, 2, "three images, two layers stored")

	// In use: rm refuses; released, it removes the top layer only.
	held, err := s.Hold(img)
	assert.NilError(t, err)
	_, err = s.Remove(r1.String())
	assert.ErrorIs(t, err, image.ErrInUse)
	held.Release()
	_, err = s.Remove(r1.String())
	assert.NilError(t, err)
	_, err = os.Stat(topFS)
	assert.NilError(t, err, "the digest reference still uses it")
	_, err = s.Remove(byDigest.String())
	assert.NilError(t, err)
	_, err = os.Stat(topFS)
	assert.Assert(t, os.IsNotExist(err), "the top layer is gone")
	_, err = os.Stat(s.LowerDirs(img2)[0])
	assert.NilError(t, err, "the shared base stays: two and the digest ref use it")
}

func TestConcurrentPulls(t *testing.T) {
	host := serve(t, nil)
	img := imageOf(t, v1.Config{Cmd: []string{"x"}}, layerOf(t, entry{name: "a", data: []byte("a")}), layerOf(t, entry{name: "b", data: []byte("b")}))
	push(t, host+"/c:1", img)
	s := &image.Store{Dir: t.TempDir()}
	r, _ := image.ParseRef(host + "/c:1")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := Pull(context.Background(), r, &image.Store{Dir: s.Dir}, DefaultAuth)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NilError(t, err)
	}
	ents, _ := os.ReadDir(filepath.Join(s.Dir, "layers"))
	for _, e := range ents {
		assert.Assert(t, !strings.HasPrefix(e.Name(), ".new-"), "left over: %s", e.Name())
	}
}

// TestPullAuth: a registry that wants basic credentials gets them from
// the Docker config file; without them the pull fails naming the cause.
func TestPullAuth(t *testing.T) {
	host := serve(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "s3cret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	img := imageOf(t, v1.Config{Cmd: []string{"x"}}, layerOf(t, entry{name: "a", data: []byte("a")}))
	r, _ := name.ParseReference(host + "/private:1")
	assert.NilError(t, remote.Write(r, img, remote.WithAuth(basic{"alice", "s3cret"})))

	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("DOCKER_CONFIG", "")
	t.Setenv("REGISTRY_AUTH_FILE", "")
	s := &image.Store{Dir: t.TempDir()}
	ref, _ := image.ParseRef(host + "/private:1")
	_, err := Pull(context.Background(), ref, s, DefaultAuth)
	assert.ErrorContains(t, err, "401 Unauthorized")
	assert.ErrorContains(t, err, "fix: log in")

	auth := fmt.Sprintf(`{"auths":{%q:{"auth":"YWxpY2U6czNjcmV0"}}}`, host) // alice:s3cret
	assert.NilError(t, os.MkdirAll(filepath.Join(home, ".docker"), 0o700))
	assert.NilError(t, os.WriteFile(filepath.Join(home, ".docker", "config.json"), []byte(auth), 0o600))
	_, err = Pull(context.Background(), ref, s, DefaultAuth)
	assert.NilError(t, err)
}

// TestLocalImageChanges: a local image is taken from the store while its
// file is unchanged, and read again once it changed.
func TestLocalImageChanges(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	write := func(marker string) {
		os.RemoveAll(dir)
		p, err := layout.Write(dir, empty.Index)
		assert.NilError(t, err)
		assert.NilError(t, p.AppendImage(imageOf(t, v1.Config{Cmd: []string{marker}}, layerOf(t, entry{name: marker}))))
	}
	write("one")
	s := &image.Store{Dir: t.TempDir()}
	r, err := image.ParseRef("oci:" + dir)
	assert.NilError(t, err)
	img, err := get(context.Background(), s, r)
	assert.NilError(t, err)
	assert.DeepEqual(t, img.Config.Cmd, []string{"one"})
	again, err := get(context.Background(), s, r)
	assert.NilError(t, err)
	assert.Equal(t, again.Pulled, img.Pulled, "unchanged: from the record")
	write("two")
	img, err = get(context.Background(), s, r)
	assert.NilError(t, err)
	assert.DeepEqual(t, img.Config.Cmd, []string{"two"})
}
