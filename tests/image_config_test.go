package tests

import (
	"os"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/icmd"
)

// TestImageGroups: the image's User gets the supplementary groups the
// image's /etc/group gives it (the map holds subordinate ids), not the
// caller's; --uid drops them.
func TestImageGroups(t *testing.T) {
	_, _, ops := imageHome(t)
	host := startRegistry(t, nil)
	groups := layerFrom(t, tarEntry{name: "etc/group", data: []byte("root:x:0:\nwheel:x:10:root,app\naudio:x:29:other,app\nusers:x:100:other\napp:x:1000:\n")})
	ref := host + "/groups:1"
	pushImage(t, ref, imageFrom(t, v1.Config{User: "app"}, hostArch(), busyboxLayer(t), groups))
	nsboxWith([]string{"run", "--image", ref, "--", "id", "-G"}, ops...).Assert(t, icmd.Expected{Out: "1000 10 29\n"})
	nsboxWith([]string{"run", "--image", ref, "--uid", "1000", "--", "id", "-G"}, ops...).Assert(t, icmd.Expected{Out: "1000\n"})
}

// TestImageStopSignal: nsbox stop sends the image's StopSignal, which
// the command traps and ends on; SIGTERM would have killed it untrapped.
func TestImageStopSignal(t *testing.T) {
	data, work, _ := imageHome(t)
	host := startRegistry(t, nil)
	ref := host + "/stop:1"
	cfg := v1.Config{StopSignal: "SIGUSR1", Cmd: []string{"sh", "-c", `trap "echo got usr1; exit 7" USR1; echo ready; while :; do sleep 0.1; done`}}
	pushImage(t, ref, imageFrom(t, cfg, hostArch(), busyboxLayer(t)))
	env := append(os.Environ(), "XDG_DATA_HOME="+data, "XDG_RUNTIME_DIR="+t.TempDir())
	run := func(args ...string) *icmd.Result {
		return icmd.RunCmd(icmd.Command(nsboxBin, args...), icmd.Dir(work), icmd.WithEnv(env...))
	}
	run("run", "--detach", "--name", "stopme", "--image", ref).Assert(t, icmd.Success)
	t.Cleanup(func() { run("kill", "stopme") })
	waitFor(t, func() bool { return run("logs", "stopme").Stdout() == "ready\n" }, "the command to start")
	res := run("inspect", "stopme")
	res.Assert(t, icmd.Success)
	assert.Assert(t, strings.Contains(res.Stdout(), `"stopSignal": 10`), res.Stdout())
	run("stop", "--timeout", "5", "stopme").Assert(t, icmd.Success)
	run("logs", "stopme").Assert(t, icmd.Expected{Out: "ready\ngot usr1\n"})
}
