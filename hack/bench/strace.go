package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// A syscallEvent is one line of `strace -f -ttt -T`: the entry of a
// system call (or its unfinished half).
type syscallEvent struct {
	PID  int
	Time float64 // seconds since the epoch, at entry
	Name string  // "execve", "unshare", …
	Args string  // the rest of the line after "name("
}

// parseStraceLine reads "PID SECONDS.MICROS name(args…" and reports ok
// false for lines that are not a call's entry (resumptions, signals,
// exits) or are malformed.
func parseStraceLine(line string) (syscallEvent, bool) {
	// strace pads the pid to five columns: "9684  clone(…".
	var f [3]string
	rest := line
	for i := range 2 {
		var ok bool
		if f[i], rest, ok = strings.Cut(strings.TrimLeft(rest, " "), " "); !ok {
			return syscallEvent{}, false
		}
	}
	f[2] = strings.TrimLeft(rest, " ")
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return syscallEvent{}, false
	}
	ts, err := strconv.ParseFloat(f[1], 64)
	if err != nil || !finite(ts) || ts < 0 {
		return syscallEvent{}, false
	}
	name, args, ok := strings.Cut(f[2], "(")
	if !ok || name == "" || strings.ContainsAny(name, " <+-") {
		return syscallEvent{}, false
	}
	// A call another process's line interrupted: "unshare(CLONE_NEWUSER
	// <unfinished ...>". Its arguments are complete (strace prints them
	// at entry); only the result comes later, on a "resumed" line. The
	// arguments are given as a finished call's are, up to the ")".
	if a, cut := strings.CutSuffix(args, " <unfinished ...>"); cut {
		args = a + ")"
	}
	return syscallEvent{PID: pid, Time: ts, Name: name, Args: args}, true
}

// A phase is a span of the startup between two markers.
type phase struct {
	Name string
	MS   float64
}

// startupPhases cuts one traced `nsbox run -- true` into phases by
// markers (entries of the traced calls), following the pre-forked launch
// (docs/design.md):
//
//	launcher execve → the constructor's socketpair → its fork of the
//	stage → the stage's user namespace → its early unshare of the mount
//	and cgroup namespaces → the stage's first clone (the nested
//	namespaces' holder, once CONFIG came and the maps are written) →
//	PID 1's first mount → the command's execve → its exit_group → the
//	launcher's exit_group.
//
// Two launches have this shape. The Go launcher's (a first start, or one
// whose plan no longer matches): the stage is forked, then makes its user
// namespace by unshare while the launcher's Go runtime starts. The
// replay's (a repeated start, docs/startup.md): the constructor checks the
// recorded plan and forks the stage by clone(CLONE_NEWUSER), so the user
// namespace comes with the fork (a phase of 0), and no Go runtime starts.
// replayed reports which it was. PID 1's first mount is a mount(2) or a
// call of the new mount API (open_tree, fsmount, move_mount,
// mount_setattr), whichever comes first.
func startupPhases(lines []string) (phases []phase, replayed bool, err error) {
	var evs []syscallEvent
	for _, l := range lines {
		if e, ok := parseStraceLine(l); ok {
			evs = append(evs, e)
		}
	}
	if len(evs) == 0 {
		return nil, false, fmt.Errorf("the trace has no system calls")
	}
	launcher := evs[0].PID
	stage, pid1, command := 0, 0, 0
	type mark struct {
		name string
		t    float64
	}
	marks := []mark{{"", evs[0].Time}}
	want := []string{"socketpair", "stage-fork", "userns", "otherns", "clone-pid1", "mount", "cmd-exec", "cmd-exit", "exit"}
	next := 0
	for _, e := range evs[1:] {
		if next >= len(want) {
			break
		}
		hit := false
		switch want[next] {
		case "socketpair":
			hit = e.PID == launcher && e.Name == "socketpair"
		case "stage-fork":
			// A process, not a thread of the Go runtime.
			hit = e.PID == launcher && (e.Name == "clone" || e.Name == "clone3" || e.Name == "fork") && !strings.Contains(e.Args, "CLONE_THREAD")
			if hit && strings.Contains(e.Args, "CLONE_NEWUSER") {
				// The replay: the stage is born in its user namespace.
				// Its pid is the call's result, on this line (the
				// constructor runs one thread: nothing interrupts it).
				_, res, ok := strings.Cut(e.Args, ") = ")
				if n, err := strconv.Atoi(strings.Fields(res + " x")[0]); ok && err == nil && n > 0 {
					stage, replayed = n, true
					marks = append(marks, mark{"stage-fork", e.Time}, mark{"userns", e.Time})
					next += 2
					continue
				}
			}
		case "userns":
			if e.PID != launcher && e.Name == "unshare" && strings.HasPrefix(e.Args, "CLONE_NEWUSER)") {
				stage, hit = e.PID, true
			}
		case "otherns":
			hit = e.PID == stage && e.Name == "unshare"
		case "clone-pid1":
			hit = e.PID == stage && (e.Name == "clone" || e.Name == "clone3")
		case "mount":
			if mountCall[e.Name] && e.PID != stage && e.PID != launcher {
				pid1, hit = e.PID, true
			}
		case "cmd-exec":
			if e.Name == "execve" && e.PID != pid1 && e.PID != stage && e.PID != launcher {
				command, hit = e.PID, true
			}
		case "cmd-exit":
			hit = e.PID == command && e.Name == "exit_group"
		case "exit":
			hit = e.Name == "exit_group" && e.PID != stage && e.PID != pid1 && e.PID != command
		}
		if hit {
			marks = append(marks, mark{want[next], e.Time})
			next++
		}
	}
	if next < len(want) {
		return nil, replayed, fmt.Errorf("the trace lacks the %q marker", want[next])
	}
	names := []string{
		"launcher: exec of the static binary, ELF constructor",
		"constructor: socketpair (the replay: and the plan's checks), fork of the stage",
		"stage: the user namespace (the Go launcher's: while its Go runtime starts; the replay's: made by the fork)",
		"stage: mnt and cgroup namespaces, early",
		"launcher: Go runtime start, flags, spec (the replay: the inputs' checks), state entry, CONFIG sent; stage: maps, then the nested namespaces' holder (the stage waits for CONFIG)",
		"stage: the late namespaces, clone of PID 1",
		"PID 1: first mount",
		"PID 1: mounts, lo up, security, fork + exec of the command",
		"the command (`true`, dynamically linked) runs",
		"PID 1 reaps, reports; launcher exits",
	}
	// marks: start, socketpair, stage-fork, userns, otherns, clone, mount, cmd-exec, cmd-exit, exit
	phases = []phase{
		{names[0], ms(marks[1].t - marks[0].t)},
		{names[1], ms(marks[2].t - marks[1].t)},
		{names[2], ms(marks[3].t - marks[2].t)},
		{names[3], ms(marks[4].t - marks[3].t)},
		{names[4], ms(marks[5].t - marks[4].t)},
		{names[5] + " → " + names[6], ms(marks[6].t - marks[5].t)},
		{names[7], ms(marks[7].t - marks[6].t)},
		{names[8], ms(marks[8].t - marks[7].t)},
		{names[9], ms(marks[9].t - marks[8].t)},
	}
	return phases, replayed, nil
}

// mountCall is the calls that mount: mount(2) and the new mount API.
var mountCall = map[string]bool{"mount": true, "open_tree": true, "fsmount": true, "move_mount": true, "mount_setattr": true}

func ms(s float64) float64 { return s * 1000 }

// A syscallCount is one row of `strace -c`.
type syscallCount struct {
	Name    string
	Calls   int
	Seconds float64
}

// parseStraceSummary reads the table `strace -c` prints and returns its
// rows and the total number of calls.
func parseStraceSummary(out string) ([]syscallCount, int) {
	var rows []syscallCount
	total := 0
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		secs, err1 := strconv.ParseFloat(f[1], 64)
		calls, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil || calls < 0 {
			continue
		}
		name := f[len(f)-1]
		if name == "total" {
			total = calls
			continue
		}
		rows = append(rows, syscallCount{Name: name, Calls: calls, Seconds: secs})
	}
	return rows, total
}

// An initRecord is one line of GODEBUG=inittrace=1:
// "init PKG @START ms, CLOCK ms clock, BYTES bytes, ALLOCS allocs".
type initRecord struct {
	Pkg     string
	StartMS float64
	ClockMS float64
}

// parseInitTrace reads the init lines of GODEBUG=inittrace=1 output.
func parseInitTrace(out string) []initRecord {
	var recs []initRecord
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || f[0] != "init" || !strings.HasPrefix(f[2], "@") {
			continue
		}
		start, err1 := strconv.ParseFloat(strings.TrimPrefix(f[2], "@"), 64)
		clock, err2 := strconv.ParseFloat(f[4], 64)
		if err1 != nil || err2 != nil || !finite(start) || !finite(clock) || start < 0 || clock < 0 {
			continue
		}
		recs = append(recs, initRecord{Pkg: f[1], StartMS: start, ClockMS: clock})
	}
	return recs
}

// finite reports whether v is neither NaN nor an infinity.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
