package stage

import (
	"testing"

	"gotest.tools/v3/assert"
)

// The vetoes keep nsbox run's pre-forked stage from making its namespaces
// early when a flag asks for other namespaces or a cgroup.
func TestPreforkVetoes(t *testing.T) {
	vetoes := "--share\x00--net=host\x00--memory\x00"
	for _, tc := range []struct {
		argv []string
		want bool
	}{
		{[]string{"nsbox", "run", "--", "true"}, false},
		{[]string{"nsbox", "run", "--map", "single", "--", "true"}, false},
		{[]string{"nsbox", "run", "--share", "net", "--", "true"}, true},
		{[]string{"nsbox", "run", "--share=net,pid", "--", "true"}, true},
		{[]string{"nsbox", "run", "--net", "host", "--", "true"}, true},
		{[]string{"nsbox", "run", "--net=host", "true"}, true},
		{[]string{"nsbox", "run", "--net", "user", "--", "true"}, false},
		{[]string{"nsbox", "run", "--memory", "1G", "true"}, true},
		// After "--" the words are the command's.
		{[]string{"nsbox", "run", "--", "sh", "--share", "x"}, false},
		// The last word has no value to join.
		{[]string{"nsbox", "run", "--net"}, false},
	} {
		assert.Equal(t, preforkVetoed(vetoes, tc.argv), tc.want, "%q", tc.argv)
	}
	assert.Equal(t, preforkVetoed("", []string{"nsbox", "run", "--share", "net"}), false)
}
