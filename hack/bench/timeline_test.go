package main

import (
	"strings"
	"testing"
)

// A replayed default-map start, cut down: the launcher (100) forks the
// stage (101) and the two helpers (102, 103); the stage forks PID 1
// (104), which forks the command (105). Times in s, as tracefs prints.
const oneStart = `# tracer: nop
#
        harness-99      [000] .....    10.000000: sched_process_exec: filename=/opt/nsbox pid=100 old_pid=100
          nsbox-100     [000] .....    10.000200: sched_process_fork: comm=nsbox pid=100 child_comm=nsbox child_pid=101
          nsbox-100     [000] .....    10.000300: sched_process_fork: comm=nsbox pid=100 child_comm=nsbox child_pid=102
          nsbox-100     [000] .....    10.000400: sched_process_fork: comm=nsbox pid=100 child_comm=nsbox child_pid=103
          nsbox-100     [000] d..2.    10.000500: sched_switch: prev_comm=nsbox prev_pid=100 prev_prio=120 prev_state=S ==> next_comm=nsbox next_pid=102 next_prio=120
          nsbox-103     [001] d..2.    10.000500: sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=nsbox next_pid=103 next_prio=120
          nsbox-102     [000] .....    10.000700: sched_process_exec: filename=/usr/bin/newuidmap pid=102 old_pid=102
          nsbox-103     [001] .....    10.000800: sched_process_exec: filename=/usr/bin/newgidmap pid=103 old_pid=103
      newuidmap-102     [000] .....    10.002000: sched_process_exit: comm=newuidmap pid=102 prio=120 group_dead=true
      newuidmap-102     [000] d..2.    10.002010: sched_switch: prev_comm=newuidmap prev_pid=102 prev_prio=120 prev_state=Z ==> next_comm=nsbox next_pid=101 next_prio=120
      newgidmap-103     [001] .....    10.002200: sched_process_exit: comm=newgidmap pid=103 prio=120 group_dead=true
      newgidmap-103     [001] d..2.    10.002210: sched_switch: prev_comm=newgidmap prev_pid=103 prev_prio=120 prev_state=Z ==> next_comm=swapper/1 next_pid=0 next_prio=120
          nsbox-101     [000] .....    10.002500: sched_process_fork: comm=nsbox pid=101 child_comm=nsbox child_pid=104
          nsbox-101     [000] .....    10.002600: sched_process_exit: comm=nsbox pid=101 prio=120 group_dead=true
          nsbox-101     [000] d..2.    10.002610: sched_switch: prev_comm=nsbox prev_pid=101 prev_prio=120 prev_state=Z ==> next_comm=nsbox next_pid=104 next_prio=120
          nsbox-104     [000] .....    10.003000: sched_process_fork: comm=nsbox pid=104 child_comm=nsbox child_pid=105
          nsbox-104     [000] d..2.    10.003100: sched_switch: prev_comm=nsbox prev_pid=104 prev_prio=120 prev_state=S ==> next_comm=nsbox next_pid=105 next_prio=120
          nsbox-105     [000] .....    10.003400: sched_process_exec: filename=/usr/bin/true pid=105 old_pid=105
           true-105     [000] .....    10.004000: sched_process_exit: comm=true pid=105 prio=120 group_dead=true
           true-105     [000] d..2.    10.004010: sched_switch: prev_comm=true prev_pid=105 prev_prio=120 prev_state=Z ==> next_comm=nsbox next_pid=104 next_prio=120
          nsbox-104     [000] .....    10.004200: sched_process_exit: comm=nsbox pid=104 prio=120 group_dead=true
          nsbox-104     [000] d..2.    10.004210: sched_switch: prev_comm=nsbox prev_pid=104 prev_prio=120 prev_state=Z ==> next_comm=nsbox next_pid=100 next_prio=120
          nsbox-100     [000] .....    10.004500: sched_process_exit: comm=nsbox pid=100 prio=120 group_dead=true
          other-200     [001] .....    10.005000: sched_process_exec: filename=/opt/nsbox pid=200 old_pid=200
`

func TestAnalyzeStart(t *testing.T) {
	evs := parseFtrace(oneStart)
	if len(evs) != 24 {
		t.Fatalf("parsed %d events, want 24", len(evs))
	}
	got, ok := analyzeStart(evs, 100, "/opt/nsbox", "true", 200)
	if !ok {
		t.Fatal("the start was not found")
	}
	want := map[string]float64{
		"the launcher's first child forked": 0.2, "newuidmap forked": 0.3, "newgidmap forked": 0.4,
		"newuidmap exec'd": 0.7, "newgidmap exec'd": 0.8, "newuidmap exited": 2.0, "newgidmap exited": 2.2,
		"the command exec'd": 3.4, "the command exited": 4.0, "the launcher exited": 4.5,
	}
	for k, v := range want {
		if d := got.Marks[k] - v; d > 1e-6 || d < -1e-6 || !has(got.Marks, k) {
			t.Errorf("%s = %v, want %v", k, got.Marks[k], v)
		}
	}
	if len(got.Marks) != len(want) {
		t.Errorf("marks %v, want only %v", got.Marks, want)
	}
	cpu := map[string]float64{
		// 0 to 0.5, then from 4.21 to its exit at 4.5: the exit's
		// switch is not in the trace, so its last stretch ends there.
		"launcher": 0.5 + 0.29,
		// from the fork: the copy of the launcher before the exec
		// (0.5 to 0.7) is the helper's spawn
		"newuidmap":   2.01 - 0.5,
		"newgidmap":   2.21 - 0.5,
		"the command": 4.01 - 3.4,
		// the stage, 2.01 to 2.61
		partFirst: 0.6,
		// PID 1 (2.61 to 3.1 and 4.01 to 4.21), the command's set-up
		// before its exec (3.1 to 3.4)
		partOther: 0.49 + 0.2 + 0.3,
	}
	if len(got.CPU) != len(cpu) {
		t.Errorf("CPU parts %v, want only %v", got.CPU, cpu)
	}
	for k, v := range cpu {
		if d := got.CPU[k] - v; d > 1e-6 || d < -1e-6 {
			t.Errorf("CPU %s = %.3f, want %.3f", k, got.CPU[k], v)
		}
	}
}

func has(m map[string]float64, k string) bool { _, ok := m[k]; return ok }

func TestAnalyzeStartMissing(t *testing.T) {
	if _, ok := analyzeStart(parseFtrace(oneStart), 300, "/opt/nsbox", "true", 0); ok {
		t.Fatal("found a start whose exec is not in the trace")
	}
}

func TestMedianTimelineNeedsHalf(t *testing.T) {
	ts := []startTimeline{
		{Marks: map[string]float64{"the command exec'd": 1, "newuidmap exited": 5}, CPU: map[string]float64{"launcher": 1}},
		{Marks: map[string]float64{"the command exec'd": 3}, CPU: map[string]float64{"launcher": 2}},
		{Marks: map[string]float64{"the command exec'd": 2}, CPU: map[string]float64{"launcher": 3}},
	}
	m := medianTimeline(ts)
	if m.Marks["the command exec'd"] != 2 || m.CPU["launcher"] != 2 {
		t.Errorf("medians %v %v", m.Marks, m.CPU)
	}
	if has(m.Marks, "newuidmap exited") {
		t.Error("a moment one start in three has made it into the medians")
	}
	var b strings.Builder
	writeTimeline(&b, &timelineResult{Rows: []timelineRow{{Name: "nsbox run", Median: m}}, Runs: 3, Clock: "mono", CPUIDMicros: 8.8, CPUIDCount: 68})
	for _, s := range []string{"| the command exec'd | 2.00 |", "| CPU: launcher | 2.00 |", "68 of them", "0.60 ms"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("the section lacks %q:\n%s", s, b.String())
		}
	}
}
