package tests

// Attacks on nsbox's state records (issue 12, item 3) and the state
// directory as an optional service (issue 13): what a sandbox can see of
// the state directory, what nsbox exec does with a record changed behind
// its back, records larger than 64 KiB, and runs where the directory
// cannot be made.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

// envWithout is the test's environment without the named variables.
func envWithout(keys ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, d := range keys {
			drop = drop || k == d
		}
		if !drop {
			env = append(env, kv)
		}
	}
	return env
}

// startVictim starts `nsbox run --name NAME -- sleep 600` with env and
// waits until nsbox ps lists it; it is killed when the test ends.
func startVictim(t *testing.T, env []string, name string, flags ...string) {
	t.Helper()
	cmd := exec.Command(nsboxBin, append(append([]string{"run", "--name", name}, flags...), "--", "sleep", "600")...)
	cmd.Env = env
	assert.NilError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		res := icmd.RunCmd(icmd.Command(nsboxBin, "ps"), icmd.WithEnv(env...))
		if strings.Contains(res.Stdout(), "\n"+name+" ") {
			return poll.Success()
		}
		return poll.Continue("nsbox ps does not list %s yet: %s", name, res.Combined())
	}, poll.WithTimeout(10*time.Second), poll.WithDelay(10*time.Millisecond))
}

// attackStateDir is a script run inside a sandbox: it lists the state
// directory dir, reads and overwrites the record at rec, and plants an
// entry; it prints a word for each step that worked.
func attackStateDir(dir, rec string) string {
	return fmt.Sprintf(`ls -A %[1]s; cat %[2]s >/dev/null 2>&1 && echo READ
echo '{}' 2>/dev/null > %[2]s && echo WROTE
mkdir %[1]s/planted 2>/dev/null && echo PLANTED
true`, dir, rec)
}

func TestEscapeStateDirHiddenWhenCwdIsTmp(t *testing.T) {
	requireUnprivileged(t)
	// The setting: no XDG_RUNTIME_DIR, so the state directory is
	// /tmp/nsbox-UID, and the sandbox runs from /tmp, which the default
	// view binds writable.
	env := envWithout("XDG_RUNTIME_DIR", "TMPDIR")
	name := fmt.Sprintf("victim-%d", os.Getpid())
	startVictim(t, env, name)
	dir := fmt.Sprintf("/tmp/nsbox-%d", os.Getuid())
	rec := filepath.Join(dir, name, "state.json")
	before, err := os.ReadFile(rec)
	assert.NilError(t, err, "the record is where the attack looks")

	probe := fmt.Sprintf("/tmp/nsbox-escape-probe-%d", os.Getpid())
	defer os.Remove(probe)
	// From /tmp nsbox binds nothing writable by itself (a system
	// directory): the user asks for the host's /tmp explicitly.
	res := icmd.RunCmd(icmd.Command(nsboxBin, "run", "--bind", "/tmp", "--", "sh", "-c", "touch "+probe+"; "+attackStateDir(dir, rec)),
		icmd.Dir("/tmp"), icmd.WithEnv(env...))
	res.Assert(t, icmd.Success)
	// Control: /tmp is the host's, writable, in this sandbox.
	_, err = os.Stat(probe)
	assert.NilError(t, err, "the sandbox did not see the host's /tmp: the attack proves nothing")
	// The state directory in it is empty and read-only.
	assert.Check(t, is.Equal(res.Stdout(), ""), "the sandbox saw or changed the state directory")

	after, err := os.ReadFile(rec)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(after), string(before)))
	_, err = os.Stat(filepath.Join(dir, "planted"))
	assert.Check(t, os.IsNotExist(err))
	icmd.RunCmd(icmd.Command(nsboxBin, "exec", name, "--", "true"), icmd.WithEnv(env...)).Assert(t, icmd.Success)
}

func TestEscapeStateDirHiddenUnderXDGRuntimeDir(t *testing.T) {
	requireUnprivileged(t)
	// A runtime directory outside /tmp, so that the read-only host root
	// shows it too (the default view's /tmp is a tmpfs of its own).
	base, err := os.MkdirTemp("/var/tmp", "nsbox-xdg-")
	assert.NilError(t, err)
	defer os.RemoveAll(base)
	xdg := filepath.Join(base, "run")
	assert.NilError(t, os.Mkdir(xdg, 0o700))
	env := append(envWithout("XDG_RUNTIME_DIR"), "XDG_RUNTIME_DIR="+xdg)
	startVictim(t, env, "victim")
	dir := filepath.Join(xdg, "nsbox")
	rec := filepath.Join(dir, "victim", "state.json")
	before, err := os.ReadFile(rec)
	assert.NilError(t, err)

	for _, cwd := range []string{"/", base} { // read-only host root; cwd bound writable
		t.Run(cwd, func(t *testing.T) {
			res := icmd.RunCmd(icmd.Command(nsboxBin, "run", "--", "sh", "-c", attackStateDir(dir, rec)),
				icmd.Dir(cwd), icmd.WithEnv(env...))
			res.Assert(t, icmd.Success)
			assert.Check(t, is.Equal(res.Stdout(), ""), "the sandbox saw or changed the state directory")
		})
	}
	after, err := os.ReadFile(rec)
	assert.NilError(t, err)
	assert.Check(t, is.Equal(string(after), string(before)))
}

// forge rewrites the record at path with change applied to its JSON, as
// a sandbox that could write the state directory would.
func forge(t *testing.T, path string, change func(rec map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	assert.NilError(t, err)
	var rec map[string]any
	assert.NilError(t, json.Unmarshal(b, &rec))
	change(rec)
	out, err := json.MarshalIndent(rec, "", "  ")
	assert.NilError(t, err)
	assert.NilError(t, os.WriteFile(path, append(out, '\n'), 0o600))
}

func TestEscapeExecRefusesForgedRecord(t *testing.T) {
	s := newStateEnv(t)
	startVictim(t, s.env(), "victim")
	rec := filepath.Join(s.xdg, "nsbox", "victim", "state.json")
	original, err := os.ReadFile(rec)
	assert.NilError(t, err)
	hostNet, err := os.Readlink("/proc/self/ns/net")
	assert.NilError(t, err)
	var hostNetIno uint64
	_, err = fmt.Sscanf(hostNet, "net:[%d]", &hostNetIno)
	assert.NilError(t, err)

	// Control: exec joins the sandbox's own network namespace.
	res := s.run("exec", "victim", "--", "readlink", "/proc/self/ns/net")
	res.Assert(t, icmd.Success)
	assert.Check(t, strings.TrimSpace(res.Stdout()) != hostNet)

	marker := filepath.Join(t.TempDir(), "ran")
	for _, tc := range []struct {
		name   string
		change func(rec map[string]any)
		want   string
	}{
		{"join the host's network, no seccomp", func(rec map[string]any) {
			delete(rec["namespaces"].(map[string]any), "net")
			spec := rec["spec"].(map[string]any)
			spec["namespaces"].(map[string]any)["net"] = false
			spec["security"] = map[string]any{"noDefaultSeccomp": true}
		}, "the record says the sandbox shares this command's net namespace"},
		{"the host's network namespace inode", func(rec map[string]any) {
			rec["namespaces"].(map[string]any)["net"] = hostNetIno
		}, fmt.Sprintf("the record says net namespace %d, PID 1", hostNetIno)},
		{"no seccomp", func(rec map[string]any) {
			rec["spec"].(map[string]any)["security"] = map[string]any{"noDefaultSeccomp": true}
		}, "state.json differs from the copy its launcher"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forge(t, rec, tc.change)
			defer os.WriteFile(rec, original, 0o600)
			res := s.run("exec", "victim", "--", "touch", marker)
			res.Assert(t, icmd.Expected{ExitCode: 125, Err: "state record does not match the running sandbox: " + tc.want})
			assert.Check(t, is.Len(splitLines(res.Stderr()), 1), "one line")
			_, err := os.Stat(marker)
			assert.Check(t, os.IsNotExist(err), "the command ran")
			for _, cmd := range [][]string{{"inspect", "victim"}, {"kill", "victim"}, {"stop", "victim"}} {
				s.run(cmd...).Assert(t, icmd.Expected{ExitCode: 125, Err: "state record does not match"})
			}
			res = s.run("ps")
			res.Assert(t, icmd.Success)
			assert.Check(t, !strings.Contains(res.Stdout(), "victim"), res.Stdout())
			assert.Check(t, is.Contains(res.Stderr(), "nsbox: not listed: sandbox victim: state record does not match"))
		})
		// The sandbox lived through it, and the true record works.
		s.run("exec", "victim", "--", "true").Assert(t, icmd.Success)
	}
}

func TestStateLargeRecord(t *testing.T) {
	s := newStateEnv(t)
	// 200 KiB of environment, in variables execve accepts (each under
	// MAX_ARG_STRLEN, 128 KiB).
	args := []string{"run", "--detach", "--name", "big"}
	for i := 0; i < 50; i++ {
		args = append(args, "--setenv", fmt.Sprintf("BIG%d=%s", i, strings.Repeat("x", 4096)))
	}
	res := s.run(append(args, "--", "sleep", "600")...)
	res.Assert(t, icmd.Success)
	defer s.run("kill", "big")
	st, err := os.Stat(filepath.Join(s.xdg, "nsbox", "big", "state.json"))
	assert.NilError(t, err)
	assert.Check(t, st.Size() > 200<<10, "record of %d bytes", st.Size())

	assert.Check(t, s.listed("big"))
	res = s.run("exec", "big", "--", "sh", "-c", `echo ${#BIG49}`)
	res.Assert(t, icmd.Expected{Out: "4096"})
	s.run("kill", "big").Assert(t, icmd.Success)
}

func TestStateDirUnusable(t *testing.T) {
	requireUnprivileged(t)
	// A read-only /tmp and no XDG_RUNTIME_DIR, built without touching the
	// host: a private mount namespace (unshare -rm) makes /tmp read-only,
	// then a nested user namespace maps us back to our own uid and gid,
	// where nsbox runs with the single mapping.
	env := envWithout("XDG_RUNTIME_DIR", "TMPDIR")
	inside := func(args ...string) *icmd.Result {
		script := fmt.Sprintf(`mount --bind /tmp /tmp && mount -o remount,bind,ro /tmp || exit 99
exec unshare -U --map-user=%d --map-group=%d "$@"`, os.Getuid(), os.Getgid())
		argv := append([]string{"-rm", "sh", "-c", script, "sh"}, args...)
		return icmd.RunCmd(icmd.Command("unshare", argv...), icmd.WithEnv(env...))
	}
	run := func(args ...string) *icmd.Result { return inside(append([]string{nsboxBin}, args...)...) }
	// Control: /tmp is read-only there.
	res := inside("sh", "-c", "touch /tmp/nsbox-test-probe")
	res.Assert(t, icmd.Expected{ExitCode: 1, Err: "Read-only file system"})

	// Unnamed: the command runs, and its status is its own.
	res = run("run", "--map", "single", "--", "sh", "-c", "echo ran; exit 3")
	res.Assert(t, icmd.Expected{ExitCode: 3, Out: "ran"})
	lines := splitLines(res.Stderr())
	assert.Assert(t, is.Len(lines, 1), res.Stderr())
	assert.Check(t, is.Contains(lines[0], "nsbox: notice: no usable state directory: create the state directory /tmp/nsbox-"))
	assert.Check(t, is.Contains(lines[0], "read-only file system; running without a state entry"))
	// Its name is its user namespace's: uid 0 or 1000 of one namespace
	// never meets that of another in one /tmp/nsbox-UID.
	assert.Check(t, is.Regexp(`/tmp/nsbox-\d+\.userns-\d+:`, lines[0]))

	// Named or detached: nobody could find it, so it fails, in one line.
	for _, flags := range [][]string{{"--name", "x"}, {"--detach"}} {
		res = run(append(append([]string{"run", "--map", "single"}, flags...), "--", "true")...)
		res.Assert(t, icmd.Expected{ExitCode: 125, Err: "no usable state directory"})
		assert.Check(t, is.Len(splitLines(res.Stderr()), 1), res.Stderr())
	}
}
