package fetch

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/nsbox/nsbox/image"
)

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
		comps, ok := image.SplitEntryName(hdr.Name)
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
