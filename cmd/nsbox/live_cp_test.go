package main

import (
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

func TestSandboxPath(t *testing.T) {
	for _, c := range []struct {
		arg, name, path string
		ok              bool
	}{
		{"b:/work", "b", "/work", true},
		{"b:", "b", "", true},
		{"./b:/work", "", "", false},
		{"/tmp/b:x", "", "", false},
		{"dir/b:x", "", "", false},
		{"-", "", "", false},
		{"-b:x", "", "", false},
		{"plain", "", "", false},
	} {
		name, p, ok := sandboxPath(c.arg)
		assert.Equal(t, ok, c.ok, c.arg)
		assert.Equal(t, name, c.name, c.arg)
		assert.Equal(t, p, c.path, c.arg)
	}
}

func FuzzSandboxPath(f *testing.F) {
	for _, s := range []string{"b:/x", "./a:b", "a/b:c", "x", ":", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		name, p, ok := sandboxPath(arg)
		if ok {
			assert.Equal(t, name+":"+p, arg)
			assert.Assert(t, !strings.Contains(name, "/") && name != "")
		}
	})
}
