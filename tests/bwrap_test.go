package tests

// nsbox as bwrap: real bubblewrap command lines run through a `bwrap`
// symlink to the nsbox under test and through /usr/bin/bwrap, outputs
// compared (docs/bwrap.md).

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/icmd"
)

// systemBwrap is bubblewrap itself, as Debian installs it.
const systemBwrap = "/usr/bin/bwrap"

// bwrapLink returns a `bwrap` symlink to the nsbox under test.
func bwrapLink(t *testing.T) string {
	t.Helper()
	requireUnprivileged(t)
	dir := t.TempDir()
	link := filepath.Join(dir, "bwrap")
	assert.NilError(t, os.Symlink(nsboxBin, link))
	return link
}

// requireSystemBwrap: the comparisons need bubblewrap installed.
func requireSystemBwrap(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(systemBwrap); err != nil {
		cannotRun(t, "%s is not installed (apt-get install bubblewrap)", systemBwrap)
	}
}

// runScript runs a bash script with $B set to the bwrap under test, in dir.
func runScript(bwrap, dir, script string) *icmd.Result {
	cmd := icmd.Command("bash", "-c", script)
	return icmd.RunCmd(cmd, icmd.Dir(dir), icmd.WithEnv(append(os.Environ(), "B="+bwrap)...))
}

// compareBwraps runs script with both bwraps in dir and wants the same
// stdout, stderr and exit status; it returns nsbox's result.
func compareBwraps(t *testing.T, dir, script string) *icmd.Result {
	t.Helper()
	requireSystemBwrap(t)
	theirs := runScript(systemBwrap, dir, script)
	ours := runScript(bwrapLink(t), dir, script)
	t.Logf("bubblewrap:\n%s%s", theirs.Stdout(), theirs.Stderr())
	t.Logf("nsbox as bwrap:\n%s%s", ours.Stdout(), ours.Stderr())
	assert.Equal(t, ours.Stdout(), theirs.Stdout())
	assert.Equal(t, ours.Stderr(), theirs.Stderr())
	assert.Equal(t, ours.ExitCode, theirs.ExitCode)
	return ours
}

// TestBwrapCodingAgentLine: the line coding-agent sandboxes use: the host
// read-only, the project writable, no network, a new session.
func TestBwrapCodingAgentLine(t *testing.T) {
	dir := t.TempDir()
	assert.NilError(t, os.Chmod(dir, 0o755))
	script := `$B --ro-bind / / --bind "$PWD" "$PWD" --dev /dev --proc /proc --unshare-net --die-with-parent --new-session -- sh -c '
id -u; id -g; echo "PWD=$PWD"; pwd
echo data > out.txt && cat out.txt
touch /usr/nsbox-bwrap-probe 2>/dev/null || echo "/usr read-only"
ls /dev
cat /proc/self/uid_map /proc/self/gid_map
grep -c : /proc/net/dev
grep -E "^Cap(Eff|Prm|Bnd|Amb)" /proc/self/status
[ "$(ps -o sid= -p $$ | tr -d " ")" = "$$" ] && echo session-leader
tty >/dev/null 2>&1 || echo no-tty
'`
	res := compareBwraps(t, dir, script)
	res.Assert(t, icmd.Success)
	assert.Assert(t, strings.Contains(res.Stdout(), "PWD="+dir+"\n"))
	assert.Assert(t, strings.Contains(res.Stdout(), "/usr read-only"))
	assert.Assert(t, strings.Contains(res.Stdout(), "session-leader"))
	got, err := os.ReadFile(filepath.Join(dir, "out.txt"))
	assert.NilError(t, err)
	assert.Equal(t, string(got), "data\n")
}

// TestBwrapFlatpakLine: flatpak's option set, with the lock checked from
// outside while the sandbox runs.
func TestBwrapFlatpakLine(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		cannotRun(t, "python3 is needed to test the lock from outside (hack/setup-host.sh installs it)")
	}
	dir := t.TempDir()
	app := filepath.Join(dir, "app")
	assert.NilError(t, os.Mkdir(app, 0o755))
	assert.NilError(t, os.WriteFile(filepath.Join(app, ".ref"), []byte("ref\n"), 0o644))
	assert.NilError(t, os.WriteFile(filepath.Join(app, "hello"), []byte("hello from /app\n"), 0o644))
	script := `set -e
rm -f ready go; mkfifo ready go
` + lockCheck + `exec 5<app
$B --unshare-user --disable-userns --unshare-pid --die-with-parent --lock-file /app/.ref \
  --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 \
  --ro-bind-fd 5 /app --ro-bind-data 6 /etc/passwd --file 7 /etc/group --perms 0700 --bind-data 8 /run/user/x/data \
  --bind "$PWD/ready" /run/ready --bind "$PWD/go" /run/go \
  --proc /proc --dev /dev --tmpfs /tmp --setenv FLATPAK_ID org.example.App --unsetenv PATH --setenv PATH /app/bin:/usr/bin \
  --chdir /app --info-fd 9 --json-status-fd 10 \
  sh -c 'echo > /run/ready; read x < /run/go
echo "PWD=$PWD FLATPAK_ID=$FLATPAK_ID PATH=$PATH"; cat hello /etc/passwd /etc/group /run/user/x/data
ls -ld /run/user /run/user/x /run/user/x/data /etc/passwd /etc/group /tmp | cut -c1-10
touch /app/new 2>/dev/null || echo "/app read-only"
unshare -U true 2>/dev/null || echo "no user namespaces"
ps -o pid= -p $$ | tr -d " "' \
  6<<<"passwd-data" 7<<<"group-data" 8<<<"bind-data" 9>info 10>status &
read x < ready
python3 -c "$lockcheck" app/.ref
echo > go
wait $!
python3 -c "$lockcheck" app/.ref
sed -E 's/[0-9]{2,}/N/g' info status`
	res := compareBwraps(t, dir, script)
	res.Assert(t, icmd.Success)
	for _, want := range []string{"locked\n", "PWD=/app FLATPAK_ID=org.example.App PATH=/app/bin:/usr/bin\n",
		"hello from /app\npasswd-data\ngroup-data\nbind-data\n", "/app read-only", "no user namespaces", "\n2\nunlocked\n",
		`"exit-code": 0`} {
		assert.Assert(t, strings.Contains(res.Stdout(), want), "want %q", want)
	}
}

// TestBwrapPerms: --perms, 0000 included, for the op and the directories
// made on the way to it.
func TestBwrapPerms(t *testing.T) {
	res := compareBwraps(t, t.TempDir(), `$B --ro-bind / / --tmpfs /tmp --perms 0000 --dir /tmp/p/d --perms 0 --tmpfs /tmp/t \
  --perms 0700 --dir /tmp/q/d --perms 0705 --dir /tmp/r/d stat -c '%n %a' /tmp/p /tmp/p/d /tmp/t /tmp/q /tmp/q/d /tmp/r`)
	res.Assert(t, icmd.Expected{Out: "/tmp/p 700\n/tmp/p/d 0\n/tmp/t 0\n/tmp/q 700\n/tmp/q/d 700\n/tmp/r 705\n"})
}

// TestBwrapArgsFD: options read NUL-separated from --args FD.
func TestBwrapArgsFD(t *testing.T) {
	dir := t.TempDir()
	script := `printf -- '--ro-bind\0/\0/\0--setenv\0GREETING\0hello, world\0--chdir\0/usr\0' > args
$B --args 3 sh -c 'echo "$GREETING from $PWD"' 3<args`
	res := compareBwraps(t, dir, script)
	res.Assert(t, icmd.Expected{Out: "hello, world from /usr\n"})
}

// TestBwrapErrors: bubblewrap's exit status 1 and "bwrap: " lines.
func TestBwrapErrors(t *testing.T) {
	for _, tc := range []struct{ name, args, err string }{
		{"unknown option", "--x true", "bwrap: Unknown option --x\n"},
		{"not found", "--ro-bind / / nsbox-no-such-command", "bwrap: execvp nsbox-no-such-command: No such file or directory\n"},
		{"hostname without uts", "--ro-bind / / --hostname h true", "bwrap: Specifying --hostname requires --unshare-uts\n"},
		{"missing argument", "--ro-bind /", "bwrap: --ro-bind takes two arguments\n"},
		{"perms without op", "--perms 0700 --ro-bind / / true", "bwrap: --perms must be followed by an option that creates a file\n"},
		{"bad fd", "--file x /y true", "bwrap: Invalid fd: x\n"},
		{"disable-userns alone", "--disable-userns --ro-bind / / true", "bwrap: --disable-userns requires --unshare-user\n"},
		{"label", "--exec-label x true", "bwrap: labeling not supported on this system\n"},
		{"userns with unshare-user", "--userns 0 --unshare-user true", "bwrap: --userns not compatible --unshare-user\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := compareBwraps(t, t.TempDir(), "$B "+tc.args)
			res.Assert(t, icmd.Expected{ExitCode: 1})
			assert.Equal(t, res.Stderr(), tc.err)
		})
	}
	b := bwrapLink(t)
	// Usage on stderr without a command; the text differs (it says what
	// nsbox does not support).
	for _, bin := range []string{systemBwrap, b} {
		res := icmd.RunCmd(icmd.Command(bin))
		res.Assert(t, icmd.Expected{ExitCode: 1})
		assert.Assert(t, strings.HasPrefix(res.Stderr(), "usage: "+bin+" [OPTIONS...] [--] COMMAND [ARGS...]"), res.Stderr())
	}
	// --level-prefix is newer than Debian's bubblewrap 0.8.
	icmd.RunCmd(icmd.Command(b, "--level-prefix", "--x")).Assert(t, icmd.Expected{ExitCode: 1, Err: "<3>bwrap: Unknown option --x\n"})
	icmd.RunCmd(icmd.Command(b, "--help")).Assert(t, icmd.Expected{Out: "usage: " + b + " [OPTIONS...]"})
	icmd.RunCmd(icmd.Command(b, "--version")).Assert(t, icmd.Expected{Out: "bubblewrap 0.11.1"})
	icmd.RunCmd(icmd.Command(nsboxBin, "bwrap", "--x")).Assert(t, icmd.Expected{ExitCode: 1, Err: "bwrap: Unknown option --x"})
}

// TestBwrapDieWithParent: killing bwrap's caller kills the sandbox.
func TestBwrapDieWithParent(t *testing.T) {
	b := bwrapLink(t)
	marker := fmt.Sprintf("nsbox-bwrap-dwp-%d", os.Getpid())
	cmd := exec.Command("sh", "-c", b+` --ro-bind / / --die-with-parent -- bash -c 'exec -a `+marker+` sleep 300' & wait`)
	assert.NilError(t, cmd.Start())
	running := func() bool {
		out, _ := exec.Command("pgrep", "-f", "^"+regexp.QuoteMeta(marker)).Output()
		return len(strings.TrimSpace(string(out))) > 0
	}
	deadline := time.Now().Add(10 * time.Second)
	for !running() {
		assert.Assert(t, time.Now().Before(deadline), "the sandboxed command never started")
		time.Sleep(20 * time.Millisecond)
	}
	assert.NilError(t, cmd.Process.Kill())
	cmd.Wait()
	deadline = time.Now().Add(5 * time.Second)
	for running() {
		assert.Assert(t, time.Now().Before(deadline), "the sandboxed command outlived bwrap's parent")
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBwrapRemountRO: bubblewrap's --remount-ro changes the one mount, so
// a tmpfs mounted below it stays writable; nsbox run's own --remount-ro
// recurses.
func TestBwrapRemountRO(t *testing.T) {
	dir := t.TempDir()
	probe := `touch /tmp/top 2>/dev/null && echo top-writable || echo top-read-only
touch /tmp/sub/f 2>/dev/null && echo sub-writable || echo sub-read-only`
	res := compareBwraps(t, dir, `$B --ro-bind / / --dev /dev --tmpfs /tmp --tmpfs /tmp/sub --remount-ro /tmp sh -c '`+probe+`'`)
	res.Assert(t, icmd.Expected{Out: "top-read-only\nsub-writable\n"})
	run := icmd.RunCmd(icmd.Command(nsboxBin, "run", "--tmpfs", "/tmp", "--tmpfs", "/tmp/sub", "--remount-ro", "/tmp", "--", "sh", "-c", probe))
	run.Assert(t, icmd.Expected{Out: "top-read-only\nsub-read-only\n"})
}

// TestBwrapArgv0: --argv0 renames the command, which is still found by its
// own name in PATH; a failed exec names the program. (--argv0 is newer than
// Debian's bubblewrap 0.8: its 0.9 behaviour, checked by hand.)
func TestBwrapArgv0(t *testing.T) {
	script := `$B --ro-bind / / --argv0 renamed-shell sh -c 'cat /proc/$$/comm; head -c 13 /proc/$$/cmdline; echo'
$B --ro-bind / / --argv0 -bash bash -c 'echo "$0"; shopt -q login_shell && echo login'
$B --ro-bind / / --argv0 x nsbox-no-such-command; echo "exit $?"`
	res := runScript(bwrapLink(t), t.TempDir(), script)
	res.Assert(t, icmd.Expected{Out: "sh\nrenamed-shell\n-bash\nlogin\nexit 1\n",
		Err: "bwrap: execvp nsbox-no-such-command: No such file or directory\n"})
}

// TestBwrapBlockFD: with --block-fd the info is written, the sandbox is
// built, and the command runs only once the caller writes to FD.
func TestBwrapBlockFD(t *testing.T) {
	dir := t.TempDir()
	assert.NilError(t, os.Chmod(dir, 0o755))
	script := `set -e
rm -f blk info ran; mkfifo blk; exec 5<>blk
$B --ro-bind / / --bind "$PWD" "$PWD" --unshare-pid --info-fd 3 --block-fd 4 sh -c 'touch ran; echo command-ran' 3>info 4<blk &
for i in $(seq 200); do grep -q child-pid info 2>/dev/null && break; sleep 0.05; done
sleep 0.5
[ -e ran ] && echo ran-too-early || echo blocked
echo go >&5
wait $!
[ -e ran ] && echo ran
sed -E 's/[0-9]{2,}/N/g' info`
	res := compareBwraps(t, dir, script)
	res.Assert(t, icmd.Success)
	assert.Assert(t, strings.HasPrefix(res.Stdout(), "blocked\ncommand-ran\nran\n{\n    \"child-pid\": N"), res.Stdout())
	// The block fd closed without data lets the command run too.
	res = runScript(bwrapLink(t), dir, `$B --ro-bind / / --block-fd 4 echo closed-fd-ran 4</dev/null`)
	res.Assert(t, icmd.Expected{Out: "closed-fd-ran\n"})
	// Setup that fails while the launcher waits on the fd is reported as
	// itself once the fd lets go (not as the go-ahead PID 1 missed).
	res = runScript(bwrapLink(t), dir, `(sleep 0.3; echo go) | $B --ro-bind / / --tmpfs /tmp --dir /tmp/d --remount-ro /tmp/d --block-fd 0 true`)
	res.Assert(t, icmd.Expected{ExitCode: 1, Err: "bwrap: --remount-ro /tmp/d: set mount attributes: Invalid argument\n"})
}

// TestBwrapOverlays: --tmp-overlay and --ro-overlay over --overlay-src
// sources, under bubblewrap's single-id map. (Newer than Debian's
// bubblewrap 0.8: its 0.10 behaviour, checked by hand.)
func TestBwrapOverlays(t *testing.T) {
	dir := t.TempDir()
	assert.NilError(t, os.Chmod(dir, 0o755))
	script := `set -e
mkdir lo1 lo2; echo low > lo1/a; echo high > lo2/a; echo only-low > lo1/b
$B --ro-bind / / --dev /dev --overlay-src lo1 --overlay-src lo2 --tmp-overlay /mnt sh -c 'cat /mnt/a /mnt/b; echo new > /mnt/c; echo changed > /mnt/b; cat /mnt/c /mnt/b; id -u; stat -c %u /mnt/c'
cat lo1/a lo1/b lo2/a; echo $(ls lo1) / $(ls lo2)
$B --ro-bind / / --dev /dev --overlay-src lo1 --overlay-src lo2 --ro-overlay /mnt sh -c 'cat /mnt/a /mnt/b; touch /mnt/c 2>/dev/null || echo read-only'`
	res := runScript(bwrapLink(t), dir, script)
	uid := fmt.Sprint(os.Getuid())
	res.Assert(t, icmd.Expected{Out: "high\nonly-low\nnew\nchanged\n" + uid + "\n" + uid + "\n" +
		"low\nonly-low\nhigh\na b / a\nhigh\nonly-low\nread-only\n"})
}
