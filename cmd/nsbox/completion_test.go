package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/nsbox/nsbox/cmd/nsbox/internal/state"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// Every command of the usage text has a row in commandDetails and every
// row a command: a new command (nsbox image, say) fails here until its
// flags are known to completion and the man page.
func TestCommandDetailsMatchUsage(t *testing.T) {
	listed := map[string]bool{}
	for _, c := range cliCommands() {
		listed[c.name] = true
		_, ok := commandDetails()[c.name]
		assert.Check(t, ok, "nsbox %s is in the usage text but not in commandDetails (commands.go)", c.name)
		var out bytes.Buffer
		assert.Check(t, run([]string{"help", c.name}, &out, &out) == 0 || c.help != nil, "nsbox help %s: %s", c.name, out.String())
	}
	for name := range commandDetails() {
		assert.Check(t, listed[name], "commandDetails has %s, which the usage text does not list", name)
	}
	assert.Check(t, len(listed) >= 15, "the usage text's command lines were not found: %v", listed)
}

// scriptSection returns the part of a generated script about one command.
func scriptSection(t *testing.T, shell, script, cmd string) string {
	t.Helper()
	var re *regexp.Regexp
	switch shell {
	case "bash":
		re = regexp.MustCompile(`(?m)^\t` + cmd + `\)\n\t\tflags="([^"]*)"`)
	case "zsh":
		re = regexp.MustCompile(`(?s)\n\t\t\(` + cmd + `\)\n(.*?)\t\t\t;;`)
	case "fish":
		re = regexp.MustCompile(`(?m)^complete -c nsbox -n '__fish_seen_subcommand_from ` + cmd + `' (.*)$`)
	}
	var parts []string
	for _, m := range re.FindAllStringSubmatch(script, -1) {
		parts = append(parts, m[1])
	}
	return strings.Join(parts, "\n")
}

// Each script names every command, and in each command's part every flag
// its parser accepts (hidden ones aside), with its shorthand.
func TestCompletionHasEveryFlag(t *testing.T) {
	for shell := range completionScripts() {
		t.Run(shell, func(t *testing.T) {
			var out bytes.Buffer
			assert.NilError(t, completionCommand([]string{shell}, &out))
			script := out.String()
			nflags := 0
			for _, c := range cliCommands() {
				assert.Check(t, is.Contains(script, c.name), "command %s", c.name)
				section := scriptSection(t, shell, script, c.name)
				for _, f := range c.visibleFlags() {
					nflags++
					var want []string
					switch shell {
					case "bash":
						want = []string{" --" + f.Name + " "}
						if f.Shorthand != "" {
							want = append(want, " -"+f.Shorthand+" ")
						}
						section = " " + strings.ReplaceAll(section, "\n", " ") + " "
					case "zsh":
						want = []string{"--" + f.Name + "["}
						if takesValue(f) {
							want = []string{"--" + f.Name + "=["}
						}
						if f.Shorthand != "" {
							want = []string{"{-" + f.Shorthand + ",--" + f.Name + "}"}
						}
					case "fish":
						want = []string{"-l " + f.Name + " "}
						if f.Shorthand != "" {
							want = []string{"-l " + f.Name + " -s " + f.Shorthand + " "}
						}
					}
					for _, w := range want {
						assert.Check(t, is.Contains(section, w), "nsbox %s %s in the %s script", c.name, w, shell)
					}
				}
			}
			assert.Check(t, nflags > 100, "only %d flags seen", nflags)
			// Hidden flags stay hidden.
			assert.Check(t, !strings.Contains(script, "supervise-fd"))
			assert.Check(t, !strings.Contains(script, "probe-overlay"))
		})
	}
}

// fakeNsbox puts an nsbox on PATH that answers __complete KIND with
// "KIND-one KIND-two", for the scripts to call.
func fakeNsbox(t *testing.T) string {
	dir := t.TempDir()
	script := "#!/bin/sh\n[ \"$1\" = __complete ] && echo \"$2-one $2-two\"\n"
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "nsbox"), []byte(script), 0o755))
	return dir
}

// The bash script, loaded in bash, completes what a user types.
func TestCompletionBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	var out bytes.Buffer
	assert.NilError(t, completionCommand([]string{"bash"}, &out))
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"nsbox", "ru"}, "run"},
		{[]string{"nsbox", "run", "--ro"}, "--root --rootfs --ro-bind --ro-bind-try --ro-bind-fd"},
		{[]string{"nsbox", "run", "--cache", ""}, "tool-caches-one tool-caches-two"},
		{[]string{"nsbox", "exec", ""}, "sandboxes-one sandboxes-two"},
		{[]string{"nsbox", "exec", "--root", "s"}, "sandboxes-one sandboxes-two"},
		{[]string{"nsbox", "exec", "box", "--ro"}, "--root"},
		{[]string{"nsbox", "stop", "--timeout", "3", ""}, "sandboxes-one sandboxes-two"},
		{[]string{"nsbox", "kill", "box", "US"}, "USR1 USR2"},
		{[]string{"nsbox", "logs", "box", ""}, ""},
		{[]string{"nsbox", "rm", "a", ""}, "ended-one ended-two"},
		{[]string{"nsbox", "cache", ""}, "ls rm dir"},
		{[]string{"nsbox", "cache", "rm", ""}, "caches-one caches-two"},
		{[]string{"nsbox", "cache", "ls", ""}, ""},
		{[]string{"nsbox", "image", ""}, "ls pull rm prune"},
		{[]string{"nsbox", "image", "rm", ""}, "images-one images-two"},
		{[]string{"nsbox", "image", "pull", ""}, ""},
		{[]string{"nsbox", "help", ""}, "commands-one commands-two"},
		{[]string{"nsbox", "completion", "z"}, "zsh"},
		{[]string{"nsbox", "stop", "--t"}, "--timeout"},
		{[]string{"nsbox", "ps", "--"}, "--json"},
		{[]string{"nsbox", "bwrap", "--unshare-a"}, "--unshare-all"},
	} {
		quoted := make([]string, len(tc.words))
		for i, w := range tc.words {
			quoted[i] = "'" + w + "'"
		}
		prog := out.String() + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + "); COMP_CWORD=" +
			strconv.Itoa(len(tc.words)-1) + "; _nsbox; echo \"${COMPREPLY[*]}\"\n"
		cmd := exec.Command(bash, "--norc", "-c", prog)
		cmd.Env = append(os.Environ(), "PATH="+fakeNsbox(t)+":/usr/bin:/bin")
		got, err := cmd.CombinedOutput()
		assert.NilError(t, err, string(got))
		assert.Check(t, is.Equal(strings.TrimSpace(string(got)), tc.want), "%q", tc.words)
	}
}

// The zsh and fish scripts parse in their shells; fish's completes.
func TestCompletionZshFish(t *testing.T) {
	for _, shell := range []string{"zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			path, err := exec.LookPath(shell)
			if err != nil {
				t.Skipf("%s is not installed", shell)
			}
			var out bytes.Buffer
			assert.NilError(t, completionCommand([]string{shell}, &out))
			f := filepath.Join(t.TempDir(), "nsbox."+shell)
			assert.NilError(t, os.WriteFile(f, out.Bytes(), 0o644))
			res, err := exec.Command(path, "-n", f).CombinedOutput()
			assert.NilError(t, err, string(res))
			if shell != "fish" {
				return
			}
			for _, tc := range []struct{ line, want string }{
				{"nsbox run --ro-b", "--ro-bind"},
				{"nsbox exec ", "sandboxes-one"},
				{"nsbox cache rm ", "caches-one"},
				{"nsbox exec -", "--tty"},
			} {
				cmd := exec.Command(path, "--no-config", "-c", "source "+f+"; complete -C '"+tc.line+"'")
				cmd.Env = append(os.Environ(), "PATH="+fakeNsbox(t)+":/usr/bin:/bin")
				got, err := cmd.CombinedOutput()
				assert.NilError(t, err, string(got))
				assert.Check(t, is.Contains(string(got), tc.want), tc.line)
			}
		})
	}
}

// nsbox __complete sandboxes lists the live sandboxes by their locks
// (not a stale entry, not a name nsbox would refuse), reading no record.
func TestCompleteSandboxNames(t *testing.T) {
	run := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", run)
	dir, err := state.Dir()
	assert.NilError(t, err)
	h, err := state.Reserve(dir, "box1")
	assert.NilError(t, err)
	defer h.Release()
	// A stale entry (no lock), and one whose name a sandbox could not have:
	// neither is offered to the shell.
	assert.NilError(t, os.Mkdir(filepath.Join(dir, "stale"), 0o700))
	assert.NilError(t, os.Mkdir(filepath.Join(dir, "x;rm -rf ~"), 0o700))
	var out bytes.Buffer
	assert.NilError(t, completeCommand([]string{"sandboxes"}, &out))
	assert.Check(t, is.Equal(out.String(), "box1\n"))

	out.Reset()
	assert.NilError(t, completeCommand([]string{"tool-caches"}, &out))
	assert.Check(t, is.Equal(out.String(), "cargo\ngo\nnpm\npip\n"))

	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	assert.NilError(t, os.MkdirAll(filepath.Join(cache, "nsbox", "cache", "go"), 0o700))
	assert.NilError(t, os.MkdirAll(filepath.Join(cache, "nsbox", "home", "dev"), 0o700))
	out.Reset()
	assert.NilError(t, completeCommand([]string{"caches"}, &out))
	assert.Check(t, is.Equal(out.String(), "go\nhome/dev\n"))
	out.Reset()
	assert.NilError(t, completeCommand([]string{"homes"}, &out))
	assert.Check(t, is.Equal(out.String(), "dev\n"))

	assert.ErrorContains(t, completeCommand([]string{"nope"}, &out), "nothing of that kind")
	assert.ErrorContains(t, completionCommand([]string{"tcsh"}, &out), "no script for that shell")
}
