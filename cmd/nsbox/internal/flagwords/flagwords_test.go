package flagwords

import (
	"errors"
	"fmt"
	"go/scanner"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/nsbox/nsbox/internal/remedy"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/nsbox/nsbox/sandbox"
)

// specFieldLiteral matches a string literal that is a SpecError Field: a
// selector from Spec, indexes written [%d].
var specFieldLiteral = regexp.MustCompile(`^(Hostname|Process|Limits|Mounts|Network|Security|Namespaces|Mapping)(\.[A-Z][A-Za-z0-9]*|\[%d\])*$`)

// libraryFields returns every Field literal in package sandbox's source,
// "[%d]" written "[]" as specFlags keys are.
func libraryFields(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../../../sandbox/*.go")
	assert.NilError(t, err)
	seen := map[string]bool{}
	var fields []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		assert.NilError(t, err)
		fset := token.NewFileSet()
		var s scanner.Scanner
		s.Init(fset.AddFile(name, -1, len(src)), src, nil, 0)
		for {
			_, tok, lit := s.Scan()
			if tok == token.EOF {
				break
			}
			if tok != token.STRING {
				continue
			}
			v, err := strconv.Unquote(lit)
			if err != nil || !specFieldLiteral.MatchString(v) {
				continue
			}
			v = strings.ReplaceAll(v, "[%d]", "[]")
			if !seen[v] {
				seen[v] = true
				fields = append(fields, v)
			}
		}
	}
	return fields
}

// Every field the library names in a SpecError has a flag wording here,
// and every remedy kind a flag wording: a new one fails this test until
// the table has it.
func TestSpecWordsCoverLibrary(t *testing.T) {
	fields := libraryFields(t)
	// The scan finds the fields Validate names (a broken scan finds none).
	for _, f := range []string{"Hostname", "Process.UID", "Limits.CPUs", "Mounts[]", "Security.Landlock.ReadOnly[]"} {
		assert.Check(t, is.Contains(fields, f))
	}
	for _, f := range fields {
		_, ok := specFlags()[f]
		assert.Check(t, ok, "sandbox names Spec field %s in an error, and specFlags has no flag for it", f)
	}
	for _, k := range remedy.Kinds() {
		fix, ok := specFix(&sandbox.SpecError{Fix: remedy.Hint{Kind: k, Arg: "x"}})
		assert.Check(t, ok && fix != "", "specFix has no wording for remedy.Kind %d", k)
	}
}

// The CLI's lines are the flag wording of the library's SpecErrors,
// wrapped or not.
func TestFlagWords(t *testing.T) {
	for _, tc := range []struct {
		err        error
		spec, flag string
	}{
		{
			&sandbox.SpecError{Field: "Hostname", Problem: "needs a UTS namespace of its own", Fix: remedy.Hint{Kind: remedy.OwnNamespace, Arg: "uts"}},
			"Hostname: needs a UTS namespace of its own; fix: set Namespaces.UTS",
			"--hostname: needs a UTS namespace of its own; fix: drop uts from --share",
		},
		{
			fmt.Errorf("start: %w", &sandbox.SpecError{Field: "Process.UID", Value: "4242", Problem: "not mapped into the sandbox (uid map: 0 1000 1)", Fix: remedy.Hint{Kind: remedy.MapID, Arg: "uid"}}),
			"start: Process.UID 4242: not mapped into the sandbox (uid map: 0 1000 1); fix: pick a mapped uid, or map more in Spec.Mapping",
			"start: --uid 4242: not mapped into the sandbox (uid map: 0 1000 1); fix: pick a mapped uid, or map more with --map-users",
		},
		{
			&sandbox.SpecError{Field: "Mounts[2]", Value: "--ro-bind /nope", Problem: "source does not exist", Fix: remedy.Hint{Kind: remedy.OptionalSource, Arg: "/nope"}},
			"Mounts[2] --ro-bind /nope: source does not exist; fix: create /nope, or set Mount.Optional to skip it",
			"--ro-bind /nope: source does not exist; fix: create /nope, or use the -try form of the flag to skip it",
		},
		{
			&sandbox.SpecError{Field: "Limits.Rlimits[0]", Problem: `unknown resource "nofiles"`},
			`Limits.Rlimits[0]: unknown resource "nofiles"`,
			`--rlimit: unknown resource "nofiles"`,
		},
		{
			&sandbox.SpecError{Field: "Network", Problem: "a sandbox network needs a network namespace of its own", Fix: remedy.Hint{Kind: remedy.OwnNamespace, Arg: "net"}},
			"Network: a sandbox network needs a network namespace of its own; fix: set Namespaces.Net",
			"a sandbox network needs a network namespace of its own; fix: drop net from --share, or use --net host",
		},
		{
			&sandbox.SpecError{Field: "Limits", Err: errors.New("your cgroup /x is not delegated to you")},
			"Limits: your cgroup /x is not delegated to you",
			"--memory, --pids, --cpus: your cgroup /x is not delegated to you",
		},
		{
			fmt.Errorf("start: %w", &sandbox.SpecError{Field: "Mapping", Err: errors.New("write uid_map: operation not permitted; likely cause: nested"),
				Fix: remedy.Hint{Kind: remedy.MapSingle, Arg: "run nsbox outside it"}}),
			"start: Mapping: write uid_map: operation not permitted; likely cause: nested; fix: map only your own ids (mapping.Single), or run nsbox outside it",
			"start: write uid_map: operation not permitted; likely cause: nested; fix: --map single, or run nsbox outside it",
		},
		{
			&sandbox.SetupError{Step: "mount a new /proc: Operation not permitted", Hint: "mounts cover /proc/kcore: " + remedy.Hint{Kind: remedy.SharePID}.String(),
				Fix: remedy.Hint{Kind: remedy.SharePID}},
			"mount a new /proc: Operation not permitted; fix: mounts cover /proc/kcore: set Namespaces.PID to false (the sandbox then binds this /proc instead of mounting a new one)",
			"mount a new /proc: Operation not permitted; fix: mounts cover /proc/kcore: run nsbox with --share pid (it then binds this /proc instead of mounting a new one)",
		},
		{errors.New("plain"), "plain", "plain"},
	} {
		assert.Check(t, is.Equal(tc.err.Error(), tc.spec))
		assert.Check(t, is.Equal(Reword(tc.err), tc.flag))
	}
}

// withoutIndexes replaced a regexp (compiled in init(), on every start):
// it must agree with it.
func TestHandWrittenMatchersAgreeWithRegexps(t *testing.T) {
	index := regexp.MustCompile(`\[[0-9]+\]`)
	for _, f := range []string{"", "Hostname", "Mounts[3]", "Mounts[12].Source", "Mounts[].X", "a[b]", "[1][22]x[", "x[1", "Mounts[3]]", "[]", "[0]"} {
		assert.Check(t, is.Equal(withoutIndexes(f), index.ReplaceAllString(f, "[]")), f)
	}
}
