// Package flagwords is the one table that turns the library's words into
// nsbox's. The library words its errors in Spec terms (*sandbox.SpecError:
// the field, the problem, the fix); nsbox's users wrote flags, so the CLI
// reports them through [Reword], which rewords the field and the fix into
// the flags that set them, and passes [MapNames] to package mapping.
package flagwords

import (
	"errors"
	"strings"

	"github.com/nsbox/nsbox/internal/remedy"

	"github.com/nsbox/nsbox/mapping"
	"github.com/nsbox/nsbox/sandbox"
)

// specFlags names the flag that sets each Spec field the library reports,
// indexes written "[]". "" leaves the field out: the problem names it
// (Mounts' Value is the mount's own flag, Mount.Flag). A function: a
// package-level map is built at every start of nsbox.
func specFlags() map[string]string {
	return map[string]string{
		"Hostname":                              "--hostname",
		"Process.Args":                          "",
		"Process.Terminal":                      "--tty",
		"Process.UID":                           "--uid",
		"Process.GID":                           "--gid",
		"Process.Groups":                        "",
		"Process.Cwd":                           "--chdir",
		"Process.Argv0":                         "argv[0]",
		"Limits":                                "--memory, --pids, --cpus",
		"Limits.Memory":                         "--memory",
		"Limits.OwnCgroup":                      "--cgroup own",
		"Limits.PIDs":                           "--pids",
		"Limits.CPUs":                           "--cpus",
		"Limits.Rlimits[]":                      "--rlimit",
		"Mapping":                               "",
		"Mounts":                                "",
		"Mounts[]":                              "",
		"Network":                               "",
		"Security":                              "",
		"Security.Landlock.ReadOnly[]":          "--landlock path",
		"Security.Landlock.ReadWrite[]":         "--landlock path",
		"Security.Landlock.OptionalReadOnly[]":  "--landlock path",
		"Security.Landlock.OptionalReadWrite[]": "--landlock path",
	}
}

// MapNames names the flags that set mapping.Request's fields, for
// mapping's errors and notices (mapping.Names).
var MapNames = mapping.Names{Mode: "--map", Users: "--map-users", Groups: "--map-groups", Root: "--root", HostRoot: "--map-host-root"}

// specFlag returns the flag wording of a SpecError's Field, and whether
// the table has it.
func specFlag(field string) (string, bool) {
	flag, ok := specFlags()[withoutIndexes(field)]
	return flag, ok
}

// withoutIndexes turns "Mounts[3].Source" into "Mounts[].Source".
func withoutIndexes(field string) string {
	var b strings.Builder
	for len(field) > 0 {
		i := strings.IndexByte(field, '[')
		if i < 0 {
			break
		}
		j := i + 1
		for j < len(field) && field[j] >= '0' && field[j] <= '9' {
			j++
		}
		if j > i+1 && j < len(field) && field[j] == ']' {
			b.WriteString(field[:i+1])
			field = field[j:]
			continue
		}
		b.WriteString(field[:i+1])
		field = field[i+1:]
	}
	b.WriteString(field)
	return b.String()
}

// specFix words a SpecError's remedy as flags, and says whether it knows
// the kind.
func specFix(e *sandbox.SpecError) (string, bool) {
	switch f := e.Fix; f.Kind {
	case remedy.None:
		return "", true
	case remedy.Text:
		return f.Arg, true
	case remedy.Command:
		return "name one after --, e.g. nsbox run -- id", true
	case remedy.OwnNamespace:
		fix := "drop " + f.Arg + " from --share"
		switch e.Field {
		case "Mounts":
			fix += ", or drop the mount flags"
		case "Network":
			fix += ", or use --net host"
		}
		return fix, true
	case remedy.MapID:
		if f.Arg == "gid" {
			return "pick a mapped gid, or map more with --map-groups", true
		}
		return "pick a mapped uid, or map more with --map-users", true
	case remedy.OptionalSource:
		return "create " + f.Arg + ", or use the -try form of the flag to skip it", true
	case remedy.BindLarge:
		return "bind large files with --ro-bind instead", true
	case remedy.OverlayLower:
		return "--overlay LOWER[:LOWER…]:UPPER:WORK:DST", true
	case remedy.Seccomp:
		return "pass --no-seccomp (and not --disable-userns), or --seccomp FILE with a program of your own", true
	case remedy.MapSingle:
		if f.Arg != "" {
			return "--map single, or " + f.Arg, true
		}
		return "--map single", true
	case remedy.SharePID:
		return "run nsbox with --share pid (it then binds this /proc instead of mounting a new one)", true
	}
	return "", false
}

// Reword returns err's message with a *sandbox.SpecError in it, and the
// remedy of a *sandbox.SetupError's hint, worded as flags. A field or fix
// missing from the tables keeps the Spec wording (TestSpecWordsCoverLibrary
// keeps that from happening).
func Reword(err error) string {
	msg := NetWords(err) // a *network.Error's words (net.go)
	// A setup step's hint may hold a remedy in Spec words.
	var setup *sandbox.SetupError
	if errors.As(err, &setup) && setup.Fix.Kind != remedy.None {
		if fix, ok := specFix(&sandbox.SpecError{Fix: setup.Fix}); ok {
			msg = strings.Replace(msg, setup.Fix.String(), fix, 1)
		}
	}
	var se *sandbox.SpecError
	if !errors.As(err, &se) {
		return msg
	}
	flag, ok := specFlag(se.Field)
	if !ok {
		return msg
	}
	fix, ok := specFix(se)
	if !ok {
		return msg
	}
	c := *se
	c.Field = flag
	c.Fix = remedy.Hint{Kind: remedy.Text, Arg: fix}
	return strings.Replace(msg, se.Error(), c.Error(), 1)
}
