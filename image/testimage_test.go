package image

import (
	"archive/tar"
	"bytes"
	"testing"
	"time"

	"gotest.tools/v3/assert"
)

// entry is one tar entry of a test layer.
type entry struct {
	name, link string
	typ        byte
	mode       int64
	data       []byte
	size       int64 // for a header that lies about the size
	pax        map[string]string
	mtime      time.Time // default: 1700000000
}

func layerTar(t *testing.T, es ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.data)), ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX, PAXRecords: e.pax}
		if !e.mtime.IsZero() {
			h.ModTime = e.mtime
		}
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
