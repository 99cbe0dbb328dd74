package fetch

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"gotest.tools/v3/assert"
)

// entry is one tar entry of a test layer.
type entry struct {
	name, link string
	typ        byte
	mode       int64
	data       []byte
	size       int64 // for a header that lies about the size
}

func layerTar(t *testing.T, es ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.data)), ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if e.typ == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		assert.NilError(t, tw.WriteHeader(h))
		_, err := tw.Write(e.data)
		assert.NilError(t, err)
	}
	assert.NilError(t, tw.Close())
	return b.Bytes()
}

func layerOf(t *testing.T, es ...entry) v1.Layer {
	t.Helper()
	b := layerTar(t, es...)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	assert.NilError(t, err)
	return l
}

func imageOf(t *testing.T, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	assert.NilError(t, err)
	cf, err := img.ConfigFile()
	assert.NilError(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", platform().Architecture, cfg
	img, err = mutate.ConfigFile(img, cf)
	assert.NilError(t, err)
	return img
}

type basic struct{ user, pass string }

func (b basic) Authorization() (*authn.AuthConfig, error) {
	return &authn.AuthConfig{Username: b.user, Password: b.pass}, nil
}

func nilLogger() *log.Logger { return log.New(io.Discard, "", 0) }
