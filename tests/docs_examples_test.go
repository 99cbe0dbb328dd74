package tests

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	nsboxdocs "github.com/nsbox/nsbox"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/icmd"
	"gotest.tools/v3/poll"
)

// Every command line the documents show — the `$ …nsbox…` lines of the
// console blocks of README.md and docs/*.md, and the Examples of every
// `nsbox help` page — is in docExamples, which says how this test runs it.
// A line the documents gain without an entry fails the test, and so does
// an entry no document shows any more: a documented command cannot go
// stale unnoticed.

// docExample is one documented command line and how it is run.
type docExample struct {
	line string // as documented, without the prompt and the comment
	// run replaces line when the documented one needs a placeholder
	// filled or a stand-in for a tool the host lacks (shape).
	run   string
	code  int    // the exit status expected
	out   string // expected in stdout, if set
	retry bool   // rerun until it succeeds (up to 20 s): waits on a detached sandbox
	// skip says why the line is not run here and which test covers its
	// parts; only lines that need the internet, a terminal or a
	// particular user's ids.
	skip string
	// shape is the stand-in used when the tool named by need is missing.
	need, shape string
}

const (
	needInternet = "needs the internet"
	needTerminal = "needs a terminal: tty_test.go runs -t, shell and exec -t on a pseudo-terminal"
)

// docExamples is run in this order (sandboxes named b, job and w are
// started by the entries before those that use them).
var docExamples = []docExample{
	{line: "nsbox run -- id", out: "uid="},
	// The nested namespace's map: the identity over the sandbox's ids.
	{line: "nsbox run --root -- cat /proc/self/uid_map", out: "         0          0          1\n"},
	{line: "nsbox run --root -- ip link add br0 type bridge"},
	{line: "nsbox run --map single --root -- id", out: "uid=0(root)"},
	{line: "nsbox run --map-users 0:1000:1 --map-users 1:100000:1000 --root -- id",
		skip: "maps uid 1000 and subuids 100000-100999, a particular user's: identity_test.go runs --map-users with the test user's ids"},
	{line: "nsbox run --hostname box -- hostname", out: "box"},
	{line: "nsbox run --hostname box --setenv PS1='box$ ' -- bash"},
	{line: "nsbox run --share net -- ip addr", out: "lo"},
	{line: "nsbox help run", out: "Usage: nsbox run"},
	{line: "nsbox check"},
	{line: "nsbox check --json | jq '.checks[] | select(.ok | not)'", need: "jq", shape: "nsbox check --json"},
	{line: "nsbox run -- make test", out: "make-test-ok"},
	{line: "cd ~/project && nsbox run -- make test", out: "project-test-ok"},
	{line: "cd ~/src && nsbox run --landlock -- make", out: "src-all-ok"},
	{line: "nsbox run -- touch /usr/x", code: 1},
	{line: "nsbox run --tmp-overlay /usr -- sh -c 'touch /usr/x && ls /usr/x'", out: "/usr/x"},
	{line: "nsbox run --tmp-overlay /usr -- sh -c 'touch /usr/x'"},
	{line: "nsbox run --ro-bind ~/data:/mnt/data --tmpfs /run:size=64m -- ls /mnt/data", out: "data-file"},
	{line: "nsbox run --ro-bind ~/data:/data --tmpfs /run:size=64m -- ls /data", out: "data-file"},
	{line: "nsbox run --root --rootfs ./rootfs -- sh"},
	{line: "nsbox run --root --rootfs ./busybox-root -- sh"},
	{line: "nsbox run --mount 'type=bind,\"source=./a,b\",target=/c,readonly' -- ls /c", out: "in-a-comma-b"},
	{line: "nsbox run --print-spec --root -- make > s.json"},
	{line: "nsbox run --spec s.json", out: "make-all-ok"},
	{line: "nsbox run --root --cap-drop ALL --cap-add CAP_NET_BIND_SERVICE -- ./server", out: "server-ok"},
	{line: "nsbox run --die-with-parent -- make", out: "make-all-ok"},
	{line: "nsbox run --lock-file $PWD/.lock -- make", run: "touch .lock && nsbox run --lock-file $PWD/.lock -- make", out: "make-all-ok"},
	{line: "nsbox run --ro-bind-fd 3:/data -- ls /data 3<~/data", out: "data-file"},
	{line: "nsbox run --argv0 -bash -- bash"},
	{line: "nsbox run -t -- vim notes.txt", skip: needTerminal},
	{line: "nsbox run --json-status-fd 3 -- make 3>status.json", out: "make-all-ok"},

	// The pipes of the test's command would stay open with the sandbox.
	{line: "nsbox run --name b -- sleep 600 &", run: "nsbox run --name b -- sleep 600 >/dev/null 2>&1 &"},
	{line: "nsbox ps", out: "b ", retry: true},
	// Ports at run time (README): a --net user sandbox of its own.
	{line: "nsbox run --name web --net user -- sleep 600 &", run: "nsbox run --name web --net user -- sleep 600 >/dev/null 2>&1 &"},
	{line: "nsbox port add web 18480:80", retry: true},
	{line: "nsbox port ls web", out: "127.0.0.1:18480->80/tcp"},
	{line: "nsbox port rm web 18480:80", run: "nsbox port rm web 18480:80 && nsbox kill web"},
	{line: "nsbox exec b -- ps -e", out: "sleep", retry: true},
	{line: "nsbox exec b --root -- sh"},
	{line: "nsbox exec b -- bash -l", skip: needTerminal},
	{line: "nsbox inspect b", out: `"name": "b"`},
	// Live sandboxes (README): tests/live_test.go, live_copy_test.go and live_api_test.go cover each in depth.
	{line: "nsbox mount b ~/data /tmp/data --ro --mkdir", run: "nsbox mount b ~/data /tmp/data --ro --mkdir && nsbox exec b -- ls /tmp/data", out: "data-file"},
	{line: "nsbox cp ./src b:/tmp", run: "mkdir -p src && echo s > src/f && nsbox cp ./src b:/tmp && nsbox exec b -- cat /tmp/src/f", out: "s"},
	{line: "nsbox connect b 8080 < request", run: "(nsbox exec b -- busybox nc -l -p 8080 -e echo served >/dev/null 2>&1 &); sleep 0.3; nsbox connect b 8080 </dev/null", out: "served", retry: true},
	{line: "nsbox pause b; nsbox resume b", run: "nsbox pause b && nsbox ps | grep -q paused && nsbox resume b && nsbox exec b -- true"},
	{line: "nsbox kill b [SIGNAL]", run: "nsbox kill b TERM"},
	{line: "nsbox run -d --name w -- ./server", out: "w"},

	{line: "nsbox shell"},
	{line: "nsbox shell --root --hostname box"},
	{line: "nsbox shell -- -c 'echo $$'", out: "2"},

	{line: "nsbox run --home dev -- git config --global user.name me"},
	{line: "nsbox run --home dev -- bash"},
	{line: "nsbox shell --home dev"},
	{line: "nsbox shell --share-home --cache go"},
	{line: "nsbox cache ls", out: "home/dev"},
	{line: "nsbox cache rm go"},
	{line: "nsbox shell --share-home --cache go"},
	{line: "nsbox cache rm go home/dev"},

	{line: "nsbox run -- go test ./...", skip: "compiles the standard library into an empty cache (a minute): TestHomeGoTestAndCache runs it"},
	{line: "nsbox run --cache go -- go test ./...", skip: "TestHomeGoTestAndCache runs it, twice"},
	{line: "nsbox run -- sh -c 'python3 -m venv .venv && .venv/bin/pip install --no-index --find-links ./wheels pkg'",
		out: "Successfully installed pkg"},
	{line: "nsbox run --net user --allow-host-loopback --allow 10.0.2.2/32:3141 -- .venv/bin/pip download -d deps --trusted-host 10.0.2.2 --index-url http://10.0.2.2:3141/simple/ pkg",
		out: "Saved ./deps/pkg-0.1-py3-none-any.whl"},
	{line: "nsbox run -- npm test", out: "npm-test-ok", need: "npm",
		shape: `nsbox run -- sh -c 'mkdir -p ~/.npm/_logs && node -e "console.log(\"npm-test-ok\")"'`},
	{line: "nsbox run --cache pip --net user --allow-host pypi.org --allow-host files.pythonhosted.org -- .venv/bin/pip install requests", skip: needInternet},
	{line: "nsbox run --cache npm --net user --allow-host registry.npmjs.org -- npm ci", skip: needInternet},
	{line: "nsbox run --cache cargo --net user --allow-host index.crates.io --allow-host static.crates.io -- cargo build", skip: needInternet},
	{line: "nsbox run --root --net user --setenv container=lxc -- debootstrap --variant=minbase bookworm ./rootfs http://deb.debian.org/debian",
		skip: needInternet + ": TestContainerConventions runs what it needs of the sandbox"},
	{line: "nsbox run --root --rootfs ./rootfs --net user -- sh -c 'apt-get update && apt-get install -y --no-install-recommends curl'", skip: needInternet},
	{line: "nsbox run --net user --allow-host proxy.golang.org --allow-host sum.golang.org --cache go -- go mod download", skip: needInternet},
	{line: "nsbox run --net user -- curl -sI https://example.com", skip: needInternet},
	{line: "nsbox run --net user -p 8080:8000 -- busybox httpd -f -p 8000", skip: "a server that runs until stopped: net_test.go forwards -p to it"},
	{line: "nsbox run --net user --deny-private -- ./untrusted-build", out: "build-ok"},
	{line: "nsbox run --net user --allow-host proxy.golang.org --allow-host '*.debian.org' -- make deps", out: "deps-ok"},
	{line: "nsbox run --net user --allow-host-loopback -- curl http://10.0.2.2:5432",
		skip: "talks to a database on the host's port 5432: net_test.go reaches host loopback with --allow-host-loopback"},

	{line: "cd mymodule && nsbox run --image golang:1.26 -- go test ./...", skip: needInternet + ": TestImageRegistry runs a command from the current directory in an image from a registry on loopback"},
	{line: "nsbox run --image debian:12 --net user -- sh -c 'apt-get update && apt-get install -y curl'", skip: needInternet},
	{line: "nsbox shell --image python:3.13", skip: needInternet},
	{line: "nsbox run --image oci:./layout:v1 -- ls /", skip: "needs an OCI layout made by a tool this host lacks: TestImageRefForms builds one and runs every REF form"},
	{line: "nsbox image ls", out: "REFERENCE"},
	{line: "nsbox run --image debian:12 -- cat /etc/debian_version", skip: needInternet + ": TestImageRegistry runs images from a registry on loopback"},
	{line: "nsbox run --image golang:1.26 --net user --allow-host proxy.golang.org --allow-host sum.golang.org -- go test ./...", skip: needInternet},
	{line: "nsbox run --image python:3.13 --net user --allow-host pypi.org --allow-host files.pythonhosted.org -- sh -c 'python -m venv .venv && .venv/bin/pip install -r requirements.txt'", skip: needInternet},
	{line: "nsbox run --image node:22 --net user --allow-host registry.npmjs.org -- npm ci", skip: needInternet},

	{line: "nsbox run -d --name job -- make", out: "job"},
	{line: "nsbox logs job", out: "make-all-ok", retry: true},
	{line: "nsbox rm job", retry: true},
}

// commentRE cuts a trailing comment: two spaces or more, then #.
var commentRE = regexp.MustCompile(`\s{2,}#.*$`)

// documentedLines are the example lines of the embedded documents and of
// the help pages, in order, once each.
func documentedLines(t *testing.T) []string {
	t.Helper()
	var lines []string
	seen := map[string]bool{}
	add := func(l string) {
		l = strings.TrimSpace(commentRE.ReplaceAllString(l, ""))
		if !seen[l] {
			seen[l] = true
			lines = append(lines, l)
		}
	}
	docs := []string{"README.md"}
	md, err := fs.Glob(nsboxdocs.Docs, "docs/*.md")
	assert.NilError(t, err)
	for _, name := range append(docs, md...) {
		b, err := nsboxdocs.Docs.ReadFile(name)
		assert.NilError(t, err)
		in := false
		for _, l := range strings.Split(string(b), "\n") {
			switch {
			case strings.HasPrefix(l, "```console"):
				in = true
			case strings.HasPrefix(l, "```"):
				in = false
			case in && strings.HasPrefix(l, "$ ") && strings.Contains(l, "nsbox "):
				add(strings.TrimPrefix(l, "$ "))
			}
		}
	}
	for _, page := range []string{"", "run", "shell", "exec", "cache", "rm", "check", "ps", "logs", "inspect", "kill", "stop"} {
		args := []string{"help"}
		if page != "" {
			args = append(args, page)
		}
		res := nsbox(args...)
		res.Assert(t, icmd.Success)
		in := false
		for _, l := range strings.Split(res.Stdout(), "\n") {
			switch {
			case strings.HasPrefix(l, "Examples:"):
				in = true
			case l != "" && l[0] != ' ':
				in = false
			case in && strings.Contains(l, "nsbox "):
				add(l)
			}
		}
	}
	return lines
}

func TestDocumentedExamples(t *testing.T) {
	requireUnprivileged(t)
	table := map[string]bool{}
	for _, e := range docExamples {
		table[e.line] = true
	}
	shown := map[string]bool{}
	for _, l := range documentedLines(t) {
		shown[l] = true
		if !table[l] {
			t.Errorf("documented example %q is not in docExamples (tests/docs_examples_test.go): say how to run it", l)
		}
	}
	for _, e := range docExamples {
		if !shown[e.line] {
			t.Errorf("docExamples has %q, which no document shows any more: drop it", e.line)
		}
	}
	if t.Failed() {
		return
	}

	dir, env := exampleFixture(t)
	t.Cleanup(func() { icmd.RunCmd(icmd.Command(nsboxBin, "kill", "b"), icmd.WithEnv(env...)) })
	hits := standInIndex(t)
	for _, e := range docExamples {
		if e.skip != "" {
			t.Logf("not run here: %s (%s)", e.line, e.skip)
			continue
		}
		cmd := e.line
		if e.run != "" {
			cmd = e.run
		}
		if e.need != "" {
			if _, err := exec.LookPath(e.need); err != nil {
				t.Logf("%s: no %s on this host; running the recipe's shape: %s", e.line, e.need, e.shape)
				cmd = e.shape
			}
		}
		t.Logf("run: %s", cmd)
		run := func() *icmd.Result {
			return icmd.RunCmd(icmd.Command("sh", "-c", cmd), icmd.Dir(dir), icmd.WithEnv(env...), icmd.WithTimeout(2*time.Minute))
		}
		res := run()
		if e.retry {
			poll.WaitOn(t, func(poll.LogT) poll.Result {
				if res.ExitCode == e.code && strings.Contains(res.Stdout(), e.out) {
					return poll.Success()
				}
				res = run()
				return poll.Continue("%s: %s", cmd, res.Combined())
			}, poll.WithTimeout(20*time.Second), poll.WithDelay(200*time.Millisecond))
		}
		if res.ExitCode != e.code || !strings.Contains(res.Stdout(), e.out) {
			t.Errorf("documented %q: exit %d (want %d), want %q in stdout:\n%s", cmd, res.ExitCode, e.code, e.out, res.Combined())
		}
	}
	if atomic.LoadInt32(hits) == 0 {
		t.Errorf("the package index stand-in on 127.0.0.1:3141 was never asked")
	}
}

// exampleFixture makes what the examples refer to: a home with ~/data,
// ~/project and ~/src, a working directory with a Makefile, scripts, a
// busybox root, a package.json and a wheel; nsbox on PATH.
func exampleFixture(t *testing.T) (string, []string) {
	t.Helper()
	home := fakeHome(t)
	dir, err := os.MkdirTemp("/var/tmp", "nsbox-examples-")
	assert.NilError(t, err)
	t.Cleanup(func() {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
		os.RemoveAll(dir)
	})
	write := func(p, content string, mode os.FileMode) {
		assert.NilError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		assert.NilError(t, os.WriteFile(p, []byte(content), mode))
	}
	write(filepath.Join(home, "data", "data-file"), "x\n", 0o644)
	write(filepath.Join(home, "project", "Makefile"), "test:\n\t@echo project-test-ok\n", 0o644)
	write(filepath.Join(home, "src", "Makefile"), "all:\n\t@echo src-all-ok\n", 0o644)
	write(filepath.Join(dir, "Makefile"), ".PHONY: all test deps\nall:\n\t@echo make-all-ok\ntest:\n\t@echo make-test-ok\ndeps:\n\t@echo deps-ok\n", 0o644)
	write(filepath.Join(dir, "server"), "#!/bin/sh\necho server-ok\n", 0o755)
	write(filepath.Join(dir, "untrusted-build"), "#!/bin/sh\necho build-ok\n", 0o755)
	write(filepath.Join(dir, "a,b", "in-a-comma-b"), "", 0o644)
	write(filepath.Join(dir, "package.json"), `{"name": "m", "version": "1.0.0", "scripts": {"test": "node -e \"console.log('npm-test-ok')\""}}`+"\n", 0o644)
	write(filepath.Join(dir, "wheels", "pkg-0.1-py3-none-any.whl"), string(wheel(t)), 0o644)
	root := busyboxTree(t)
	assert.NilError(t, os.Symlink(root, filepath.Join(dir, "rootfs")))
	assert.NilError(t, os.Symlink(root, filepath.Join(dir, "busybox-root")))
	bin := filepath.Join(dir, ".bin")
	assert.NilError(t, os.Mkdir(bin, 0o755))
	assert.NilError(t, os.Symlink(nsboxBin, filepath.Join(bin, "nsbox")))
	env := []string{"PATH=" + bin + ":" + goBinDir(t) + ":" + os.Getenv("PATH"), "HOME=" + home,
		"XDG_RUNTIME_DIR=" + t.TempDir(), "SHELL=/bin/sh"}
	return dir, env
}

// wheel builds pkg-0.1, a pure-Python wheel with one module.
func wheel(t *testing.T) []byte {
	t.Helper()
	files := []struct{ name, body string }{
		{"pkg/__init__.py", "X = 1\n"},
		{"pkg-0.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: pkg\nVersion: 0.1\n"},
		{"pkg-0.1.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: nsbox-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
	}
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	record := ""
	for _, f := range files {
		w, err := z.Create(f.name)
		assert.NilError(t, err)
		_, err = w.Write([]byte(f.body))
		assert.NilError(t, err)
		sum := sha256.Sum256([]byte(f.body))
		record += fmt.Sprintf("%s,sha256=%s,%d\n", f.name, base64.RawURLEncoding.EncodeToString(sum[:]), len(f.body))
	}
	w, err := z.Create("pkg-0.1.dist-info/RECORD")
	assert.NilError(t, err)
	_, err = w.Write([]byte(record + "pkg-0.1.dist-info/RECORD,,\n"))
	assert.NilError(t, err)
	assert.NilError(t, z.Close())
	return buf.Bytes()
}

// standInIndex serves pkg's wheel as a PEP 503 package index on
// 127.0.0.1:3141, the registry mirror of the recipes; the count of
// requests it answered.
func standInIndex(t *testing.T) *int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:3141")
	if err != nil {
		cannotRun(t, "the package index stand-in needs 127.0.0.1:3141: %v", err)
	}
	whl := wheel(t)
	sum := sha256.Sum256(whl)
	var hits int32
	mux := http.NewServeMux()
	mux.HandleFunc("/simple/pkg/", func(w http.ResponseWriter, r *http.Request) {
		atomic.AddInt32(&hits, 1)
		fmt.Fprintf(w, `<html><body><a href="/files/pkg-0.1-py3-none-any.whl#sha256=%x">pkg-0.1-py3-none-any.whl</a></body></html>`, sum)
	})
	mux.HandleFunc("/files/pkg-0.1-py3-none-any.whl", func(w http.ResponseWriter, r *http.Request) {
		atomic.AddInt32(&hits, 1)
		w.Write(whl)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return &hits
}
