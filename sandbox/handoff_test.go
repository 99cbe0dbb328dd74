package sandbox

import (
	"strings"
	"testing"

	"github.com/nsbox/nsbox/internal/handoff"
	"github.com/nsbox/nsbox/sandbox/internal/stage"
)

func TestHandOffVar(t *testing.T) {
	got, err := handOffVar(42, 5, -1, 0, 7, []handoff.Step{
		{Op: handoff.Mkdir, Path: "/s/.logs"},
		{Op: handoff.Rename, Path: "/s/a b/log", To: "/s/.logs/a;b:c"},
		{Op: handoff.Unlink, Path: "/s/x"},
		{Op: handoff.Rmdir, Path: "/s"},
		{Op: handoff.Close, FD: 12},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := stage.HandOffEnv + "=42,5,-1,0,7" +
		";mkdir:" + "2f732f2e6c6f6773" +
		";rename:" + "2f732f6120622f6c6f67" + ":" + "2f732f2e6c6f67732f613b623a63" +
		";unlink:" + "2f732f78" +
		";rmdir:" + "2f73" +
		";close:" + "3132"
	if got != want {
		t.Errorf("handOffVar:\n got %s\nwant %s", got, want)
	}
}

func TestHandOffVarRefusesBadSteps(t *testing.T) {
	for _, st := range []handoff.Step{
		{Op: handoff.Unlink},
		{Op: handoff.Rename, Path: "/a"},
		{Op: handoff.Unlink, Path: "/a", To: "/b"},
		{Op: handoff.Op(99), Path: "/a"},
		{Op: handoff.Close, FD: 2},
		{Op: handoff.Close, FD: 5, Path: "/a"},
	} {
		if _, err := handOffVar(1, 3, -1, -1, 0, []handoff.Step{st}); err == nil || !strings.Contains(err.Error(), "fix:") {
			t.Errorf("step %+v: got %v, want an error with a fix", st, err)
		}
	}
}
