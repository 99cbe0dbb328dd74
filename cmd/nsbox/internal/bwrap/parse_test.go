package bwrap

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/nsbox/nsbox/sandbox"
	"gotest.tools/v3/assert"
)

func TestBwrapParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		argv []string
		err  string
		test func(t *testing.T, o *opts)
	}{
		{name: "command after options", argv: []string{"--ro-bind", "/", "/", "--unshare-pid", "ls", "-l"},
			test: func(t *testing.T, o *opts) {
				assert.DeepEqual(t, o.args, []string{"ls", "-l"})
				assert.Assert(t, o.unsharePID)
				assert.Equal(t, o.mounts[0].ReadOnly, true)
			}},
		{name: "double dash", argv: []string{"--", "--weird"},
			test: func(t *testing.T, o *opts) { assert.DeepEqual(t, o.args, []string{"--weird"}) }},
		{name: "unknown", argv: []string{"--x"}, err: "Unknown option --x"},
		{name: "no pflag syntax", argv: []string{"--chdir=/x", "true"}, err: "Unknown option --chdir=/x"},
		{name: "short arguments", argv: []string{"--bind", "/a"}, err: "--bind takes two arguments"},
		{name: "perms applies once", argv: []string{"--perms", "0700", "--dir", "/a", "--dir", "/b", "true"},
			test: func(t *testing.T, o *opts) {
				assert.Equal(t, o.mounts[0].Mode, fs.FileMode(0o700))
				assert.Equal(t, o.mounts[1].Mode, fs.FileMode(0o755))
			}},
		{name: "perms needs an op", argv: []string{"--perms", "0700", "--unshare-pid", "true"}, err: "--perms must be followed by an option that creates a file"},
		{name: "perms twice", argv: []string{"--perms", "0700", "--perms", "0700"}, err: "--perms given twice for the same action"},
		{name: "size", argv: []string{"--size", "4096", "--tmpfs", "/t", "true"},
			test: func(t *testing.T, o *opts) { assert.Equal(t, o.mounts[0].Size, int64(4096)) }},
		{name: "size needs tmpfs", argv: []string{"--size", "4096", "--dir", "/t"}, err: "--size must be followed by --tmpfs"},
		{name: "env in order", argv: []string{"--clearenv", "--setenv", "A", "1", "--setenv", "B", "2", "--unsetenv", "A", "--setenv", "B", "3", "true"},
			test: func(t *testing.T, o *opts) { assert.DeepEqual(t, o.env, []string{"B=3"}) }},
		{name: "caps in order", argv: []string{"--cap-add", "ALL", "--cap-drop", "CAP_NET_RAW", "true"},
			test: func(t *testing.T, o *opts) {
				raw, _ := sandbox.ParseCapability("CAP_NET_RAW")
				assert.Equal(t, o.caps, sandbox.AllCapabilities()&^raw)
			}},
		{name: "overlay sources lowest first", argv: []string{"--overlay-src", "/l1", "--overlay-src", "/l2", "--overlay", "/u", "/w", "/d", "true"},
			test: func(t *testing.T, o *opts) { assert.DeepEqual(t, o.mounts[0].Lower, []string{"/l2", "/l1"}) }},
		{name: "dangling overlay-src", argv: []string{"--overlay-src", "/l1", "true"}, err: "--overlay-src must be followed by another --overlay-src"},
		{name: "bad fd", argv: []string{"--info-fd", "x", "true"}, err: "Invalid fd: x"},
		{name: "tmp-overlay over sources", argv: []string{"--overlay-src", "/a", "--tmp-overlay", "/d", "true"},
			test: func(t *testing.T, o *opts) {
				assert.DeepEqual(t, o.mounts[0], sandbox.Mount{Type: sandbox.MountTmpOverlay, Lower: []string{"/a"}, Destination: "/d", Flag: o.mounts[0].Flag})
			}},
		{name: "ro-overlay has no upper", argv: []string{"--overlay-src", "/a", "--overlay-src", "/b", "--ro-overlay", "/d", "true"},
			test: func(t *testing.T, o *opts) {
				assert.DeepEqual(t, o.mounts[0], sandbox.Mount{Type: sandbox.MountOverlay, Lower: []string{"/b", "/a"}, Destination: "/d", Flag: o.mounts[0].Flag})
			}},
		{name: "ro-overlay needs two", argv: []string{"--overlay-src", "/a", "--ro-overlay", "/d", "true"}, err: "--ro-overlay requires at least two --overlay-src"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOpts()
			err := o.parse(tc.argv)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			assert.NilError(t, err)
			tc.test(t, o)
		})
	}
}

func TestSandboxDir(t *testing.T) {
	ms := []sandbox.Mount{
		{Type: sandbox.MountBind, Source: "/usr", Destination: "/usr"},
		{Type: sandbox.MountTmpfs, Destination: "/tmp"},
		{Type: sandbox.MountDir, Destination: "/tmp/made"},
	}
	assert.Assert(t, sandboxDir(ms, "/usr/bin"))
	assert.Assert(t, sandboxDir(ms, "/tmp"))
	assert.Assert(t, sandboxDir(ms, "/tmp/made"))
	assert.Assert(t, !sandboxDir(ms, "/tmp/other"))
	assert.Assert(t, !sandboxDir(ms, "/etc"))
}

func TestStartsAsBwrap(t *testing.T) {
	for args, want := range map[string]bool{
		"--unshare-all --bind / / true": true, "--ro-bind / / true": true, "--args 3": true,
		"run --ro-bind / / true": false, "--help": false, "--version": false, "": false, "--x": false, "bwrap --bind / / true": false,
	} {
		assert.Equal(t, StartsAsBwrap(strings.Fields(args)), want, args)
	}
}
