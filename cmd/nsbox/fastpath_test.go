package main

import (
	"testing"

	"gotest.tools/v3/assert"
)

// The early namespaces are decided on the flags as pflag parsed them: a
// flag that only starts like a vetoing one (--share-home, once matched
// as --share by a prefix test in C) keeps the fast path, and words after
// "--" are the command's.
func TestEarlyNamespaces(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"--", "true"}, true},
		{[]string{"--map", "single", "--", "true"}, true},
		{[]string{"--share-home", "--", "true"}, true},
		{[]string{"--net", "user", "--", "true"}, true},
		{[]string{"--", "sh", "--share", "net"}, true},
		{[]string{"--share", "net", "--", "true"}, false},
		{[]string{"--share=net,pid", "true"}, false},
		{[]string{"--unshare", "mnt", "true"}, false},
		{[]string{"--net", "host", "--", "true"}, false},
		{[]string{"--net=host", "true"}, false},
		{[]string{"--memory", "1G", "true"}, false},
		{[]string{"--pids", "10", "true"}, false},
		{[]string{"--cpus", "1.5", "true"}, false},
	} {
		f := newRunFlags()
		assert.NilError(t, f.fs.Parse(tc.args))
		assert.Check(t, earlyNamespaces(f.fs) == tc.want, "%q: want %v", tc.args, tc.want)
	}
	// Every name in the list is a flag of nsbox run's.
	f := newRunFlags()
	for _, name := range otherNamespaceFlags {
		assert.Check(t, f.fs.Lookup(name) != nil, "--%s", name)
	}
}
