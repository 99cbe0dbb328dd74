package fetch

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/nsbox/nsbox/image"
)

// refCases are references both parsers must agree on.
var refCases = []string{
	"debian:12", "busybox", "docker.io/busybox", "index.docker.io/library/busybox:1",
	"localhost/a", "localhost:5000/a/b:c", "127.0.0.1:5000/x@sha256:" + strings.Repeat("a", 64),
	"ghcr.io/o/i:t@sha256:" + strings.Repeat("0", 64), "a@sha512:" + strings.Repeat("f", 128),
	"a@sha384:" + strings.Repeat("1", 96), "a@sha256:" + strings.Repeat("A", 64), "a@md5:00",
	"A", "a:", "a:-x", "a:" + strings.Repeat("t", 129), "a/b/c/d", "a//b", "host:port/x",
	"[::1]:5000/x", "http://x/y", "a@b@sha256:" + strings.Repeat("a", 64), "x.io/", "/a", "",
}

// TestCanonicalNameAgrees: image.CanonicalName (the standard library's
// parser a run from the store uses) gives go-containerregistry's answer.
func TestCanonicalNameAgrees(t *testing.T) {
	for _, s := range refCases {
		checkSameName(t, s)
	}
}

func FuzzCanonicalName(f *testing.F) {
	for _, s := range refCases {
		f.Add(s)
	}
	f.Fuzz(checkSameName)
}

func checkSameName(t *testing.T, s string) {
	want, werr := name.ParseReference(s)
	got, err := image.CanonicalName(s)
	switch {
	case werr != nil && err == nil:
		t.Errorf("%q: go-containerregistry refuses it (%v), CanonicalName gives %q", s, werr, got)
	case werr == nil && err != nil:
		t.Errorf("%q: go-containerregistry gives %q, CanonicalName refuses it: %v", s, want.Name(), err)
	case werr == nil && got != want.Name():
		t.Errorf("%q: go-containerregistry gives %q, CanonicalName %q", s, want.Name(), got)
	}
}
