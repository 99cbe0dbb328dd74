// Package bwrapext holds the settings of a sandbox.Spec that only the
// bubblewrap translator (nsbox bwrap) asks for: entering namespaces that
// exist (--userns, --userns2, --pidns), maps the caller writes
// (--userns-block-fd), and the command's pid before it runs (--info-fd's
// child-pid). They are not package sandbox's API: code of this module
// reaches a Spec's through Of.
package bwrapext

import "os"

// Settings are a Spec's bubblewrap-only settings; the zero value asks
// for none.
type Settings struct {
	// Enter names existing namespaces the sandbox enters instead of
	// creating its own (bubblewrap's --userns, --userns2 and --pidns).
	Enter Namespaces
	// WriteMaps, if not nil, writes the maps of the sandbox's new user
	// namespace instead of the launcher (bubblewrap's
	// --userns-block-fd): it is called after Spec.Started with PID 1's host
	// pid and must return once /proc/PID/uid_map and gid_map (and
	// setgroups, as needed) are written; PID 1 waits for that before it
	// does anything. Spec.Mapping is then not applied (nor checked), and
	// sandbox.Process.UID and GID are as for Enter.User: ids of those maps, and
	// where they equal the launcher's own host ids the command keeps
	// what they map to. The nested namespace is the identity over the
	// ids written. An error from it stops the start. Not with
	// Enter.User, whose maps exist.
	WriteMaps func(pid int) error
	// CommandCreated, if not nil, is called with Spec.BeforeExec (ignored
	// without it, and with Spec.CommandIsPID1) once the command's first
	// process exists, before BeforeExec: with its host pid and its own
	// namespaces (the nested user and mount namespaces, see
	// sandbox/nested.go),
	// as bubblewrap's --info-fd names them. Until BeforeExec has
	// returned, that process is still nsbox's code, holding the
	// command's files and the launcher's socket, and dumpable, so the
	// caller's uid may open its /proc/PID/ns files (and trace it: only
	// the caller and processes of namespaces it entered could). An
	// error from it stops the start.
	CommandCreated func(pid int, ns map[string]uint64) error
}

// Namespaces holds open namespace files (/proc/PID/ns/user, …/pid, or any
// descriptor of one) for Settings.Enter. Start passes them to the stage and
// closes nothing; the caller may close them once Start returns.
type Namespaces struct {
	// User is a user namespace the sandbox's other namespaces are
	// created in, instead of a new one. The launcher needs
	// CAP_SYS_ADMIN there: one its own uid created, below its own user
	// namespace. Its maps are its own: Spec.Mapping is not applied (nor
	// checked), sandbox.Process.UID and GID are ids of this namespace, and where
	// they equal the launcher's own host uid (gid) the command keeps the
	// id the launcher has there, as bubblewrap does. The command still
	// gets a nested user and mount namespace (sandbox/nested.go), the identity
	// over the ids User maps, unless CommandUser is given.
	User *os.File
	// CommandUser is a user namespace, a child of User, that the command
	// enters after setup (bubblewrap's --userns2), instead of the nested
	// one nsbox makes; the command copies the mounts into a new mount
	// namespace there, which locks them as nsbox's nesting does. Needs
	// User.
	CommandUser *os.File
	// PID is a PID namespace PID 1 is started in: with
	// sandbox.Namespaces.PID, in a new PID namespace below it, as its
	// init; without, as one more process of it (not its init), which
	// reaps the sandbox's orphans as a subreaper. A MountProc mount shows
	// it. It must be owned by the sandbox's user namespace (User, or the
	// new one) or one below it.
	PID *os.File
}

// Files returns the namespaces given, in the order the stage gets them.
func (e Namespaces) Files() []*os.File {
	var fs []*os.File
	for _, f := range []*os.File{e.User, e.CommandUser, e.PID} {
		if f != nil {
			fs = append(fs, f)
		}
	}
	return fs
}

var of func(spec any) *Settings

// Register is called once, by package sandbox: f returns the Settings of
// a *sandbox.Spec.
func Register(f func(spec any) *Settings) { of = f }

// Of returns spec's Settings, to edit in place; spec is a *sandbox.Spec.
func Of(spec any) *Settings { return of(spec) }
