// Package remedy names the fixes a sandbox error may carry, so that a
// caller with words of its own (the nsbox command names its flags, not
// Spec fields) can reword them: sandbox.SpecError.Fix and
// sandbox.SetupError.Fix hold a Hint, whose String words it in Spec terms.
package remedy

import (
	"fmt"
	"strings"
)

// Kind names a remedy a caller may word in its own terms.
type Kind int

// The remedies of a SpecError. Hint.String words each in Spec terms.
const (
	// None: no remedy is known.
	None Kind = iota
	// Text: Hint.Arg is the remedy, in words valid for any caller.
	Text
	// Command: give Process.Args a command.
	Command
	// OwnNamespace: give the sandbox a namespace of its own; Arg names
	// it as Namespaces does ("uts", "mnt", "net").
	OwnNamespace
	// MapID: pick a mapped id, or map more; Arg is "uid" or "gid".
	MapID
	// OptionalSource: create the bind's source Arg, or make the mount
	// Optional.
	OptionalSource
	// BindLarge: bind large files rather than placing their content.
	BindLarge
	// OverlayLower: give an overlay at least one lower directory.
	OverlayLower
	// Seccomp: leave out the default seccomp filter (and DisableUserns,
	// which needs it), or give a filter program of one's own.
	Seccomp
	// MapSingle: map only the caller's own ids (mapping.Single); Arg,
	// if set, is another way out.
	MapSingle
	// SharePID: share the caller's PID namespace, so the sandbox binds
	// this /proc instead of mounting a new one.
	SharePID
	// kinds counts the kinds; keep it last.
	kinds
)

// Kinds returns every Kind but None, for callers that check they
// word each one.
func Kinds() []Kind {
	var ks []Kind
	for k := None + 1; k < kinds; k++ {
		ks = append(ks, k)
	}
	return ks
}

// Hint is the remedy of a SpecError: a kind and its argument.
type Hint struct {
	Kind Kind
	// Arg is the kind's argument: the whole text for Text, the
	// namespace for OwnNamespace, the path for OptionalSource, "uid" or "gid" for MapID.
	Arg string
}

// String words the remedy in Spec terms; "" for None.
func (f Hint) String() string {
	switch f.Kind {
	case Text:
		return f.Arg
	case Command:
		return "set Process.Args, e.g. []string{\"id\"}"
	case OwnNamespace:
		return "set Namespaces." + namespaceField(f.Arg)
	case MapID:
		return fmt.Sprintf("pick a mapped %s, or map more in Spec.Mapping", f.Arg)
	case OptionalSource:
		return "create " + f.Arg + ", or set Mount.Optional to skip it"
	case BindLarge:
		return "bind large files (a MountBind with ReadOnly) instead"
	case OverlayLower:
		return "set Mount.Lower"
	case Seccomp:
		return "set Security.NoDefaultSeccomp (and not DisableUserns), or give Security.SeccompPrograms of your own"
	case MapSingle:
		if f.Arg != "" {
			return "map only your own ids (mapping.Single), or " + f.Arg
		}
		return "map only your own ids (mapping.Single)"
	case SharePID:
		return "set Namespaces.PID to false (the sandbox then binds this /proc instead of mounting a new one)"
	}
	return ""
}

// namespaceField is the Namespaces field of a namespace's short name.
func namespaceField(ns string) string {
	switch ns {
	case "mnt":
		return "Mount"
	case "uts", "pid", "ipc":
		return strings.ToUpper(ns)
	}
	return strings.ToUpper(ns[:1]) + ns[1:]
}
