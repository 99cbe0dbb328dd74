package stage

import (
	"bytes"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
)

// The records mounts.c reads: one "mount" opens each op, the destination
// is cleaned, file data is hex, the flags are protocol.h's bits.
func TestEncodeMounts(t *testing.T) {
	c := Config{NewRoot: true, OwnerUID: 1000, OwnerGID: -1, Ops: []Op{
		{Type: "bind", Source: "/a", Destination: "/b/../c", ReadOnly: true, Optional: true, What: "bind mount /a on /b/../c"},
		{Type: "file", Destination: "/f", Data: []byte{0, 'x'}, Mode: 0o600, What: "file mount on /f"},
		{Type: "overlay", Lower: []string{"/l1", "/l2"}, Upper: "/u", Work: "/w", Destination: "/o", What: "overlay mount on /o"},
	}}
	var got []string
	for _, r := range bytes.Split(bytes.TrimSuffix(c.Encode(), []byte{0}), []byte{0}) {
		if k, _, _ := strings.Cut(string(r), "="); k == "new-root" || k == "owner-uid" || k == "owner-gid" || strings.HasPrefix(k, "mount") {
			got = append(got, string(r))
		}
	}
	assert.DeepEqual(t, got, []string{
		"owner-uid=1000", "owner-gid=-1", "new-root=1",
		"mount=bind", "mount-src=/a", "mount-dst=/c", "mount-flags=5", "mount-mode=0", "mount-what=bind mount /a on /b/../c",
		"mount=file", "mount-dst=/f", "mount-flags=0", "mount-mode=384", "mount-data=0078", "mount-what=file mount on /f",
		"mount=overlay", "mount-dst=/o", "mount-flags=0", "mount-mode=0", "mount-lower=/l1", "mount-lower=/l2",
		"mount-upper=/u", "mount-work=/w", "mount-what=overlay mount on /o",
	})
}

func TestJoinConfigRecords(t *testing.T) {
	c := Config{TTY: -1, Args: []string{"ps"}, JoinPID: 42, JoinStart: 987654}
	b := c.Encode()
	assert.Assert(t, bytes.Contains(b, []byte("\x00join-pid=42\x00join-start=987654\x00")), "%q", b)
	c.JoinPID = 0
	assert.Assert(t, !bytes.Contains(c.Encode(), []byte("join-")))
}
