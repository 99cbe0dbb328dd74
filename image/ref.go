package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Kind says where a reference's image comes from.
type Kind int

const (
	// Registry is a registry reference: [HOST/]NAME[:TAG][@DIGEST],
	// docker.io and the tag latest by default.
	Registry Kind = iota
	// OCILayout is oci:DIR[:TAG], an OCI image layout directory.
	OCILayout
	// OCIArchive is oci-archive:FILE[:TAG], an OCI layout in a tar file.
	OCIArchive
	// DockerArchive is docker-archive:FILE[:TAG], what docker save writes.
	DockerArchive
)

// Ref is a parsed image reference.
type Ref struct {
	Kind Kind
	// Name is the registry reference (Registry), or the absolute path of
	// the layout or archive.
	Name string
	// Tag picks an image in a layout or archive; "" takes the only one.
	Tag string
}

// String is the reference's canonical form, the key of its record.
func (r Ref) String() string {
	p := map[Kind]string{OCILayout: "oci:", OCIArchive: "oci-archive:", DockerArchive: "docker-archive:"}[r.Kind]
	if r.Tag != "" {
		return p + r.Name + ":" + r.Tag
	}
	return p + r.Name
}

// Local reports whether the image is read from a file or directory: a
// local image is read again on every use (cheaply: only layers not yet
// stored are unpacked); a registry image is pulled once and then used
// from the store until nsbox image pull.
func (r Ref) Local() bool { return r.Kind != Registry }

// ParseRef reads the REF of nsbox run --image: a registry reference, or
// oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:TAG].
// Relative paths are made absolute.
func ParseRef(s string) (Ref, error) {
	for _, p := range []struct {
		prefix string
		kind   Kind
	}{{"oci:", OCILayout}, {"oci-archive:", OCIArchive}, {"docker-archive:", DockerArchive}} {
		rest, ok := strings.CutPrefix(s, p.prefix)
		if !ok {
			continue
		}
		file, tag := splitFileTag(rest)
		if file == "" {
			return Ref{}, fmt.Errorf("image %q names no file or directory; fix: e.g. %s./image", s, p.prefix)
		}
		abs, err := filepath.Abs(file)
		if err != nil {
			return Ref{}, fmt.Errorf("image %q: %w", s, err)
		}
		return Ref{Kind: p.kind, Name: abs, Tag: tag}, nil
	}
	r, err := name.ParseReference(s)
	if err != nil {
		return Ref{}, fmt.Errorf("image %q is not a reference: %v; fix: e.g. debian:12, ghcr.io/org/img@sha256:…, oci:DIR, docker-archive:FILE", s, err)
	}
	return Ref{Kind: Registry, Name: r.Name()}, nil
}

// splitFileTag splits FILE[:TAG]. A tag may hold ':' (docker-archive's
// NAME:TAG) and a path too, so FILE is the shortest prefix before a ':'
// that exists; if none does, the text after the last ':' is the tag
// unless it holds a '/'.
func splitFileTag(s string) (file, tag string) {
	if _, err := os.Stat(s); err == nil {
		return s, ""
	}
	for i := 0; i < len(s); i++ {
		if s[i] != ':' {
			continue
		}
		if _, err := os.Stat(s[:i]); err == nil {
			return s[:i], s[i+1:]
		}
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.Contains(s[i+1:], "/") {
		return s[:i], s[i+1:]
	}
	return s, ""
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
func open(ctx context.Context, r Ref, tmpDir string) (*source, error) {
	src := &source{cleanup: func() {}}
	var err error
	switch r.Kind {
	case Registry:
		ref, perr := name.ParseReference(r.Name)
		if perr != nil {
			return nil, perr
		}
		desc, gerr := remote.Get(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithPlatform(platform()))
		var terr *transport.Error
		if errors.As(gerr, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden) {
			return nil, fmt.Errorf("fetch the manifest: %w; fix: log in (docker login %s), or give credentials in ~/.docker/config.json or $REGISTRY_AUTH_FILE", gerr, ref.Context().RegistryStr())
		}
		if errors.As(gerr, &terr) {
			return nil, fmt.Errorf("fetch the manifest: %w; fix: check the name and tag (nsbox image ls lists what is stored)", gerr)
		}
		if gerr != nil {
			return nil, fmt.Errorf("fetch the manifest: %w; fix: check that %s is reachable from this host", gerr, ref.Context().RegistryStr())
		}
		src.img, err = desc.Image()
	case OCILayout:
		src.img, err = fromLayout(r.Name, r.Tag)
	case OCIArchive:
		dir, derr := os.MkdirTemp(tmpDir, "oci-archive-")
		if derr != nil {
			return nil, derr
		}
		src.cleanup = func() { os.RemoveAll(dir) }
		if err = extractLayout(r.Name, dir); err == nil {
			src.img, err = fromLayout(dir, r.Tag)
		}
	case DockerArchive:
		var tag *name.Tag
		if r.Tag != "" {
			t, terr := name.NewTag(r.Tag)
			if terr != nil {
				return nil, fmt.Errorf("tag %q: %w", r.Tag, terr)
			}
			tag = &t
		}
		src.img, err = tarball.ImageFromPath(r.Name, tag)
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

// annotationRefName tags an image in an OCI layout's index.
const annotationRefName = "org.opencontainers.image.ref.name"

// fromLayout picks the image tagged tag (or the only one) in the OCI
// layout dir, resolving an index to the host's platform.
func fromLayout(dir, tag string) (v1.Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("read the OCI layout: %w; fix: name a directory holding an OCI image layout (index.json, blobs/)", err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("read the OCI layout's index: %w", err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read the OCI layout's index: %w", err)
	}
	var found []v1.Descriptor
	var tags []string
	for _, d := range m.Manifests {
		t := d.Annotations[annotationRefName]
		tags = append(tags, t)
		if tag == "" || t == tag {
			found = append(found, d)
		}
	}
	switch {
	case len(found) == 0:
		return nil, fmt.Errorf("no image tagged %q in the layout (tags: %s)", tag, strings.Join(tags, ", "))
	case len(found) > 1:
		return nil, fmt.Errorf("the layout holds %d images; fix: name one with :TAG (tags: %s)", len(found), strings.Join(tags, ", "))
	}
	return resolve(idx, found[0])
}

// resolve turns a descriptor in idx into an image, picking the host's
// platform from a nested index.
func resolve(idx v1.ImageIndex, d v1.Descriptor) (v1.Image, error) {
	if !d.MediaType.IsIndex() {
		return idx.Image(d.Digest)
	}
	child, err := idx.ImageIndex(d.Digest)
	if err != nil {
		return nil, err
	}
	m, err := child.IndexManifest()
	if err != nil {
		return nil, err
	}
	want := platform()
	for _, c := range m.Manifests {
		if c.Platform != nil && c.Platform.Satisfies(want) {
			return resolve(child, c)
		}
	}
	return nil, fmt.Errorf("the image index has no image for %s/%s", want.OS, want.Architecture)
}

// extractLayout unpacks the oci-archive file into dir. The archive is
// untrusted: only the layout's own files are taken (oci-layout,
// index.json and blobs/ALG/HEX, regular files), so no name leaves dir.
func extractLayout(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", file, err)
		}
		comps, ok := cleanName(hdr.Name)
		if !ok {
			return fmt.Errorf("%s: entry %q climbs out with ..", file, hdr.Name)
		}
		if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeRegA || !layoutFile(comps) {
			continue
		}
		p := filepath.Join(append([]string{dir}, comps...)...)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		return errors.New(file + " is not an OCI archive: no index.json")
	}
	return nil
}

// layoutFile reports whether comps names a file of an OCI layout.
func layoutFile(c []string) bool {
	plain := func(s string) bool { return s != "" && !strings.ContainsAny(s, "/\x00") && !strings.HasPrefix(s, ".") }
	switch len(c) {
	case 1:
		return c[0] == "oci-layout" || c[0] == "index.json"
	case 3:
		return c[0] == "blobs" && plain(c[1]) && plain(c[2])
	}
	return false
}
