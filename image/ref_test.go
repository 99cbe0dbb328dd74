package image

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
)

func TestParseRef(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.tar")
	assert.NilError(t, os.WriteFile(file, nil, 0o600))
	colon := filepath.Join(dir, "x:y")
	assert.NilError(t, os.Mkdir(colon, 0o700))
	for _, tc := range []struct {
		in   string
		want Ref
		err  string
	}{
		{in: "debian:12", want: Ref{Kind: Registry, Name: "index.docker.io/library/debian:12"}},
		{in: "busybox", want: Ref{Kind: Registry, Name: "index.docker.io/library/busybox:latest"}},
		{in: "127.0.0.1:5000/a/b@sha256:" + repeat64("a"), want: Ref{Kind: Registry, Name: "127.0.0.1:5000/a/b@sha256:" + repeat64("a")}},
		{in: "oci:" + dir, want: Ref{Kind: OCILayout, Name: dir}},
		{in: "oci:" + dir + ":v1", want: Ref{Kind: OCILayout, Name: dir, Tag: "v1"}},
		{in: "oci:" + colon + ":v1", want: Ref{Kind: OCILayout, Name: colon, Tag: "v1"}},
		{in: "docker-archive:" + file + ":example.org/x:2", want: Ref{Kind: DockerArchive, Name: file, Tag: "example.org/x:2"}},
		{in: "oci-archive:" + file, want: Ref{Kind: OCIArchive, Name: file}},
		{in: "oci:", err: "names no file"},
		{in: "Not A Ref", err: "is not a reference"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			r, err := ParseRef(tc.in)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			assert.DeepEqual(t, r, tc.want)
		})
	}
}

func repeat64(s string) string {
	out := ""
	for len(out) < 64 {
		out += s
	}
	return out
}

func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"debian:12", "oci:/x:y", "docker-archive:/a:b:c", "oci-archive:", "a@sha256:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRef(s)
		if err == nil && r.Kind == Registry && r.Name == "" {
			t.Fatalf("%q: empty name", s)
		}
	})
}
