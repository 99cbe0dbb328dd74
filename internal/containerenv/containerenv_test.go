package containerenv

import (
	"testing"

	"gotest.tools/v3/assert"
)

func TestSet(t *testing.T) {
	assert.DeepEqual(t, Set([]string{"A=1", "container=podman", "B=2"}), []string{"A=1", "B=2", "container=nsbox"})
	assert.DeepEqual(t, Set(nil), []string{"container=nsbox"})
}
