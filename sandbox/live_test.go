package sandbox

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"gotest.tools/v3/assert"
)

// tarParts is the only parser of names the sandbox chose (tar entries):
// whatever it returns stays below the destination.
func FuzzTarParts(f *testing.F) {
	for _, s := range []string{"a/b", "/abs/f", "../x", "a/../../b", "./", "a//b/./c", strings.Repeat("a/", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		parts, err := tarParts(name)
		if err != nil {
			return
		}
		assert.Assert(t, len(parts) <= maxCopyDepth)
		for _, p := range parts {
			assert.Assert(t, p != "" && p != "." && p != ".." && !strings.Contains(p, "/") && !strings.Contains(p, "\x00"), "%q from %q", p, name)
		}
	})
}

func TestTarPartsRefusesParents(t *testing.T) {
	for _, name := range []string{"../x", "a/../../b", "a/..", ".."} {
		_, err := tarParts(name)
		assert.ErrorContains(t, err, "names a parent directory")
	}
	parts, err := tarParts("/abs//./f")
	assert.NilError(t, err)
	assert.DeepEqual(t, parts, []string{"abs", "f"})
}

func TestSockaddr(t *testing.T) {
	for _, c := range []struct {
		network, address string
		family, typ      int
		err              string
	}{
		{"tcp", "127.0.0.1:80", unix.AF_INET, unix.SOCK_STREAM, ""},
		{"tcp", "localhost:80", unix.AF_INET, unix.SOCK_STREAM, ""},
		{"tcp6", "localhost:80", unix.AF_INET6, unix.SOCK_STREAM, ""},
		{"udp", "[::1]:53", unix.AF_INET6, unix.SOCK_DGRAM, ""},
		{"tcp4", "[::1]:53", 0, 0, "not an IPv4 address"},
		{"tcp6", "10.0.0.1:53", 0, 0, "not an IPv6 address"},
		{"tcp", "example.org:80", 0, 0, "names are not resolved"},
		{"unix", "/x", 0, 0, "use tcp"},
		{"tcp", "1.2.3.4", 0, 0, "missing port"},
	} {
		_, family, typ, err := sockaddr(c.network, c.address)
		if c.err != "" {
			assert.ErrorContains(t, err, c.err, "%s %s", c.network, c.address)
			continue
		}
		assert.NilError(t, err)
		assert.Equal(t, family, c.family)
		assert.Equal(t, typ, c.typ)
	}
}
