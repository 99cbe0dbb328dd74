// Package tests holds nsbox's integration tests. They drive the built nsbox
// binary from outside, as an unprivileged user with subordinate ids (make
// test arranges that), and check effects the host can see: uid_map
// contents, ownership of files, processes left after a kill.
//
// NSBOX_BIN names the binary; without it TestMain builds one. With
// CI=true, a test that cannot run here fails instead of skipping.
package tests

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nsbox/nsbox/sandbox"
	"gotest.tools/v3/icmd"
)

// nsboxBin is the binary under test.
var nsboxBin string

func TestMain(m *testing.M) {
	sandbox.Init() // api_test.go starts sandboxes from this binary
	if os.Getenv(remoteHelperEnv) == "1" {
		os.Exit(remoteHelper()) // remote_test.go's outer namespace
	}
	if v := os.Getenv(reaperHelperEnv); v == "1" || v == "fd3" {
		os.Exit(reaperHelper()) // orphans_test.go's subreaper
	}
	nsboxBin = os.Getenv("NSBOX_BIN")
	if nsboxBin == "" {
		dir, err := os.MkdirTemp("", "nsbox-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		nsboxBin = filepath.Join(dir, "nsbox")
		// The helper (--net user's stack) goes beside nsbox, where a build
		// without make's embedding looks for it.
		build := exec.Command("sh", "-c", `go build -o "$1" github.com/nsbox/nsbox/cmd/nsbox && go build -o "$(dirname "$1")/nsbox-helper" github.com/nsbox/nsbox/cmd/nsbox-helper && go build -tags nsbox_helper_image -o "$(dirname "$1")/nsbox-image-helper" github.com/nsbox/nsbox/cmd/nsbox-helper`, "sh", nsboxBin)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build nsbox:", err)
			os.Exit(1)
		}
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// nsbox runs the binary with args and waits for it.
func nsbox(args ...string) *icmd.Result {
	return icmd.RunCmd(icmd.Command(nsboxBin, args...))
}

// nsboxWith runs the binary with args and extra command options.
func nsboxWith(args []string, ops ...icmd.CmdOp) *icmd.Result {
	return icmd.RunCmd(icmd.Command(nsboxBin, args...), ops...)
}

// cannotRun skips the test, or fails it under CI=true, where every
// integration test must really run.
func cannotRun(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("cannot run under CI: "+format, args...)
	}
	t.Skipf(format, args...)
}

// requireUnprivileged: rootless behaviour is only proven by a non-root run.
func requireUnprivileged(t *testing.T) {
	t.Helper()
	if os.Getuid() == 0 {
		cannotRun(t, "must run as an unprivileged user (make test runs it as the test user)")
	}
}

// subids returns the first range of the current user in an /etc/subuid-like
// file, read here independently of nsbox's own parser.
func subids(t *testing.T, file string) (start, count uint32) {
	t.Helper()
	uid := strconv.Itoa(os.Getuid())
	name := ""
	if out, err := exec.Command("id", "-un").Output(); err == nil {
		name = strings.TrimSpace(string(out))
	}
	f, err := os.Open(file)
	if err != nil {
		cannotRun(t, "no %s: %v", file, err)
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(parts) != 3 || (parts[0] != name && parts[0] != uid) {
			continue
		}
		s, err1 := strconv.ParseUint(parts[1], 10, 32)
		c, err2 := strconv.ParseUint(parts[2], 10, 32)
		if err1 == nil && err2 == nil {
			return uint32(s), uint32(c)
		}
	}
	cannotRun(t, "user %s has no entry in %s", name, file)
	return 0, 0
}

// normalizeMap folds a uid_map's column padding: "0 1000 1\n1 100000 65536".
func normalizeMap(s string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return strings.Join(lines, "\n")
}

func splitLines(s string) []string {
	return strings.Split(strings.TrimSpace(s), "\n")
}
