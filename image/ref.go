package image

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	n, err := CanonicalName(s)
	if err != nil {
		return Ref{}, fmt.Errorf("image %q is not a reference: %v; fix: e.g. debian:12, ghcr.io/org/img@sha256:…, oci:DIR, docker-archive:FILE", s, err)
	}
	return Ref{Kind: Registry, Name: n}, nil
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
