// Package fastpath is what the nsbox command does to start and hold a
// sandbox faster than package sandbox alone would, and the one switch
// that turns all of it off. An embedding program needs none of it: a
// sandbox started without these tricks is the same sandbox, only slower
// to start or heavier to wait for.
//
// The tricks, each with where it lives:
//
//   - The pre-forked stage. A program that defines the C symbol
//     nsbox_prefork_command (cmd/nsbox/fastpath.go) gets its stage forked
//     by the ELF constructor before the Go runtime starts, for the
//     subcommands listed there (sandbox/internal/stage: stage.go, stage.c's
//     nsbox_prefork, prefork.go's Start). The constructor reads the
//     subcommand and nothing else of the command line.
//
//   - Early namespaces. Once the command's flags are parsed, UnshareEarly
//     asks that stage to create a default sandbox's namespaces while the
//     launcher builds the spec (the UNSHARE message, stage.h).
//
//   - The hand-off. A sandbox still running after a while is handed from
//     the Go launcher to a small C supervisor (sandbox.Sandbox.HandOff,
//     sandbox/internal/stage/handoff.c; the HANDOFF, HANDOFF_READY and ARM
//     messages), which waits for it in far less memory.
//
//   - The replay. After an `nsbox run` whose launcher side is nothing but
//     the stage's CONFIG, the id maps and the state entry, the launcher
//     keeps that plan with every input it was derived from
//     (cmd/nsbox/replay.go, internal/replay);
//     the next time the same invocation starts, the ELF constructor checks
//     every input still matches and runs the plan without the Go runtime
//     (sandbox/internal/stage, replay.c), else the launcher runs as usual.
//     Env=Replay forces it for tests: every run that can get a plan saves
//     it and re-executes itself to be replayed.
//
//   - The network helper started early. For an `nsbox run` whose flags
//     ask for --net user, the constructor also starts --net user's helper
//     program once the stage is pre-forked (stage.h's nsbox_early_helper,
//     defined by cmd/internal/helper/early.c), so that its Go runtime
//     starts beside the launcher's; the launcher adopts it or kills it
//     (cmd/nsbox/net_flags.go).
//
// NSBOX_FASTPATH=off in the environment turns all five off (Enabled);
// the results are the same, the start slower (tests/fastpath_test.go and
// tests/replay_test.go run sandboxes both ways and compare them, and
// hack/test.sh runs the whole integration suite in the default mode, off
// and with the replay forced).
package fastpath

import (
	"os"

	"github.com/nsbox/nsbox/sandbox/internal/stage"
)

// Env is the switch's environment variable: "off" turns every trick off.
// The C constructor reads it too (stage.h's NSBOX_FASTPATH_ENV).
const Env = stage.FastPathEnv

// Replay is Env's value that forces the replay for tests: every `nsbox
// run` that can get a plan saves it, then re-executes itself for the
// constructor to replay it (cmd/nsbox/replay.go).
const Replay = "replay"

// Enabled reports whether the tricks are on: Env is not "off".
func Enabled() bool { return os.Getenv(Env) != "off" }

// UnshareEarly asks the pre-forked stage, if the program has one that no
// sandbox took yet, to create a default sandbox's namespaces (user,
// mount, cgroup) now. Call it as soon as the sandbox is known to want the
// default namespaces, no cgroup and no namespaces to join; a wrong guess
// costs time only (Start then lets that stage go and re-executes).
func UnshareEarly() {
	if Enabled() {
		stage.UnshareEarly()
	}
}

// ReplayWhy says why the ELF constructor did not replay this `nsbox run`
// from its plan (sandbox/internal/stage, replay.c): no plan, or one that
// did not match. "" when it did not try, or when the sandbox it started
// failed before the command ran.
func ReplayWhy() string { return stage.ReplayWhy() }

// ReplayNoticed reports whether the constructor printed the notice of
// the plan it then left to the Go launcher: the launcher does not print
// it again.
func ReplayNoticed() bool { return stage.ReplayNoticed() }

// NameVar is the environment variable ("NAME=VALUE") that gives a
// process this binary executes again through /proc/self/exe (which the
// kernel would name "exe") the caller's name, as ps and pgrep show it:
// the ELF constructor takes it and drops it. "" when the name cannot be
// read.
func NameVar() string { return stage.NameVar() }

// LetGo ends what the ELF constructor started ahead for a sandbox that
// this run did not start (the pre-forked stage): call it before the
// program exits.
func LetGo() { stage.LetGoPrefork() }
