package ties

import (
	"testing"

	"github.com/nsbox/nsbox/sandbox"
	"gotest.tools/v3/assert"
)

func TestHostPathOf(t *testing.T) {
	ms := []sandbox.Mount{
		{Type: sandbox.MountBind, Source: "/usr", Destination: "/usr"},
		{Type: sandbox.MountTmpfs, Destination: "/tmp"},
		{Type: sandbox.MountDir, Destination: "/tmp/made"},
	}
	assert.Equal(t, HostPathOf(ms, "/usr/share/x"), "/usr/share/x")
	assert.Equal(t, HostPathOf(ms, "/tmp/made/x"), "")
	assert.Equal(t, HostPathOf(ms, "/etc/x"), "")
}
