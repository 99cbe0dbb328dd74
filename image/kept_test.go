package image

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
)

func TestValidKeptName(t *testing.T) {
	for _, n := range []string{"a", "dev-env", "go1.26_cache", "0"} {
		assert.Assert(t, ValidKeptName(n), n)
	}
	for _, n := range []string{"", ".", "..", ".hidden", "-x", "a/b", "../x", "a b", string(make([]byte, 65))} {
		assert.Assert(t, !ValidKeptName(n), n)
	}
}

// TestKeptLayers: a held layer is in use (listed so, not removed, not
// held twice); released, rm removes it; prune removes one whose image is
// gone.
func TestKeptLayers(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	dir, lock, err := s.HoldKept("dev")
	assert.NilError(t, err)
	assert.NilError(t, os.MkdirAll(filepath.Join(dir, "upper"), 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "image"), []byte("sha256:aa\n"), 0o600))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "upper", "f"), []byte("12345"), 0o600))
	_, _, err = s.HoldKept("dev")
	assert.ErrorIs(t, err, ErrKeptInUse)
	ks, err := s.KeptLayers()
	assert.NilError(t, err)
	assert.DeepEqual(t, ks, []Kept{{Name: "dev", Image: "sha256:aa", Size: 5, InUse: true}})
	_, err = s.RemoveKept("dev")
	assert.ErrorIs(t, err, ErrKeptInUse)
	freed, err := s.Prune()
	assert.NilError(t, err)
	assert.Equal(t, freed, int64(0), "held: prune leaves it")
	lock.Close()

	freed, err = s.Prune()
	assert.NilError(t, err)
	assert.Equal(t, freed, int64(5), "its image sha256:aa is not stored")
	_, err = os.Stat(dir)
	assert.Assert(t, os.IsNotExist(err))

	dir, lock, err = s.HoldKept("two")
	assert.NilError(t, err)
	lock.Close()
	assert.NilError(t, os.MkdirAll(dir, 0o700))
	_, err = s.RemoveKept("two")
	assert.NilError(t, err)
	_, err = s.RemoveKept("two")
	assert.ErrorContains(t, err, "does not exist")
	_, _, err = s.HoldKept("../x")
	assert.ErrorContains(t, err, "is not 1 to 64")
}
