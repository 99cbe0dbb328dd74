// Package fetch brings images into an image.Store: from registries
// (with the ecosystem's credentials), OCI layouts, oci-archives and
// docker-archives, all read with go-containerregistry. It is the only
// part of nsbox that loads go-containerregistry, whose package
// initialisers (and docker/cli's config) cost every program start that
// links them; package image runs a stored image without it.
//
// Pull is one self-contained call that leaves its result in the store's
// directory, so it can run in another process that shares the store
// (the image's record and layers are all a run reads).
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/nsbox/nsbox/image"
)

// Auth finds the credentials for a registry.
type Auth = authn.Keychain

// DefaultAuth takes credentials where the ecosystem keeps them:
// $DOCKER_CONFIG/config.json or ~/.docker/config.json, then
// $REGISTRY_AUTH_FILE or $XDG_RUNTIME_DIR/containers/auth.json (podman),
// with credential helpers; anonymous where none is given.
var DefaultAuth Auth = authn.DefaultKeychain

// Pull reads the image r names (a registry with auth, or a local file),
// checking every digest, has the store unpack the layers it does not
// hold yet, and returns the image's record, written to the store.
// Progress goes to store.Progress.
func Pull(ctx context.Context, r image.Ref, store *image.Store, auth Auth) (*image.Image, error) {
	p, err := store.BeginPull(r)
	if err != nil {
		return nil, err
	}
	src, err := open(ctx, r, p.TmpDir, auth)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", r, err)
	}
	defer src.cleanup()
	s, err := storeSource(src)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", r, err)
	}
	return p.Finish(s)
}

// storeSource describes src as the store takes it.
func storeSource(src *source) (*image.Source, error) {
	cf, err := src.img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read the configuration: %w", err)
	}
	id, err := src.img.ConfigName()
	if err != nil {
		return nil, fmt.Errorf("read the configuration: %w", err)
	}
	layers, err := src.img.Layers()
	if err != nil {
		return nil, fmt.Errorf("read the layers: %w", err)
	}
	if len(layers) != len(cf.RootFS.DiffIDs) {
		return nil, fmt.Errorf("the manifest has %d layers, the configuration %d", len(layers), len(cf.RootFS.DiffIDs))
	}
	s := &image.Source{Digest: src.digest, ID: id.String(), OS: cf.OS,
		Config: image.Config{Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd, Env: cf.Config.Env,
			WorkingDir: cf.Config.WorkingDir, User: cf.Config.User, StopSignal: cf.Config.StopSignal}}
	for _, d := range cf.RootFS.DiffIDs {
		s.DiffIDs = append(s.DiffIDs, d.String())
	}
	s.Layer = func(i int) (io.ReadCloser, error) { return layers[i].Uncompressed() }
	return s, nil
}

// platform is the host's, which a multi-architecture index is resolved to.
func platform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// source is an opened image and what to close after reading it.
type source struct {
	img     v1.Image
	digest  string
	cleanup func()
}

// open reads the image's manifest (and, for an oci-archive, unpacks the
// archive's layout into tmpDir).
func open(ctx context.Context, r image.Ref, tmpDir string, auth Auth) (*source, error) {
	src := &source{cleanup: func() {}}
	var err error
	switch r.Kind {
	case image.Registry:
		src.img, err = fromRegistry(ctx, r.Name, auth)
	case image.OCILayout:
		src.img, err = fromLayout(r.Name, r.Tag)
	case image.OCIArchive:
		dir, derr := os.MkdirTemp(tmpDir, "oci-archive-")
		if derr != nil {
			return nil, derr
		}
		src.cleanup = func() { os.RemoveAll(dir) }
		if err = extractLayout(r.Name, dir); err == nil {
			src.img, err = fromLayout(dir, r.Tag)
		}
	case image.DockerArchive:
		var tag *name.Tag
		if r.Tag != "" {
			t, terr := name.NewTag(r.Tag)
			if terr != nil {
				return nil, fmt.Errorf("tag %q: %w", r.Tag, terr)
			}
			tag = &t
		}
		src.img, err = tarball.ImageFromPath(r.Name, tag)
	default:
		err = fmt.Errorf("unknown kind of reference %d", r.Kind)
	}
	if err == nil {
		var d v1.Hash
		if d, err = src.img.Digest(); err == nil {
			src.digest = d.String()
		}
	}
	if err != nil {
		src.cleanup()
		return nil, err
	}
	return src, nil
}

// fromRegistry fetches the manifest of the canonical reference ref,
// resolving an index to the host's platform.
func fromRegistry(ctx context.Context, ref string, auth Auth) (v1.Image, error) {
	n, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	desc, err := remote.Get(n, remote.WithContext(ctx), remote.WithAuthFromKeychain(auth), remote.WithPlatform(platform()))
	var terr *transport.Error
	if errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden) {
		return nil, fmt.Errorf("fetch the manifest: %w; fix: log in (docker login %s), or give credentials in ~/.docker/config.json or $REGISTRY_AUTH_FILE", err, n.Context().RegistryStr())
	}
	if errors.As(err, &terr) {
		return nil, fmt.Errorf("fetch the manifest: %w; fix: check the name and tag (nsbox image ls lists what is stored)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch the manifest: %w; fix: check that %s is reachable from this host", err, n.Context().RegistryStr())
	}
	return desc.Image()
}
