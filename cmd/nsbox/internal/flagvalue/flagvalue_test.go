package flagvalue

import (
	"io/fs"
	"testing"

	"gotest.tools/v3/assert"
)

func TestMode(t *testing.T) {
	m, err := Mode("1777")
	assert.NilError(t, err)
	assert.Equal(t, m, fs.ModePerm|fs.ModeSticky)
	m, err = Mode("6755")
	assert.NilError(t, err)
	assert.Equal(t, m, 0o755|fs.ModeSetuid|fs.ModeSetgid)
	_, err = Mode("8")
	assert.ErrorContains(t, err, "octal")
	_, err = Mode("17777")
	assert.ErrorContains(t, err, "0000-7777")
}
