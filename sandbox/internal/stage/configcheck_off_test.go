//go:build !nsbox_configcheck

package stage

import (
	"os"
	"testing"
)

// Without the nsbox_configcheck tag the tests that decode with the
// stage's C decoder (configcheck_test.go, the fuzz targets) are not
// built; CI must not pass without them.
func TestConfigCheckBuilt(t *testing.T) {
	msg := "the CONFIG round-trip tests need the build tag: go test -tags nsbox_configcheck (hack/test.sh sets it)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
