package sandbox_test

import (
	"os"
	"testing"

	"github.com/nsbox/nsbox/sandbox"
)

// TestMain does what every program that starts sandboxes does first.
func TestMain(m *testing.M) {
	sandbox.Init()
	os.Exit(m.Run())
}
