package sandbox

import (
	"bytes"
	"testing"

	"gotest.tools/v3/assert"
)

func TestParseNamespaceIDs(t *testing.T) {
	payload := []byte("user=11\nmnt=12\npid=13\nnet=14\nipc=15\nuts=16\ncgroup=17\n")
	assert.DeepEqual(t, parseNamespaceIDs(payload, AllNamespaces()), map[string]uint64{
		"user": 11, "mnt": 12, "pid": 13, "net": 14, "ipc": 15, "uts": 16, "cgroup": 17})
	// Shared namespaces are left out; the user namespace never is.
	shared := AllNamespaces()
	shared.Net, shared.Cgroup = false, false
	assert.DeepEqual(t, parseNamespaceIDs(payload, shared), map[string]uint64{
		"user": 11, "mnt": 12, "pid": 13, "ipc": 15, "uts": 16})
	assert.DeepEqual(t, parseNamespaceIDs([]byte("user=x\nbogus=1\nmnt"), AllNamespaces()), map[string]uint64{})
}

func FuzzParseNamespaceIDs(f *testing.F) {
	f.Add([]byte("user=11\nmnt=12\n"))
	f.Add([]byte("=\n\n=1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for k := range parseNamespaceIDs(b, AllNamespaces()) {
			if !bytes.Contains(b, []byte(k+"=")) {
				t.Fatalf("key %q not in the input", k)
			}
		}
	})
}
